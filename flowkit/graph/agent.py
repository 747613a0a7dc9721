"""One agent step: render the prompt, call the model (tools in a bounded loop), validate the
typed output (re-asking with the validation error), log the step and every model call."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from flowkit.errors import BudgetExceeded, CacheMiss, FlowkitError, ModelError, StepError
from flowkit.graph import templates
from flowkit.graph.state import DecisionState, Scope
from flowkit.llm.base import ChatModel, ModelRequest, ModelResponse
from flowkit.roles.outputs import OutputInvalid


@dataclass
class CompiledAgent:
    id: str
    role: str
    kind: str
    description: str
    stance: str | None
    params: dict[str, Any]
    model: ChatModel
    model_profile: str
    template: Any                       # compiled jinja2 template
    system: str                         # system message: role + output contract
    output_name: str
    output_schema: dict[str, Any]
    validate: Callable[[Any], dict[str, Any]]   # raises flowkit.roles.outputs.OutputInvalid
    tools: dict[str, Any] = field(default_factory=dict)   # name -> flowkit.tools.Tool
    tool_specs: list[dict[str, Any]] | None = None
    max_tool_rounds: int = 3
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None

    @property
    def info(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "kind": self.kind, "stance": self.stance,
                "description": self.description}


@dataclass
class RunContext:
    """Everything a step needs beyond the decision state; one per run."""

    run_id: str
    agents: dict[str, CompiledAgent]
    log: Any = None                     # flowkit.store.EventLog or None
    budget: Any = None                  # flowkit.llm.limits.Budget or None
    output_attempts: int = 3
    log_prompts: bool = True
    seed: int = 0
    progress: Callable[[DecisionState, str, str], None] | None = None  # (state, step, status)
    calls: int = 0
    provider_calls: int = 0             # answered by a provider: not the cache, not offline
    seq: Any = field(default_factory=itertools.count)

    def record(self, table: str, row: dict[str, Any]) -> None:
        if self.log is not None:
            row["run_id"] = self.run_id
            self.log.append(table, row)

    def step_row(self, state: DecisionState, step_id: str, **fields: Any) -> None:
        self.record("steps", {"seq": next(self.seq), "step_id": step_id, "symbol": state.symbol,
                              "as_of": state.as_of, **fields})


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def variables(agent: CompiledAgent, state: DecisionState, scope: Scope) -> dict[str, Any]:
    """The template contract: exactly these names (see docs/architecture.md)."""
    return {
        "agent": agent.info, "params": agent.params, "symbol": state.symbol, "as_of": state.as_of,
        "market": state.market, "outputs": state.outputs, "transcript": list(scope.transcript),
        "round": scope.round, "task": scope.task, "reports": list(scope.reports),
        "workers": list(scope.workers), "final": scope.final,
        "beliefs": state.beliefs.get(agent.id, []), "lessons": state.lessons.get(agent.id, []),
        "portfolio": state.portfolio, "risk": state.risk, "risk_state": state.risk_state,
    }


async def run_agent(ctx: RunContext, agent: CompiledAgent, state: DecisionState,
                    scope: Scope) -> dict[str, Any]:
    step_id = scope.child(agent.id).path
    started, t0 = now(), time.perf_counter()
    ctx_vars = variables(agent, state, scope)
    try:
        user = templates.render(agent.template, ctx_vars, agent.id)
        messages: list[dict[str, Any]] = [{"role": "system", "content": agent.system},
                                          {"role": "user", "content": user}]
        output = await _converse(ctx, agent, state, step_id, messages, ctx_vars)
    except (BudgetExceeded, CacheMiss):
        raise
    except FlowkitError as exc:
        ctx.step_row(state, step_id, agent=agent.id, role=agent.role, pattern="agent",
                     round=scope.round, started_at=started, finished_at=now(),
                     duration_ms=(time.perf_counter() - t0) * 1000, status="failed",
                     input=_step_input(scope), error=str(exc))
        raise StepError(f"agent '{agent.id}' failed: {exc}") from None
    ctx.step_row(state, step_id, agent=agent.id, role=agent.role, pattern="agent",
                 round=scope.round, started_at=started, finished_at=now(),
                 duration_ms=(time.perf_counter() - t0) * 1000, status="ok",
                 input=_step_input(scope), output=output)
    return output


def _step_input(scope: Scope) -> dict[str, Any]:
    return {"round": scope.round, "task": scope.task, "transcript_turns": len(scope.transcript),
            "reports": [r["agent"] for r in scope.reports]}


async def _converse(ctx: RunContext, agent: CompiledAgent, state: DecisionState, step_id: str,
                    messages: list[dict[str, Any]], ctx_vars: dict[str, Any]) -> dict[str, Any]:
    attempt, reasks, tool_rounds = 0, 0, 0
    while True:
        request = ModelRequest(
            agent=agent.id, role=agent.role, messages=messages, output_name=agent.output_name,
            output_schema=agent.output_schema,
            tools=agent.tool_specs if tool_rounds < agent.max_tool_rounds else None,
            context=ctx_vars, temperature=agent.temperature, max_tokens=agent.max_tokens,
            timeout=agent.timeout, seed=ctx.seed)
        response = await _call(ctx, agent, state, step_id, request, attempt)
        attempt += len(response.attempts) or 1
        if response.tool_calls and request.tools:
            tool_rounds += 1
            messages = messages + _tool_messages(agent, state, response)
            continue
        try:
            return agent.validate(response.content)
        except OutputInvalid as exc:  # re-ask with the problems listed
            reasks += 1
            if reasks >= ctx.output_attempts:
                raise ModelError(f"output did not match '{agent.output_name}' after "
                                 f"{reasks} attempts: {exc}") from None
            messages = messages + [
                {"role": "assistant", "content": response.content},
                {"role": "user", "content": f"Your answer did not validate: {exc}\nReply again "
                 f"with only one JSON object that matches the schema."}]


async def _call(ctx: RunContext, agent: CompiledAgent, state: DecisionState, step_id: str,
                request: ModelRequest, attempt: int) -> ModelResponse:
    started = now()
    try:  # concurrency and rate limits apply inside the model, per real HTTP attempt
        response = await agent.model.complete(request)
    except ModelError as exc:
        _log_attempts(ctx, agent, state, step_id, request, getattr(exc, "attempts", []), attempt,
                      started, None)
        raise
    ctx.calls += 1
    if not response.cached and response.model != "offline":
        ctx.provider_calls += 1
    _log_attempts(ctx, agent, state, step_id, request, response.attempts, attempt, started, response)
    if ctx.budget is not None:
        ctx.budget.charge(response)
    return response


def _log_attempts(ctx: RunContext, agent: CompiledAgent, state: DecisionState, step_id: str,
                  request: ModelRequest, attempts: list[Any], first: int, started: datetime,
                  response: ModelResponse | None) -> None:
    if ctx.log is None:
        return
    payload = {"messages": request.messages} if ctx.log_prompts else {"messages": "(not logged)"}
    if request.tools:
        payload["tools"] = [t["function"]["name"] for t in request.tools]
    payload["response_format"] = request.output_name
    if not attempts and response is not None:  # a model that reports no attempts answered once
        attempts = [response]
    for i, a in enumerate(attempts, start=first + 1):
        final = response is not None and i == first + len(attempts)
        ctx.record("model_calls", {
            "call_id": f"{step_id}#{i}", "step_id": step_id, "symbol": state.symbol,
            "as_of": state.as_of, "agent": agent.id, "model": a.model, "attempt": i,
            "request": payload, "response": _response_text(response) if final else a.response,
            "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
            "cost_usd": a.cost_usd, "latency_ms": a.latency_ms, "cached": a.cached,
            "cache_key": response.cache_key if final and response else None,
            "error": getattr(a, "error", None), "started_at": started})


def _response_text(response: ModelResponse | None) -> str | None:
    if response is None:
        return None
    if response.tool_calls:
        return json.dumps([{"id": c.id, "name": c.name, "arguments": c.arguments}
                           for c in response.tool_calls])
    return response.content


def _tool_messages(agent: CompiledAgent, state: DecisionState,
                   response: ModelResponse) -> list[dict[str, Any]]:
    """Run the requested tools; unknown tools and bad arguments become error results the model sees."""
    calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
             for c in response.tool_calls]
    out: list[dict[str, Any]] = [{"role": "assistant", "content": response.content or None,
                                  "tool_calls": calls}]
    for call in response.tool_calls:
        tool = agent.tools.get(call.name)
        if tool is None:
            result: Any = {"error": f"unknown tool '{call.name}'; available: {sorted(agent.tools)}"}
        else:
            result = tool.invoke(call.arguments, state.view)
        out.append({"role": "tool", "tool_call_id": call.id,
                    "content": json.dumps(result, default=str)})
    return out

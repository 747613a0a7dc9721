"""One agent step: render the prompt, call the model (tools in a bounded loop), validate the
typed output (repairing it first: `flowkit.llm.repair`; then re-asking with the validation
errors and a bounded copy of the bad answer), log the step, its repairs and every model call."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from flowkit.errors import FlowkitError, ModelError, OutputNeverValid, RunAborted, StepError
from flowkit.graph.fit import Fitter, Trim
from flowkit.llm import faults
from flowkit.llm.base import ChatModel, ModelRequest, ModelResponse, billed
from flowkit.llm.context import Budget
from flowkit.llm.repair import repair
from flowkit.patterns.node import now
from flowkit.patterns.state import DecisionState, Scope
from flowkit.roles.outputs import OutputInvalid
from flowkit.spec import templates
from flowkit.store.runstore import RunTally

REASK_ECHO_CHARS = 2000  # how much of a bad answer a re-ask quotes back (a reply can be megabytes)


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
    inputs: tuple[str, ...] = ()        # agents.<id>.inputs: agent ids whose outputs it reads
    tool_specs: list[dict[str, Any]] | None = None
    max_tool_rounds: int = 3
    temperature: float | None = None
    max_tokens: int | None = None
    timeout: float | None = None
    budget: Budget | None = None        # prompt tokens its model takes (None: window unknown)

    @property
    def info(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "kind": self.kind, "stance": self.stance,
                "description": self.description}


@dataclass
class RunContext:
    """Everything a step needs beyond the decision state; one per run."""

    run_id: str
    agents: dict[str, CompiledAgent]
    log: Any = None                     # a flowkit.store.EventSink, or None
    budget: Any = None                  # flowkit.llm.limits.Budget or None
    output_attempts: int = 3
    log_prompts: bool = True
    seed: int = 0
    progress: Callable[[DecisionState, str, str], None] | None = None  # (state, step, status)
    calls: int = 0
    provider_calls: int = 0             # answered by a provider: not the cache, not offline
    prompt_tokens: int = 0              # spent on answers (not cached ones), for the estimate
    completion_tokens: int = 0
    cost_usd: float = 0.0
    seq: Any = field(default_factory=itertools.count)
    tally: RunTally = field(default_factory=RunTally)  # decisions and calls logged, for evaluate

    def record(self, table: str, row: dict[str, Any]) -> None:
        if self.log is not None:
            row["run_id"] = self.run_id
            self.log.append(table, row)
            self.tally.add(table, row)

    def spend(self, prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """Count what a provider billed (answers and failed tries alike), in the budget too
        (checked before the next call)."""
        self.prompt_tokens += prompt_tokens
        self.completion_tokens += completion_tokens
        self.cost_usd += cost_usd
        if self.budget is not None:
            self.budget.spend(prompt_tokens + completion_tokens, cost_usd)

    def step_row(self, state: DecisionState, step_id: str, **fields: Any) -> None:
        self.record("steps", {"seq": next(self.seq), "step_id": step_id, "symbol": state.symbol,
                              "as_of": state.as_of, **fields})

    async def call(self, agent: str, state: DecisionState, scope: Scope) -> dict[str, Any]:
        """Run one agent step (what a pattern does with each of its agents); its typed output."""
        return await run_agent(self, self.agents[agent], state, scope)

    def holds(self, condition: str, state: DecisionState) -> bool:
        return templates.holds(condition, condition_vars(state))


def condition_vars(state: DecisionState) -> dict[str, Any]:
    """`when:` sees earlier agents by id (e.g. `trader.action`) plus the shared state."""
    return {**state.outputs, "outputs": state.outputs, "symbol": state.symbol,
            "market": state.market, "portfolio": state.portfolio,
            "risk_state": state.risk_state, "failures": state.failures}


def variables(agent: CompiledAgent, state: DecisionState, scope: Scope) -> dict[str, Any]:
    """The template contract: exactly these names (see docs/reference.md).

    `outputs` is a snapshot taken when the step starts: the model's context (which the offline
    model reads) is exactly what its prompt saw, even while concurrent siblings finish.
    `inputs` holds the agent's declared inputs in declared order, each its output or None when
    it produced none (skipped by `when:`, failed)."""
    outputs = dict(state.outputs)
    return {
        "agent": agent.info, "params": agent.params, "symbol": state.symbol, "as_of": state.as_of,
        "market": state.market, "outputs": outputs,
        "inputs": {source: outputs.get(source) for source in agent.inputs},
        "transcript": list(scope.transcript),
        "round": scope.round, "task": scope.task, "reports": list(scope.reports),
        "workers": list(scope.workers), "final": scope.final,
        "beliefs": state.beliefs.get(agent.id, []), "lessons": state.lessons.get(agent.id, []),
        "portfolio": state.portfolio, "risk": state.risk, "risk_state": state.risk_state,
    }


async def run_agent(ctx: RunContext, agent: CompiledAgent, state: DecisionState,
                    scope: Scope) -> dict[str, Any]:
    step_id = scope.child(agent.id).path
    started, t0 = now(), time.perf_counter()

    def row(status: str, **fields: Any) -> None:
        ctx.step_row(state, step_id, agent=agent.id, role=agent.role, pattern="agent",
                     round=scope.round, started_at=started, finished_at=now(),
                     duration_ms=(time.perf_counter() - t0) * 1000, status=status,
                     input=_step_input(scope, fitter.trim), **fields)

    fitter = Fitter(agent.id, agent.system, agent.output_schema, agent.tool_specs, agent.budget,
                    lambda v: templates.render(agent.template, v, agent.id))
    repairs: list[str] = []
    try:
        output = await _converse(ctx, agent, state, step_id, fitter,
                                 variables(agent, state, scope), repairs)
    except RunAborted as exc:  # the run stops; the step still shows why
        row("failed", error=str(exc), repairs=repairs or None)
        raise
    except ModelError as exc:  # the decision's failure policy (runtime.on_invalid) decides
        row("failed", error=str(exc), repairs=repairs or None)
        message = f"agent '{agent.id}' failed: {exc}"
        state.never_valid.append(message)
        raise OutputNeverValid(message) from None
    except FlowkitError as exc:
        row("failed", error=str(exc), repairs=repairs or None)
        raise StepError(f"agent '{agent.id}' failed: {exc}") from None
    except asyncio.CancelledError:  # a join met without it, a sibling failed fast, or Ctrl-C
        row("cancelled", error="cancelled before it finished")
        raise
    row("ok", output=output, repairs=repairs or None)
    return output


def _step_input(scope: Scope, trim: Trim | None) -> dict[str, Any]:
    seen = {"round": scope.round, "task": scope.task, "transcript_turns": len(scope.transcript),
            "reports": [r["agent"] for r in scope.reports]}
    return {**seen, "trimmed": trim.record()} if trim else seen


async def _converse(ctx: RunContext, agent: CompiledAgent, state: DecisionState, step_id: str,
                    fitter: Fitter, variables: dict[str, Any],
                    repairs: list[str]) -> dict[str, Any]:
    # The model's context is what its prompt saw: the variables after any trimming.
    ctx_vars, messages = fitter.prompt(variables)
    attempt, reasks, tool_rounds = 0, 0, 0
    while True:
        messages = fitter.conversation(messages)
        request = ModelRequest(
            agent=agent.id, role=agent.role, messages=messages, output_name=agent.output_name,
            output_schema=agent.output_schema,
            tools=agent.tool_specs if tool_rounds < agent.max_tool_rounds else None,
            context=ctx_vars, temperature=agent.temperature, max_tokens=agent.max_tokens,
            timeout=agent.timeout, seed=ctx.seed,
            accept=lambda r: bool(r.tool_calls) or _check(agent, r.content)[1] is None)
        started = now()
        if ctx.budget is not None:
            ctx.budget.check()  # spent already (e.g. by a concurrent step): no new call
        try:  # concurrency and rate limits apply inside the model, per real HTTP attempt
            response = await agent.model.complete(request)
        except (ModelError, asyncio.CancelledError) as exc:
            # every try has its row and its bill, a cancelled call's (the one in flight) too
            tries = getattr(exc, "attempts", None) or []
            _log_attempts(ctx, agent, state, step_id, request, tries, attempt, started, None)
            ctx.spend(*billed(tries))
            # The window was smaller than known or estimated: trim harder, ask once more.
            if isinstance(exc, asyncio.CancelledError) or not any(
                    faults.context_overflow(a.error) for a in tries) \
                    or not fitter.harder(messages):
                raise
            attempt += len(tries)
            ctx_vars, first = fitter.prompt(variables)
            messages = first + messages[2:]
            continue
        ctx.calls += 1
        if not response.cached:
            ctx.provider_calls += response.model != "offline"
            ctx.spend(response.prompt_tokens, response.completion_tokens, response.cost_usd)
        tools_called = bool(response.tool_calls and request.tools)
        output, invalid, fixed = None, None, []
        if not tools_called:
            output, invalid, fixed = _check(agent, response.content)
        problems = "; ".join(getattr(invalid, "problems", None) or [str(invalid)]) \
            if invalid else ""
        # The answer's own row says why a re-ask follows it (one line).
        _log_attempts(ctx, agent, state, step_id, request, response.attempts, attempt, started,
                      response, invalid=f"output invalid: {problems}" if invalid else None)
        attempt += len(response.attempts) or 1
        if ctx.budget is not None:
            ctx.budget.check()
        if tools_called:
            tool_rounds += 1
            messages = messages + _tool_messages(agent, state, response)
            continue
        if invalid is None:
            repairs.extend(fixed)
            return output  # type: ignore[return-value]
        reasks += 1  # re-ask with the problems listed
        if reasks >= ctx.output_attempts:
            raise ModelError(f"output did not match '{agent.output_name}' after "
                             f"{reasks} attempts: {problems}") from None
        messages = messages + [
            {"role": "assistant", "content": _clip(response.content)},
            {"role": "user", "content": f"Your answer did not validate: {invalid}\nReply again "
             f"with only one JSON object that matches the schema."}]


def _check(agent: CompiledAgent, content: str) -> tuple[dict[str, Any] | None,
                                                        OutputInvalid | None, list[str]]:
    """(output, None, repairs) for an answer that validates as it is or once repaired;
    (None, the first problem, []) otherwise."""
    try:
        return agent.validate(content), None, []
    except OutputInvalid as exc:
        first = exc
    repaired = repair(content, agent.output_schema)
    if repaired is None or not repaired[1]:
        return None, first, []
    try:
        return agent.validate(repaired[0]), None, repaired[1]
    except OutputInvalid as exc:
        return None, exc, []


def _clip(text: str) -> str:
    if len(text) <= REASK_ECHO_CHARS:
        return text
    return f"{text[:REASK_ECHO_CHARS]}… [{len(text) - REASK_ECHO_CHARS} more characters cut]"


def _log_attempts(ctx: RunContext, agent: CompiledAgent, state: DecisionState, step_id: str,
                  request: ModelRequest, attempts: list[Any], first: int, started: datetime,
                  response: ModelResponse | None, invalid: str | None = None) -> None:
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
            "request": {**payload, "structured_output": getattr(a, "structured_output", None)},
            "response": _response_text(response) if final else a.response,
            "prompt_tokens": a.prompt_tokens, "completion_tokens": a.completion_tokens,
            "cost_usd": a.cost_usd, "latency_ms": a.latency_ms, "cached": a.cached,
            "cache_key": response.cache_key if final and response else None,
            "error": invalid if final else getattr(a, "error", None), "started_at": started})


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

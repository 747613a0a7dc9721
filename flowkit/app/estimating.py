"""What a run will cost before it calls any model (`flowkit run ... --estimate`), and the
estimate beside what a run really spent.

Calls come from the compiled topology (`flowkit.patterns.plan`): one call per agent step,
every debate round, every `when:` counted as if it holds (the worst case), every answer valid;
the bound multiplies each call by `runtime.output_attempts` (re-asks) and adds the tool rounds
of agents with tools. Prompt tokens are measured on the real prompts of one dry decision (the
first decision time, first symbol) that the offline model answers in memory, counted as
litellm's tokenizer counts them for each agent's model (`flowkit.llm.tokens`, without importing
litellm); completion tokens are the size of those
schema-valid answers, bounded by each call's max_tokens. Dollars use litellm's price map
(LITELLM_LOCAL_MODEL_COST_MAP: no network); `offline` and `local/...` models cost $0, and a
model litellm has no price for is counted $0 and named in a note."""

from __future__ import annotations

import asyncio
import statistics
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from flowkit.llm import catalog, tokens
from flowkit.llm.base import ModelRequest, ModelResponse
from flowkit.llm.offline import OfflineModel
from flowkit.patterns.plan import call_plan
from flowkit.runtime.session import Session

FREE = ("offline", "local")  # providers that cost nothing


@dataclass
class Spend:
    """Calls, tokens and dollars: of one decision, or of a whole run."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def times(self, n: int) -> "Spend":
        return Spend(self.calls * n, self.prompt_tokens * n, self.completion_tokens * n,
                     self.cost_usd * n)


@dataclass
class Estimate:
    decisions: int
    per_decision: Spend          # every answer valid, every `when:` holding
    at_most: Spend               # per decision: every call re-asked to the limit, full max_tokens
    notes: list[str] = field(default_factory=list)

    @property
    def window(self) -> Spend:
        return self.per_decision.times(self.decisions)


class _Recorder:
    """Answers like the offline model and keeps every request (what the firm would send)."""

    name = "offline"

    def __init__(self) -> None:
        self.offline = OfflineModel()
        self.calls: list[tuple[ModelRequest, ModelResponse]] = []

    async def complete(self, request: ModelRequest) -> ModelResponse:
        response = await self.offline.complete(request)
        self.calls.append((request, response))
        return response

    async def aclose(self) -> None:
        return None


def dry_session(loaded: Any, options: Any) -> tuple[Session, _Recorder]:
    """A session of the firm whose every profile is answered in memory by the recorder."""
    recorder = _Recorder()
    spec = loaded.spec
    return Session(loaded, replace(options, cache="off"), log=_null_sink(),
                   models={name: recorder for name in spec.models}), recorder


async def estimate(session: Session, symbols: list[str], times: list[np.datetime64]) -> Estimate:
    """The estimate for `session`'s firm deciding `symbols` at `times`; calls no model."""
    dry, recorder = dry_session(session.loaded, session.options)
    try:
        return await measure(dry, recorder, symbols, times)
    finally:
        dry.close()


async def measure(session: Session, recorder: _Recorder, symbols: list[str],
                  times: list[np.datetime64]) -> Estimate:
    """Estimate from a dry session: one dry decision, then the call plan."""
    await session.deliberate(symbols[0], times[0])
    seen: dict[str, list[tuple[int, int]]] = defaultdict(list)  # agent -> (prompt, answer) tokens
    agents = session.firm.agents
    for request, response in recorder.calls:
        model = _model_of(session, request.agent)
        answer = [{"role": "assistant", "content": response.content}]
        seen[request.agent].append((tokens.count(model, request.messages),
                                    tokens.count(model, answer)))
    everything = [t for calls in seen.values() for t in calls]
    plan = call_plan(session.firm.root)
    per, worst, unpriced = Spend(), Spend(), set()
    attempts = session.spec.runtime.output_attempts
    turn: dict[str, int] = defaultdict(int)
    notes = list(plan.notes)
    for call in plan.calls:
        agent = agents[call.agent]
        mine = seen.get(call.agent)
        if mine:  # its k-th call (debate rounds grow the prompt), or its last one
            prompt, answer = mine[min(turn[call.agent], len(mine) - 1)]
        else:  # skipped in the dry decision: the average call
            prompt = round(statistics.fmean(p for p, _ in everything)) if everything else 0
            answer = round(statistics.fmean(a for _, a in everything)) if everything else 0
            notes.append(f"'{call.agent}' did not run in the dry decision; its prompt is "
                         f"counted as an average one")
        turn[call.agent] += 1
        profile = session.spec.models[agent.model_profile]
        limit = agent.max_tokens or profile.max_tokens
        price = _price(profile.model, unpriced)
        per.calls += 1
        per.prompt_tokens += prompt
        per.completion_tokens += min(answer, limit)
        per.cost_usd += price[0] * prompt + price[1] * min(answer, limit)
        # the bound: each re-ask resends the prompt with the bad answer and the problems
        rounds = attempts + (agent.max_tool_rounds if agent.tool_specs else 0)
        worst.calls += rounds
        worst.prompt_tokens += rounds * (prompt + limit)
        worst.completion_tokens += rounds * limit
        worst.cost_usd += rounds * (price[0] * (prompt + limit) + price[1] * limit)
    notes += [f"litellm has no price for {m}: counted as $0" for m in sorted(unpriced)]
    return Estimate(decisions=_decisions(session, symbols, times), per_decision=per,
                    at_most=worst, notes=list(dict.fromkeys(notes)))


def actual(session: Session) -> Spend:
    """What this process's run spent: answers received (cached ones cost nothing)."""
    ctx = session.ctx
    return Spend(ctx.calls, ctx.prompt_tokens, ctx.completion_tokens, ctx.cost_usd)


def _model_of(session: Session, agent: str) -> str:
    return session.spec.models[session.firm.agents[agent].model_profile].model


def _price(model: str, unpriced: set[str]) -> tuple[float, float]:
    """Dollars per prompt and per completion token."""
    if model.split("/", 1)[0] in FREE:
        return 0.0, 0.0
    info = catalog.model_info(model)
    if info is None or not info.priced:
        unpriced.add(model)
        return 0.0, 0.0
    return info.cost(1, 0), info.cost(0, 1)


def _decisions(session: Session, symbols: list[str], times: list[np.datetime64]) -> int:
    """Decisions the loop will make: a symbol decides at a time its bar closes."""
    wanted = np.asarray(times)
    return sum(int(np.isin(wanted, session.market.bars(s).close_time).sum()) for s in symbols)


def _null_sink() -> Any:
    from flowkit.store import NullSink

    return NullSink()

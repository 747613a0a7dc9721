"""The five patterns as composable async nodes. A node runs against one DecisionState; agent
outputs land in `state.outputs[agent_id]`, so later steps (and `when:`) can read them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from flowkit.errors import BudgetExceeded, CacheMiss, FlowkitError, StepError
from flowkit.spec import templates
from flowkit.graph.agent import RunContext, now, run_agent
from flowkit.graph.state import DecisionState, Scope


@dataclass
class Node:
    name: str                  # path segment in step ids
    when: str | None = None

    async def run(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        if self.when is not None and not self._holds(ctx, state, scope):
            state.skipped.append(scope.child(self.name).path)
            ctx.step_row(state, scope.child(self.name).path, pattern=self.pattern, status="skipped",
                         started_at=now(), finished_at=now(), duration_ms=0.0,
                         input={"when": self.when}, **self.identity(ctx))
            status = "skipped"
        else:
            await self.execute(ctx, state, scope)
            status = "ok"
        if ctx.progress is not None and not scope.path:  # top-level stages only
            ctx.progress(state, self.name, status)

    def _holds(self, ctx: RunContext, state: DecisionState, scope: Scope) -> bool:
        assert self.when is not None
        try:
            return templates.holds(self.when, condition_vars(state))
        except FlowkitError as exc:
            path = scope.child(self.name).path
            if self.pattern == "agent":  # a pattern node logs its own failed row
                ctx.step_row(state, path, pattern=self.pattern, status="failed", started_at=now(),
                             finished_at=now(), duration_ms=0.0, input={"when": self.when},
                             error=str(exc), **self.identity(ctx))
            raise StepError(f"step '{path}': {exc}") from None

    def identity(self, ctx: RunContext) -> dict[str, Any]:
        """Extra columns of this node's own step rows (an agent step names its agent)."""
        return {}

    pattern = "node"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        raise NotImplementedError

    def agents(self) -> list[str]:
        """Every agent id inside this node, in order."""
        raise NotImplementedError


def condition_vars(state: DecisionState) -> dict[str, Any]:
    """`when:` sees earlier agents by id (e.g. `trader.action`) plus the shared state."""
    return {**state.outputs, "outputs": state.outputs, "symbol": state.symbol,
            "market": state.market, "portfolio": state.portfolio,
            "risk_state": state.risk_state, "failures": state.failures}


@dataclass
class AgentNode(Node):
    agent: str = ""
    pattern = "agent"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        state.outputs[self.agent] = await run_agent(ctx, ctx.agents[self.agent], state, scope)

    def identity(self, ctx: RunContext) -> dict[str, Any]:
        agent = ctx.agents[self.agent]
        return {"agent": agent.id, "role": agent.role}

    def agents(self) -> list[str]:
        return [self.agent]


@dataclass
class PatternNode(Node):
    """Logs one step row around its children so a transcript shows the structure."""

    async def run(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        started, t0 = now(), time.perf_counter()
        path = scope.child(self.name).path
        try:
            await super().run(ctx, state, scope)
        except (BudgetExceeded, CacheMiss):
            raise
        except FlowkitError as exc:
            ctx.step_row(state, path, pattern=self.pattern, status="failed", started_at=started,
                         finished_at=now(), duration_ms=(time.perf_counter() - t0) * 1000,
                         error=str(exc))
            raise
        except asyncio.CancelledError:
            ctx.step_row(state, path, pattern=self.pattern, status="cancelled", started_at=started,
                         finished_at=now(), duration_ms=(time.perf_counter() - t0) * 1000,
                         error="cancelled before it finished")
            raise
        if path not in state.skipped:
            ctx.step_row(state, path, pattern=self.pattern, status="ok", started_at=started,
                         finished_at=now(), duration_ms=(time.perf_counter() - t0) * 1000,
                         output=self.summary(state, path))

    def summary(self, state: DecisionState, path: str) -> dict[str, Any] | None:
        return None


@dataclass
class SequentialNode(PatternNode):
    steps: tuple[Node, ...] = ()
    pattern = "sequential"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        for step in self.steps:
            await step.run(ctx, state, inner)

    def agents(self) -> list[str]:
        return [a for s in self.steps for a in s.agents()]


@dataclass
class ParallelNode(PatternNode):
    steps: tuple[Node, ...] = ()
    join: str = "all"
    on_error: str = "fail_fast"
    pattern = "parallel"

    @property
    def needed(self) -> int:
        """Successes after which the join is met and the other branches are cancelled."""
        if self.join == "all":
            return len(self.steps)
        return 1 if self.join == "any" else int(self.join.split(":")[1])

    @property
    def required(self) -> int:
        """Successes without which the step fails. `all` waits for every branch to finish; with
        `on_error: continue` it goes on without the failed ones, as long as one succeeded."""
        return 1 if self.join == "all" else self.needed

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        tasks = {asyncio.ensure_future(step.run(ctx, state, inner)): step for step in self.steps}
        done_ok, failed = 0, []
        try:
            pending = set(tasks)
            while pending and done_ok < self.needed:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    exc = task.exception()
                    if exc is None:
                        done_ok += 1
                    elif isinstance(exc, (BudgetExceeded, CacheMiss)) or not isinstance(exc, FlowkitError):
                        raise exc
                    elif self.on_error == "fail_fast":
                        raise StepError(f"parallel step '{inner.path}' failed fast: {exc}")
                    else:
                        for agent in tasks[task].agents():
                            if agent not in state.outputs:
                                state.failures[agent] = str(exc)
                        failed.append(str(exc))
                if done_ok + len(pending) < self.required:
                    raise StepError(f"parallel step '{inner.path}' (join {self.join}) cannot be "
                                    f"met: {done_ok} of {len(self.steps)} branches succeeded, "
                                    f"{len(failed)} failed: {'; '.join(failed)}")
        finally:
            for task in tasks:  # any/quorum met, or a failure: stop the rest
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for task, step in tasks.items():  # each logged its own `cancelled` step row
                if task.cancelled():
                    state.cancelled.extend(a for a in step.agents() if a not in state.outputs)
            _declaration_order(state, self.agents())

    def summary(self, state: DecisionState, path: str) -> dict[str, Any]:
        agents = self.agents()
        return {"join": self.join, "ok": [a for a in agents if a in state.outputs],
                "failed": {a: state.failures[a] for a in agents if a in state.failures},
                "cancelled": [a for a in agents if a in state.cancelled]}

    def agents(self) -> list[str]:
        return [a for s in self.steps for a in s.agents()]


@dataclass
class DebateNode(PatternNode):
    participants: tuple[str, ...] = ()
    rounds: int = 1
    judge: str = ""
    pattern = "debate"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        transcript: list[dict[str, Any]] = []
        for r in range(1, self.rounds + 1):
            for agent_id in self.participants:  # in turn: each sees every earlier turn
                agent = ctx.agents[agent_id]
                turn_scope = inner.child(f"r{r}", transcript=tuple(transcript), round=r)
                out = await run_agent(ctx, agent, state, turn_scope)
                state.outputs[agent_id] = out
                transcript.append({"agent": agent_id, "role": agent.role, "round": r, "output": out})
        judge_scope = inner.child("verdict", transcript=tuple(transcript), final=True)
        state.outputs[self.judge] = await run_agent(ctx, ctx.agents[self.judge], state, judge_scope)
        state.transcripts[inner.path] = transcript

    def summary(self, state: DecisionState, path: str) -> dict[str, Any]:
        turns = [[t["agent"], t["round"]] for t in state.transcripts.get(path, [])]
        return {"rounds": self.rounds, "turns": turns, "judge": self.judge}

    def agents(self) -> list[str]:
        return [*self.participants, self.judge]


@dataclass
class HierarchicalNode(PatternNode):
    manager: str = ""
    workers: tuple[str, ...] = ()
    max_rounds: int = 1
    pattern = "hierarchical"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        """Up to `max_rounds` assign-report rounds: the manager assigns, the assigned workers
        run concurrently and report, the manager reads the reports. The manager's call after
        the last round (or one that assigns nothing) is its decision."""
        inner = scope.child(self.name)
        reports: list[dict[str, Any]] = []
        for r in range(1, self.max_rounds + 2):
            final = r == self.max_rounds + 1
            m_scope = inner.child(f"r{r}", round=r, reports=tuple(reports), workers=self.workers,
                                  final=final)
            plan = await run_agent(ctx, ctx.agents[self.manager], state, m_scope)
            state.outputs[self.manager] = plan
            assignments = [] if final else self._valid(plan.get("assignments") or [], state,
                                                       m_scope.path)
            if not assignments:
                return
            results = await _gather_all(
                run_agent(ctx, ctx.agents[w], state, m_scope.child("work", task=task))
                for w, task in assignments)
            reports = []
            for (worker, _), result in zip(assignments, results):
                if isinstance(result, (BudgetExceeded, CacheMiss)) or (
                        isinstance(result, BaseException) and not isinstance(result, FlowkitError)):
                    raise result
                if isinstance(result, FlowkitError):
                    state.failures[worker] = str(result)
                    reports.append({"agent": worker, "output": None, "error": str(result)})
                else:
                    state.outputs[worker] = result
                    reports.append({"agent": worker, "output": result})

    def _valid(self, assignments: list[Any], state: DecisionState, path: str) -> list[tuple[str, str]]:
        """Keep assignments to this manager's workers, once each; note the rest."""
        out: dict[str, str] = {}
        for item in assignments:
            worker = item.get("worker") if isinstance(item, dict) else None
            if worker in self.workers and worker not in out:
                out[worker] = str(item.get("instruction") or "")
            else:
                state.failures[f"{path}:assignment"] = f"ignored assignment {item!r}"
        return list(out.items())

    def agents(self) -> list[str]:
        return [self.manager, *self.workers]


@dataclass
class BroadcastNode(PatternNode):
    members: tuple[str, ...] = ()
    rounds: int = 1
    pattern = "broadcast"

    async def execute(self, ctx: RunContext, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        board: list[dict[str, Any]] = []
        for r in range(1, self.rounds + 1):
            r_scope = inner.child(f"r{r}", transcript=tuple(board), round=r)
            posts = await _gather_all(run_agent(ctx, ctx.agents[a], state, r_scope)
                                      for a in self.members)
            for post in posts:
                if isinstance(post, BaseException):
                    raise post
            for agent_id, post in zip(self.members, posts):  # visible from the next round on
                state.outputs[agent_id] = post
                board.append({"agent": agent_id, "role": ctx.agents[agent_id].role, "round": r,
                              "output": post})
        state.transcripts[inner.path] = board

    def agents(self) -> list[str]:
        return list(self.members)


async def _gather_all(coros: Any) -> list[Any]:
    """Run concurrently; results or exceptions in order. Budget, replay-miss and non-flowkit
    errors cancel the others at once (a plain gather would leave them running and logging
    after their pattern has failed); an agent's ordinary failure lets its siblings finish."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and (isinstance(exc, (BudgetExceeded, CacheMiss))
                                        or not isinstance(exc, FlowkitError)):
                    raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return [t.exception() or t.result() for t in tasks]


def _declaration_order(state: DecisionState, agents: list[str]) -> None:
    """Branches finish in whatever order their models answer; put their outputs (and failures)
    in the order the YAML lists them, so later prompts, and the cache keys made from them,
    do not depend on timing. A replay must render byte-identical prompts."""
    for table in (state.outputs, state.failures):
        for agent in agents:
            if agent in table:
                table[agent] = table.pop(agent)

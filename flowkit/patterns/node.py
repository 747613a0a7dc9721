"""What every compiled pattern node shares: the `when:` gate, its step row, the call plan's
contract, and the one visibility rule for concurrent children.

A node runs against one DecisionState; agent outputs land in `state.outputs[agent_id]`, so
later steps (and `when:`) can read them. The rule: what a step's children see is frozen when
the step starts; children that run concurrently each run on their own branch of the state
(`concurrently`, `DecisionState.branch`), and their writes merge at the join in YAML order.

Imported when a workflow is validated (the patterns' modules build on it), so asyncio is
imported only where a node runs, and the run reaches a node only through `Context`."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping, Protocol

from flowkit.errors import FlowkitError, RunAborted, StepError
from flowkit.patterns.state import DecisionState, Scope

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Context(Protocol):
    """What a node may use of the run (flowkit.graph.agent.RunContext, one per run)."""

    agents: Mapping[str, Any]                 # agent id -> compiled agent (.role, .id)
    progress: Callable[[DecisionState, str, str], None] | None

    async def call(self, agent: str, state: DecisionState, scope: Scope) -> dict[str, Any]:
        """Run one agent step against `state`; its typed output (the node stores it)."""

    def holds(self, condition: str, state: DecisionState) -> bool:
        """Evaluate a `when:` condition against `state` (raises FlowkitError if it cannot)."""

    def step_row(self, state: DecisionState, step_id: str, **fields: Any) -> None:
        """Log one row of the steps table."""


@dataclass
class Node(ABC):
    name: str                  # path segment in step ids
    when: str | None = None

    pattern = "node"

    async def run(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
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

    def _holds(self, ctx: Context, state: DecisionState, scope: Scope) -> bool:
        assert self.when is not None
        try:
            return ctx.holds(self.when, state)
        except FlowkitError as exc:
            path = scope.child(self.name).path
            if self.pattern == "agent":  # a pattern node logs its own failed row
                ctx.step_row(state, path, pattern=self.pattern, status="failed", started_at=now(),
                             finished_at=now(), duration_ms=0.0, input={"when": self.when},
                             error=str(exc), **self.identity(ctx))
            raise StepError(f"step '{path}': {exc}") from None

    def identity(self, ctx: Context) -> dict[str, Any]:
        """Extra columns of this node's own step rows (an agent step names its agent)."""
        return {}

    @abstractmethod
    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        """Run the children; leave their outputs in `state`."""

    @abstractmethod
    def agents(self) -> list[str]:
        """Every agent id inside this node, in order."""

    @abstractmethod
    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        """The model calls one run of this node makes, added to `p` after `deps` (one call per
        agent step; `when:` assumed to hold): the calls whatever follows must wait for, and the
        length of this node's critical path in calls."""


@dataclass
class PatternNode(Node):
    """Logs one step row around its children so a transcript shows the structure."""

    async def run(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        import asyncio

        started, t0 = now(), time.perf_counter()
        path = scope.child(self.name).path
        try:
            await super().run(ctx, state, scope)
        except RunAborted:
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


def stops_the_run(exc: BaseException) -> bool:
    """Budget, replay-miss and non-flowkit errors end the run; an agent's ordinary failure
    is its pattern's to handle."""
    return isinstance(exc, RunAborted) or not isinstance(exc, FlowkitError)


async def concurrently(state: DecisionState,
                       jobs: list[Callable[[DecisionState], Awaitable[Any]]]) -> list[Any]:
    """Run each job on its own branch of `state`; results or exceptions in job order, the
    branches' writes merged back in job order. A job that stops the run cancels the others
    at once (a plain gather would leave them running and logging after their pattern has
    failed); an ordinary failure lets its siblings finish."""
    import asyncio

    forks = [state.branch() for _ in jobs]
    tasks = [asyncio.ensure_future(job(fork)) for job, fork in zip(jobs, forks)]
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None and stops_the_run(exc):
                    raise exc
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        state.merge(forks)
    return [t.exception() or t.result() for t in tasks]

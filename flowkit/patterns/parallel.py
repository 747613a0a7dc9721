"""`parallel`: steps run concurrently, each on its own branch of the state, joined by all, any
or quorum:N; the rest are cancelled once the join is met. `fail_fast` or `continue`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

from pydantic import Field

from flowkit.errors import StepError
from flowkit.fields import JOIN_PATTERN, Strict
from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, StepBase, Walk
from flowkit.patterns.node import Context, Node, PatternNode, stops_the_run

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope


class ParallelBody(Strict):
    steps: list["Step"] = Field(min_length=1, description="Steps run concurrently.")
    join: str = Field("all", pattern=JOIN_PATTERN, description="all: wait for every branch; any: "
                      "the first success; quorum:N: the first N successes.")
    on_error: Literal["fail_fast", "continue"] = Field("fail_fast", description="fail_fast cancels "
                                                      "the rest on the first failure; continue "
                                                      "records the failure and goes on.")


class ParallelStep(StepBase):
    parallel: ParallelBody = Field(description="Run steps concurrently and join them.")


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

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        import asyncio

        inner = scope.child(self.name)
        forks = [state.branch() for _ in self.steps]  # frozen now: no branch sees a sibling
        tasks = {asyncio.ensure_future(step.run(ctx, fork, inner)): step
                 for step, fork in zip(self.steps, forks)}
        done_ok, failures = 0, {}  # failed task -> why
        try:
            pending = set(tasks)
            while pending and done_ok < self.needed:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    exc = task.exception()
                    if exc is None:
                        done_ok += 1
                    elif stops_the_run(exc):
                        raise exc
                    elif self.on_error == "fail_fast":
                        raise StepError(f"parallel step '{inner.path}' failed fast: {exc}")
                    else:
                        failures[task] = str(exc)
                if done_ok + len(pending) < self.required:
                    why = _once([(tasks[t].agents(), failures[t]) for t in tasks if t in failures])
                    raise StepError(f"parallel step '{inner.path}' (join {self.join}) cannot be "
                                    f"met: {done_ok} of {len(self.steps)} branches succeeded, "
                                    f"{len(failures)} failed: {why}")
        finally:
            for task in tasks:  # any/quorum met, or a failure: stop the rest
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            state.merge(forks)  # the join: writes in YAML order, whatever finished first
            for task, step in tasks.items():  # each logged its own `cancelled` step row
                missing = [a for a in step.agents() if a not in state.outputs]
                if task.cancelled():
                    state.cancelled.extend(missing)
                elif task in failures:
                    state.failures.update((a, failures[task]) for a in missing)

    def summary(self, state: DecisionState, path: str) -> dict[str, Any]:
        agents = self.agents()
        return {"join": self.join, "ok": [a for a in agents if a in state.outputs],
                "failed": {a: state.failures[a] for a in agents if a in state.failures},
                "cancelled": [a for a in agents if a in state.cancelled]}

    def agents(self) -> list[str]:
        return [a for s in self.steps for a in s.agents()]

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        exits: frozenset[int] = frozenset()
        lengths = []
        for step in self.steps:
            e, k = p.node(step, deps)
            exits |= e
            lengths.append(k)
        if self.needed < len(self.steps):
            p.notes.append(f"'{self.name}' joins {self.join}: the schedule waits for all "
                           f"branches (an upper bound), the critical path for the first "
                           f"{self.needed}")
        return exits, sorted(lengths)[self.needed - 1]


class Parallel(Pattern):
    key = "parallel"
    step_model = ParallelStep
    node = ParallelNode

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        body = body if isinstance(body, dict) else {}
        steps: list[Any] = body["steps"] if isinstance(body.get("steps"), list) else []
        out = frozenset().union(*(walk.walk(s, path + ("steps", i), done) for i, s in enumerate(steps)))
        join = body.get("join")
        if isinstance(join, str) and re.fullmatch(r"quorum:[0-9]+", join) and steps:
            if int(join[7:]) > len(steps):
                walk.fail(f"{join} waits for more branches than the {len(steps)} listed",
                          path + ("join",))
        return out

    def compile(self, step: ParallelStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        b = step.parallel
        return ParallelNode(name=name, when=step.when, join=b.join, on_error=b.on_error,
                            steps=tuple(child(s, i) for i, s in enumerate(b.steps)))

    def render(self, g: Canvas, step: ParallelStep) -> Drawn:
        par = step.parallel
        drawn = Drawn(f"parallel join={par.join} on_error={par.on_error}")
        for child in par.steps:
            c_in, c_out = g.step(child, drawn.members)
            drawn.entries, drawn.exits = drawn.entries + c_in, drawn.exits + c_out
        return drawn


PATTERN = Parallel()


def _once(failures: list[tuple[list[str], str]]) -> str:
    """The branches' failures in YAML order, each reason once: four analysts refused by one
    dead endpoint make one line naming the four, not the same error four times."""
    reasons: dict[str, list[str]] = {}
    for agents, message in failures:
        reason = message
        for agent in agents:  # "agent 'x' failed: agent 'x': ..." -> "..."
            reason = reason.replace(f"agent '{agent}' failed: ", "").replace(f"agent '{agent}': ", "")
        reasons.setdefault(reason, []).extend(agents)
    if len(reasons) == len(failures):
        return "; ".join(message for _, message in failures)
    return "; ".join(f"{', '.join(repr(a) for a in agents)}: {reason}"
                     for reason, agents in reasons.items())


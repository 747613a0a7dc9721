"""`sequential`: steps one after another; each sees the outputs of those before it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, StepBase, Walk
from flowkit.patterns.node import Context, Node, PatternNode

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope


class SequentialStep(StepBase):
    sequential: list["Step"] = Field(min_length=1, description="Steps run one after another; each "
                                     "sees the outputs of those before it.")


@dataclass
class SequentialNode(PatternNode):
    steps: tuple[Node, ...] = ()
    pattern = "sequential"

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        for step in self.steps:
            await step.run(ctx, state, inner)

    def agents(self) -> list[str]:
        return [a for s in self.steps for a in s.agents()]

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        length = 0
        for step in self.steps:
            deps, k = p.node(step, deps)
            length += k
        return deps, length


class Sequential(Pattern):
    key = "sequential"
    step_model = SequentialStep
    node = SequentialNode

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        return walk.walk_sequence(body, path, done) - done if isinstance(body, list) else frozenset()

    def compile(self, step: SequentialStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        return SequentialNode(name=name, when=step.when,
                              steps=tuple(child(s, i) for i, s in enumerate(step.sequential)))

    def render(self, g: Canvas, step: SequentialStep) -> Drawn:
        drawn = Drawn("sequential")
        for child in step.sequential:
            c_in, c_out = g.step(child, drawn.members)
            g.link(drawn.exits, c_in)
            drawn.entries, drawn.exits = drawn.entries or c_in, c_out
        return drawn


PATTERN = Sequential()

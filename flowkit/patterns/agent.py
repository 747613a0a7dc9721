"""`agent`: one agent step, written as a bare id (`- trader`) or `{agent: trader, when: ...}`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from flowkit.fields import ID_PATTERN
from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, StepBase, Walk
from flowkit.patterns.node import Context, Node

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope


class AgentStep(StepBase):
    agent: str = Field(pattern=ID_PATTERN, description="Agent id to run.")


@dataclass
class AgentNode(Node):
    agent: str = ""
    pattern = "agent"

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        state.outputs[self.agent] = await ctx.call(self.agent, state, scope)

    def identity(self, ctx: Context) -> dict[str, Any]:
        agent = ctx.agents[self.agent]
        return {"agent": agent.id, "role": agent.role}

    def agents(self) -> list[str]:
        return [self.agent]

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        return p.call(self.agent, deps), 1


class Agent(Pattern):
    key = "agent"
    step_model = AgentStep
    node = AgentNode

    def name(self, step: str | AgentStep, index: int) -> str:
        return step if isinstance(step, str) else step.id or step.agent

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        return walk.place(body, path, done)

    def compile(self, step: str | AgentStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        if isinstance(step, str):
            return AgentNode(name=name, agent=step)
        return AgentNode(name=name, when=step.when, agent=step.agent)

    def render(self, g: Canvas, step: str | AgentStep) -> Drawn:
        node = g.agent(step if isinstance(step, str) else step.agent)
        return Drawn(None, [node], [node], [node])


PATTERN = Agent()

"""`broadcast`: every member posts concurrently each round to one blackboard that holds the
earlier rounds only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from flowkit.fields import Id, Int, Strict
from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, StepBase, Walk, rounds
from flowkit.patterns.node import Context, Node, PatternNode, concurrently

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope


class BroadcastBody(Strict):
    agents: list[Id] = Field(min_length=2, description="Agent ids sharing one blackboard.")
    rounds: Int = Field(ge=1, le=10, description="Rounds; in each every agent posts concurrently, "
                        "seeing all earlier rounds.")


class BroadcastStep(StepBase):
    broadcast: BroadcastBody = Field(description="Agents post to one shared blackboard each round.")


@dataclass
class BroadcastNode(PatternNode):
    members: tuple[str, ...] = ()
    rounds: int = 1
    pattern = "broadcast"

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        board: list[dict[str, Any]] = []
        for r in range(1, self.rounds + 1):
            r_scope = inner.child(f"r{r}", transcript=tuple(board), round=r)
            posts = await concurrently(state, [lambda s, a=a: ctx.call(a, s, r_scope)
                                               for a in self.members])
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

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        for _ in range(self.rounds):
            deps = frozenset().union(*(p.call(a, deps) for a in self.members))
        return deps, self.rounds


class Broadcast(Pattern):
    key = "broadcast"
    step_model = BroadcastStep
    node = BroadcastNode

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        body = body if isinstance(body, dict) else {}
        return walk.place_all(body.get("agents"), path + ("agents",), done)

    def compile(self, step: BroadcastStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        return BroadcastNode(name=name, when=step.when, members=tuple(step.broadcast.agents),
                             rounds=step.broadcast.rounds)

    def render(self, g: Canvas, step: BroadcastStep) -> Drawn:
        cast = step.broadcast
        board = g.node("io_board", "board", "shared blackboard")
        posters = [g.agent(a) for a in cast.agents]
        g.link(posters, [board], "posts")
        g.link([board], posters, "reads")
        return Drawn(f"broadcast, {rounds(cast.rounds)}", [board, *posters], posters, posters)


PATTERN = Broadcast()

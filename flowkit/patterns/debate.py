"""`debate`: participants speak in turn for exactly `rounds`, each turn seeing exactly the turns
before it; then the judge rules once on the transcript."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from flowkit.fields import ID_PATTERN, Id, Int, Strict
from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, Slot, StepBase, Walk, rounds
from flowkit.patterns.node import Context, Node, PatternNode
from flowkit.roles.registry import JUDGE_KINDS

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope

JUDGE: Slot = ("judge", JUDGE_KINDS, "a role of kind judge or decider (research_manager, "
               "portfolio_manager)")


class DebateBody(Strict):
    participants: list[Id] = Field(min_length=2, description="Agent ids that speak in turn.")
    rounds: Int = Field(ge=1, le=10, description="Exact number of rounds; each participant speaks "
                        "once per round.")
    judge: str = Field(pattern=ID_PATTERN, description="Agent of kind judge or decider that rules on "
                       "the transcript.")


class DebateStep(StepBase):
    debate: DebateBody = Field(description="Participants argue in turn for fixed rounds; a judge rules.")


@dataclass
class DebateNode(PatternNode):
    participants: tuple[str, ...] = ()
    rounds: int = 1
    judge: str = ""
    pattern = "debate"

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        inner = scope.child(self.name)
        transcript: list[dict[str, Any]] = []
        for r in range(1, self.rounds + 1):
            for agent_id in self.participants:  # in turn: each sees every earlier turn
                turn_scope = inner.child(f"r{r}", transcript=tuple(transcript), round=r)
                out = await ctx.call(agent_id, state, turn_scope)
                state.outputs[agent_id] = out
                transcript.append({"agent": agent_id, "role": ctx.agents[agent_id].role,
                                   "round": r, "output": out})
        judge_scope = inner.child("verdict", transcript=tuple(transcript), final=True)
        state.outputs[self.judge] = await ctx.call(self.judge, state, judge_scope)
        state.transcripts[inner.path] = transcript

    def summary(self, state: DecisionState, path: str) -> dict[str, Any]:
        turns = [[t["agent"], t["round"]] for t in state.transcripts.get(path, [])]
        return {"rounds": self.rounds, "turns": turns, "judge": self.judge}

    def agents(self) -> list[str]:
        return [*self.participants, self.judge]

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        for _ in range(self.rounds):
            for agent in self.participants:
                deps = p.call(agent, deps)
        return p.call(self.judge, deps), self.rounds * len(self.participants) + 1


class Debate(Pattern):
    key = "debate"
    step_model = DebateStep
    node = DebateNode

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        body = body if isinstance(body, dict) else {}
        parts = walk.place_all(body.get("participants"), path + ("participants",), done)
        return parts | walk.place(body.get("judge"), path + ("judge",), done | parts, JUDGE)

    def compile(self, step: DebateStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        b = step.debate
        return DebateNode(name=name, when=step.when, participants=tuple(b.participants),
                          rounds=b.rounds, judge=b.judge)

    def render(self, g: Canvas, step: DebateStep) -> Drawn:
        debate = step.debate
        entries = [g.agent(p) for p in debate.participants]
        # Speaking order: each participant answers the one before; two speakers need one edge.
        turns = list(zip(entries, entries[1:] + entries[:1], strict=True))
        for a, b in turns[:1] if len(entries) == 2 else turns:
            g.link([a], [b], "argues")
        judge = g.agent(debate.judge, "judge")
        g.link(entries, [judge], "transcript")
        return Drawn(f"debate, {rounds(debate.rounds)}", [*entries, judge], entries, [judge])


PATTERN = Debate()

"""The model calls one decision makes, as a DAG derived from the compiled node tree: how many,
the critical path (the longest chain, i.e. the latency with unbounded concurrency) and the
widest stage. Each pattern node adds its own calls (`Node.plan`); a benchmark compares the
total with the calls a server actually received.

Assumptions: one call per agent step (valid answers, no tool rounds), every `when:` holds
(noted), a manager assigns every worker every round, and a parallel join waits for every
branch in the DAG while its critical path takes the N-th shortest branch (noted)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Call:
    """One model call in a decision: which agent, and which calls must finish before it."""

    id: int
    agent: str
    deps: tuple[int, ...]


@dataclass
class Planner:
    calls: list[Call] = field(default_factory=list)
    critical: int = 0          # longest chain of calls (unbounded concurrency)
    width: int = 0             # most calls that can be in flight at once in one decision
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.calls)

    def call(self, agent: str, deps: frozenset[int]) -> frozenset[int]:
        """Add one call after `deps`; the set holding it."""
        call = Call(len(self.calls), agent, tuple(sorted(deps)))
        self.calls.append(call)
        return frozenset({call.id})

    def node(self, node: Any, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        """Add a node's calls (what its pattern plans): (its exits, its critical length)."""
        if node.when is not None:
            self.notes.append(f"'{node.name}' has when: {node.when!r}; counted as if it holds")
        return node.plan(self, deps)


def call_plan(root: Any) -> Planner:
    """The call plan of a compiled node tree (`Firm.root`)."""
    plan = Planner()
    _, plan.critical = plan.node(root, frozenset())
    level: list[int] = []
    for c in plan.calls:  # calls are created after their dependencies
        level.append(1 + max((level[d] for d in c.deps), default=0))
    plan.width = max((level.count(v) for v in set(level)), default=0)
    return plan

"""`hierarchical`: a manager assigns workers (validated against its worker list), the assigned
workers run concurrently and report, for at most `max_rounds` rounds; then the manager decides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from pydantic import Field

from flowkit.errors import FlowkitError
from flowkit.fields import ID_PATTERN, Id, Int, Strict
from flowkit.patterns.base import Canvas, Drawn, Path_, Pattern, Slot, StepBase, Walk, rounds
from flowkit.patterns.node import Context, Node, PatternNode, concurrently, stops_the_run
from flowkit.roles.registry import MANAGER_KINDS

if TYPE_CHECKING:
    from flowkit.patterns.plan import Planner
    from flowkit.patterns.state import DecisionState, Scope

MANAGER: Slot = ("manager", MANAGER_KINDS, "a role of kind manager (manager)")


class HierarchicalBody(Strict):
    manager: str = Field(pattern=ID_PATTERN, description="Agent of kind manager that assigns tasks "
                         "and decides.")
    workers: list[Id] = Field(min_length=1, description="Agent ids the manager may assign.")
    max_rounds: Int = Field(ge=1, le=10, description="Assign-report rounds before the manager must "
                            "decide.")


class HierarchicalStep(StepBase):
    hierarchical: HierarchicalBody = Field(description="A manager assigns workers, reads their reports, decides.")


@dataclass
class HierarchicalNode(PatternNode):
    manager: str = ""
    workers: tuple[str, ...] = ()
    max_rounds: int = 1
    pattern = "hierarchical"

    async def execute(self, ctx: Context, state: DecisionState, scope: Scope) -> None:
        """Up to `max_rounds` assign-report rounds: the manager assigns, the assigned workers
        run concurrently and report, the manager reads the reports. The manager's call after
        the last round (or one that assigns nothing) is its decision."""
        inner = scope.child(self.name)
        reports: list[dict[str, Any]] = []
        for r in range(1, self.max_rounds + 2):
            final = r == self.max_rounds + 1
            m_scope = inner.child(f"r{r}", round=r, reports=tuple(reports), workers=self.workers,
                                  final=final)
            plan = await ctx.call(self.manager, state, m_scope)
            state.outputs[self.manager] = plan
            assignments = [] if final else self._valid(plan.get("assignments") or [], state,
                                                       m_scope.path)
            if not assignments:
                return
            results = await concurrently(state, [
                lambda s, w=w, task=task: ctx.call(w, s, m_scope.child("work", task=task))
                for w, task in assignments])
            reports = []
            for (worker, _), result in zip(assignments, results):
                if isinstance(result, BaseException) and stops_the_run(result):
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

    def plan(self, p: Planner, deps: frozenset[int]) -> tuple[frozenset[int], int]:
        length = 0
        for _ in range(self.max_rounds):  # assign, work (every worker assumed), report
            deps = p.call(self.manager, deps)
            deps = frozenset().union(*(p.call(w, deps) for w in self.workers))
            length += 2
        return p.call(self.manager, deps), length + 1  # the decision on the last reports


class Hierarchical(Pattern):
    key = "hierarchical"
    step_model = HierarchicalStep
    node = HierarchicalNode

    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        body = body if isinstance(body, dict) else {}
        manager = walk.place(body.get("manager"), path + ("manager",), done, MANAGER)
        return manager | walk.place_all(body.get("workers"), path + ("workers",), done | manager)

    def compile(self, step: HierarchicalStep, name: str, child: Callable[[Any, int], Node]) -> Node:
        b = step.hierarchical
        return HierarchicalNode(name=name, when=step.when, manager=b.manager,
                                workers=tuple(b.workers), max_rounds=b.max_rounds)

    def render(self, g: Canvas, step: HierarchicalStep) -> Drawn:
        hier = step.hierarchical
        manager = g.agent(hier.manager, "manager")
        workers = [g.agent(w) for w in hier.workers]
        g.link([manager], workers, "assigns")
        g.link(workers, [manager], "reports")
        return Drawn(f"hierarchical, at most {rounds(hier.max_rounds)}", [manager, *workers],
                     [manager], [manager])


PATTERN = Hierarchical()

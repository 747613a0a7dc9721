"""The contract of a pipeline pattern. One module per pattern implements it whole: the step's
pydantic model (what the YAML may say), its semantic checks (which agents it places where),
its compiled node (how it runs, and its call plan), and how it is drawn (Mermaid and dot).

Imported when a workflow is validated: nothing here or in a pattern module may import the
runtime (models, market, store) at module level."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol

from pydantic import Field

from flowkit.fields import ID_PATTERN, Strict
from flowkit.patterns.node import Node

Path_ = tuple[Any, ...]
Slot = tuple[str, frozenset[str], str]  # (slot name, allowed role kinds, what to say)


class StepBase(Strict):
    id: str | None = Field(None, pattern=ID_PATTERN, description="Name of the step in logs and graphs.")
    when: str | None = Field(None, min_length=1, description="Condition (jinja2 expression over "
                             "earlier outputs, e.g. `trader.action != 'HOLD'`); the step is "
                             "skipped when false.")


class Walk(Protocol):
    """What a pattern's `check` may ask of the semantic checker (flowkit.spec.semantics). It
    works on the raw located data, which may be any shape: the schema reports shapes."""

    def fail(self, message: str, path: Path_, *, key: bool = False) -> None: ...

    def walk(self, step: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        """Check a nested step; the agents finished once it is done."""

    def walk_sequence(self, steps: list[Any], path: Path_, done: frozenset[str]) -> frozenset[str]: ...

    def place(self, aid: Any, path: Path_, done: frozenset[str],
              slot: Slot | None = None) -> frozenset[str]:
        """Place one agent here: it exists, runs once, fits the slot, and `done` ran before it."""

    def place_all(self, ids: Any, path: Path_, done: frozenset[str]) -> frozenset[str]: ...


class Canvas(Protocol):
    """The topology graph under construction (flowkit.graph.render)."""

    def agent(self, aid: str, shape: str = "agent") -> str:
        """Add an agent node (shape: agent, judge or manager); its node id."""

    def node(self, prefix: str, shape: str, label: str) -> str:
        """Add a node that is not an agent (shape io or board); its node id."""

    def link(self, sources: list[str], targets: list[str], label: str = "") -> None: ...

    def step(self, step: Any, members: list[str]) -> tuple[list[str], list[str]]:
        """Draw a nested step, adding its nodes to `members`: (entry nodes, exit nodes)."""


@dataclass
class Drawn:
    """A drawn step: its group's label (None: no group of its own), the nodes inside the
    group, and the nodes edges enter and leave by."""

    label: str | None
    members: list[str] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    exits: list[str] = field(default_factory=list)


class Pattern(ABC):
    """A pipeline pattern, registered by its YAML key in `flowkit.patterns`."""

    key: ClassVar[str]                     # the step's key in YAML, e.g. `parallel`
    step_model: ClassVar[type[StepBase]]   # {id, when, <key>: body}; a recursive body says list["Step"]
    node: ClassVar[type[Node]]             # what `compile` builds; runs and plans the step

    def name(self, step: Any, index: int) -> str:
        """The step's path segment in step ids when it has no `id`."""
        return step.id or f"{self.key}{index}"

    @abstractmethod
    def check(self, walk: Walk, body: Any, path: Path_, done: frozenset[str]) -> frozenset[str]:
        """Check the raw body at `path` (agents exist, fit their slots, run after `done`);
        return the agents finished once the step is done."""

    @abstractmethod
    def compile(self, step: Any, name: str, child: Callable[[Any, int], Node]) -> Node:
        """The runtime node of a validated step; `child(step, index)` compiles a nested step."""

    @abstractmethod
    def render(self, g: Canvas, step: Any) -> Drawn:
        """Draw the step's agents and edges on `g`."""


def rounds(n: int) -> str:
    return f"{n} round{'s' if n != 1 else ''}"

"""What a decision's agents share, and what a pattern hands its children."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass
class DecisionState:
    """Shared state for one symbol at one decision time. Outputs are keyed by agent id."""

    symbol: str
    as_of: str                       # ISO-8601 UTC, the decision time
    market: dict[str, Any]           # the as-of MarketSnapshot (nothing after as_of)
    portfolio: dict[str, Any] = field(default_factory=dict)
    risk: dict[str, Any] = field(default_factory=dict)
    risk_state: dict[str, Any] = field(default_factory=dict)
    beliefs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)   # agent -> beliefs
    lessons: dict[str, list[str]] = field(default_factory=dict)             # agent -> lessons
    view: Any = None                 # the AsOfView, for tools
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    transcripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # pattern path -> turns
    skipped: list[str] = field(default_factory=list)        # step paths whose `when:` was false
    cancelled: list[str] = field(default_factory=list)      # agents stopped by a parallel join
    # Failures that were the model's (no answer, or none that validated): what makes a held
    # decision `invalid`. One list for the decision: `branch` shares it, so a failure inside a
    # parallel branch counts too.
    never_valid: list[str] = field(default_factory=list)

    def branch(self) -> "DecisionState":
        """A concurrent child's own state: it reads what this state holds now, and its writes
        stay its own until `merge`, so no branch sees a sibling's output, however the models
        interleave (a model that never yields would otherwise leak its answer to the next)."""
        return replace(self, outputs=dict(self.outputs), failures=dict(self.failures),
                       transcripts=dict(self.transcripts), skipped=list(self.skipped),
                       cancelled=list(self.cancelled))

    def merge(self, branches: list["DecisionState"]) -> None:
        """Fold the writes of branches taken from this state back in, in the order given (the
        YAML order, never the finishing order: prompts and cache keys must not depend on it)."""
        lengths = {"skipped": len(self.skipped), "cancelled": len(self.cancelled)}
        for b in branches:
            for mine, theirs in ((self.outputs, b.outputs), (self.failures, b.failures),
                                 (self.transcripts, b.transcripts)):
                mine.update((k, v) for k, v in theirs.items() if mine.get(k) is not v)
            self.skipped.extend(b.skipped[lengths["skipped"]:])
            self.cancelled.extend(b.cancelled[lengths["cancelled"]:])


@dataclass(frozen=True)
class Scope:
    """What a pattern adds to its children's view: transcript, round, task, reports."""

    path: str = ""
    transcript: tuple[dict[str, Any], ...] = ()
    round: int | None = None
    task: str | None = None
    reports: tuple[dict[str, Any], ...] = ()
    workers: tuple[str, ...] = ()
    final: bool = False

    def child(self, name: str, **changes: Any) -> "Scope":
        path = f"{self.path}/{name}" if self.path else name
        return replace(self, path=path, **changes)

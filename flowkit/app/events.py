"""What a use case tells whoever watches it (the CLI prints it; the public API may ignore it).
The use cases themselves never print."""

from __future__ import annotations

from dataclasses import dataclass

from flowkit.backtest.loop import Progress


@dataclass(frozen=True)
class RunStarted:
    """A run is about to decide: what it is, and anything the user should know first."""

    run_id: str
    workflow: str
    kind: str                    # decision | backtest
    symbols: list[str]
    decision_times: int
    models: list[str]            # the distinct model ids the profiles resolve to
    warnings: list[str]
    resumed_after: str | None = None   # resume: the checkpoint it continues from ("" = start)
    beliefs: str | None = None         # which beliefs the agents get, when beliefs are enabled


@dataclass(frozen=True)
class Episode:
    """One finished `train` episode."""

    number: int
    of: int
    run_id: str
    cumulative_return: float
    improved: bool | None        # None: the first episode, or exactly as good as the last
    beliefs: int


class Reporter:
    """Callbacks of a running use case. Every method does nothing here: subclass and override
    what you want to show."""

    def started(self, run: RunStarted) -> None:
        """Before the first decision time (and on resume)."""

    def step(self, symbol: str, as_of: str, step: str, status: str) -> None:
        """A top-level pipeline stage finished (reported for single decisions only)."""

    def progress(self, progress: Progress) -> None:
        """A decision time finished (backtests)."""

    def episode(self, episode: Episode) -> None:
        """A training episode finished."""

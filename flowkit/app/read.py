"""Reading logged runs: the list, one run's transcript, its HTML report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flowkit.errors import ConfigError
from flowkit.runtime.session import existing_db
from flowkit.store.runstore import RunStore, RunSummary


def list_runs(db: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The latest runs first."""
    return RunStore.open(existing_db(db)).runs(limit)


@dataclass
class Moment:
    """One symbol at one decision time: who said what, then the decision and the risk review."""

    symbol: str
    as_of: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    decision: dict[str, Any] | None = None
    review: dict[str, Any] | None = None


@dataclass
class Transcript:
    run_id: str
    workflow: str
    mode: str
    status: str
    started_at: Any
    error: str | None
    moments: list[Moment]


def transcript(run_id: str, db: str | None = None, *, symbol: str | None = None,
               day: str | None = None) -> Transcript:
    """A run's steps in order, grouped by symbol and decision time (optionally one symbol, one
    decision date)."""
    if day:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ConfigError(f"bad --date {day!r}: expected YYYY-MM-DD") from None
    with RunStore.open(existing_db(db)) as store:
        run = store.run(run_id)
        steps = store.steps(run_id, symbol=symbol, day=day)
        decisions = {(d["symbol"], str(d["as_of"])): d for d in store.decisions(run_id, symbol=symbol, day=day)}
        reviews = {(r["symbol"], str(r["as_of"])): r for r in store.risk_reviews(run_id, symbol=symbol, day=day)}
    moments: list[Moment] = []
    for step in steps:
        key = (step["symbol"], str(step["as_of"]))
        if not moments or (moments[-1].symbol, moments[-1].as_of) != key:
            moments.append(Moment(*key, decision=decisions.get(key), review=reviews.get(key)))
        moments[-1].steps.append(dict(step))
    return Transcript(run_id, run["workflow_name"], run["mode"], run["status"], run["started_at"],
                      run["error"], moments)


def report(run_id: str, db: str | None = None, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write the self-contained HTML report of a backtest and its PNG chart; their paths."""
    from flowkit.report import write_report

    store = RunStore.open(existing_db(db))
    store.run(run_id)  # a run that is not there is the user's mistake, said plainly
    html = Path(out or f"reports/{run_id}.html")
    html.parent.mkdir(parents=True, exist_ok=True)
    png = html.with_suffix(".png")
    write_report(store, run_id, html, png=png)
    return html, png

"""Reading logged runs: the list, one run's transcript, its HTML report."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from flowkit.errors import ConfigError


def existing_db(option: str | None) -> str:
    """The event log a reading command opens (--db, then FLOWKIT_DB, then ./flowkit.duckdb);
    it must exist already."""
    path = option or os.environ.get("FLOWKIT_DB") or "flowkit.duckdb"
    if not os.path.exists(path):
        raise ConfigError(f"no event log at {path} (use --db PATH or FLOWKIT_DB)")
    return path


@dataclass
class RunSummary:
    run_id: str
    workflow: str
    mode: str
    status: str
    started_at: Any
    decisions: int
    model_calls: int
    cost_usd: float


def list_runs(db: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The latest runs first."""
    from flowkit.store import open_reader

    if limit < 1:
        raise ConfigError(f"--limit {limit}: expected at least 1")
    with open_reader(existing_db(db)) as con:
        rows = con.execute("""
            SELECT r.run_id, r.workflow_name, r.mode, r.status, r.started_at,
                   (SELECT count(*) FROM decisions d WHERE d.run_id = r.run_id),
                   (SELECT count(*) FROM model_calls c WHERE c.run_id = r.run_id),
                   (SELECT coalesce(sum(cost_usd), 0) FROM model_calls c WHERE c.run_id = r.run_id)
            FROM runs r ORDER BY r.started_at DESC LIMIT ?""", [limit]).fetchall()
    return [RunSummary(*r) for r in rows]


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
    from flowkit.store import open_reader

    if day:
        try:
            date.fromisoformat(day)
        except ValueError:
            raise ConfigError(f"bad --date {day!r}: expected YYYY-MM-DD") from None
    with open_reader(existing_db(db)) as con:
        run = con.execute("SELECT workflow_name, mode, status, started_at, finished_at, error "
                          "FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if run is None:
            raise ConfigError(f"no run {run_id} in this event log (see `flowkit runs`)")
        where, params = "run_id = ?", [run_id]
        if symbol:
            where += " AND symbol = ?"
            params.append(symbol)
        if day:
            where += " AND CAST(as_of AS DATE) = CAST(? AS DATE)"
            params.append(day)
        steps = con.execute(f"SELECT symbol, as_of, step_id, agent, role, pattern, round, status, "
                            f"output, error FROM steps WHERE {where} ORDER BY symbol, as_of, seq",
                            params).fetchall()
        decisions = {(d[0], str(d[1])): d for d in con.execute(
            f"SELECT symbol, as_of, action, size_pct, confidence, reasoning, agent FROM decisions "
            f"WHERE {where}", params).fetchall()}
        reviews = {(r[0], str(r[1])): r for r in con.execute(
            f"SELECT symbol, as_of, verdict, rule, requested_qty, approved_qty FROM risk_reviews "
            f"WHERE {where}", params).fetchall()}
    moments: list[Moment] = []
    for sym, as_of, step_id, agent, role, pattern, rnd, status, output, error in steps:
        key = (sym, str(as_of))
        if not moments or (moments[-1].symbol, moments[-1].as_of) != key:
            d, r = decisions.get(key), reviews.get(key)
            moments.append(Moment(sym, str(as_of), decision=None if d is None else dict(zip(
                ("symbol", "as_of", "action", "size_pct", "confidence", "reasoning", "agent"), d)),
                review=None if r is None else dict(zip(
                    ("symbol", "as_of", "verdict", "rule", "requested_qty", "approved_qty"), r))))
        moments[-1].steps.append({
            "step_id": step_id, "agent": agent, "role": role, "pattern": pattern, "round": rnd,
            "status": status, "error": error,
            "output": json.loads(output) if isinstance(output, str) else output})
    return Transcript(run_id, run[0], run[1], run[2], run[3], run[5], moments)


def report(run_id: str, db: str | None = None, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write the self-contained HTML report of a backtest and its PNG chart; their paths."""
    from flowkit.app.stored import load_run
    from flowkit.backtest.report import write_report

    db = existing_db(db)
    load_run(db, run_id)  # a run that is not there is the user's mistake, said plainly
    html = Path(out or f"reports/{run_id}.html")
    png = html.with_suffix(".png")
    with writing(html, png):
        write_report(db, run_id, html, png=png)
    return html, png


@contextmanager
def writing(*paths: Path) -> Iterator[None]:
    """Create the folders of files the user asked for; failing to write one of them is the
    user's to fix (a read-only folder, a name that is a folder), so it is said plainly."""
    try:
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield
    except OSError as exc:
        ours = {str(p) for path in paths for p in (path, *path.parents)}
        if exc.filename is not None and str(exc.filename) not in ours:
            raise
        raise ConfigError(f"cannot write {exc.filename or paths[0]}: {exc.strerror or exc}") from None

"""Reading logged runs: the list, one run's transcript, its HTML report."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

from flowkit.errors import ConfigError
from flowkit.store.runstore import RunStore, RunSummary


def existing_db(option: str | None) -> str:
    """The event log a reading command opens (--db, then FLOWKIT_DB, then ./flowkit.duckdb);
    it must exist already."""
    path = option or os.environ.get("FLOWKIT_DB") or "flowkit.duckdb"
    if not os.path.exists(path):
        raise ConfigError(f"no event log at {path} (use --db PATH or FLOWKIT_DB)")
    return path


def list_runs(db: str | None = None, limit: int = 20) -> list[RunSummary]:
    """The latest runs first."""
    if limit < 1:
        raise ConfigError(f"--limit {limit}: expected at least 1")
    return RunStore.open(existing_db(db)).runs(min(limit, 2**62))  # more than any log holds


def export(run_id: str, directory: str, db: str | None = None) -> list[str]:
    """Every table of the run as Parquet files in `directory`; the paths written."""
    return RunStore.open(existing_db(db)).export_parquet(run_id, directory)


def run_state(run: RunSummary) -> str:
    """What a user sees: running, interrupted (its process is gone), failed, budget_exceeded,
    or completed. A run whose process died never marked itself, so the log says running."""
    if run.status == "running" and not _alive(run.pid, run.host):
        return "interrupted"
    return run.status or "unknown"


def eta_seconds(run: RunSummary, now: datetime | None = None) -> float | None:
    """Seconds a running run still needs, at the pace of its latest attempt (start or resume
    to its last checkpoint); None until that attempt has committed a checkpoint."""
    if run_state(run) != "running" or not run.decision_times or run.attempt_at is None \
            or run.checkpoint_at is None or run.done <= run.attempt_done:
        return None
    spent = (run.checkpoint_at - run.attempt_at).total_seconds()
    if spent <= 0:
        return None
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    left = (run.decision_times - run.done) * spent / (run.done - run.attempt_done)
    return max(0.0, left - (now - run.checkpoint_at).total_seconds())


def resumable(run: RunSummary) -> bool:
    """`flowkit resume` can continue it: a backtest that stopped before its end."""
    return run.mode == "backtest" and run_state(run) in ("interrupted", "failed", "budget_exceeded")


def _alive(pid: int | None, host: str | None) -> bool:
    """Whether the process is still running; unknown (another machine, no pid) counts as alive."""
    import socket

    if pid is None or host != socket.gethostname():
        return True
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this machine exists (one of another user's counts), a zombie
    (dead, not yet reaped by its parent) excepted."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):  # no /proc (macOS): it exists
        return True


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
    html = output_file(out, Path("reports", f"{run_id}.html"))
    png = html.with_suffix(".png")
    with writing(html, png):
        write_report(store, run_id, html, png=png)
    return html, png


def output_file(out: str | Path | None, default: Path) -> Path:
    """The file an --out option names: `default` without one; inside it when it names a
    folder (an existing one, or a path ending in a slash), under the default's file name."""
    if out is None or str(out) == "":
        return default
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        return path / default.name
    return path


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

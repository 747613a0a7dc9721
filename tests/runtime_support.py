"""Helpers for the runtime tests: small firms in tmp dirs, runs, DuckDB reads (the recording
chat models are in flowkit.testing.models)."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flowkit.store import open_reader

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / "workflows"
SAMPLE_OHLCV = REPO / "flowkit" / "market" / "sample" / "ohlcv"


def last_bar_date(symbol: str) -> str:
    """The date of the last daily bar shipped for `symbol`."""
    lines = (SAMPLE_OHLCV / f"{symbol}.csv").read_text().strip().splitlines()
    return lines[-1].split(",")[0][:10]


def firm(tmp_path: Path, body: str, name: str = "firm.yaml") -> Path:
    """Write a workflow; `body` holds everything except the version/name header."""
    path = tmp_path / name
    path.write_text(f"version: 1\nname: test-{path.stem.replace('_', '-')}\n{body}")
    return path


# The smallest offline firm that trades: a technical analyst and a trader.
ANALYST_TRADER = "models: {default: {model: offline}}\n" \
    "agents: {technical: {role: technical_analyst}, trader: {role: trader}}\n" \
    "pipeline: [technical, trader]\n"


def backtest(path: Path, db: Path, start: str, end: str, every: str) -> Any:
    """Backtest the workflow at `path` through the real runtime into `db`; the completed Outcome."""
    from flowkit.app import Invocation, run_session
    from flowkit.runtime.session import RunOptions, Session
    from flowkit.spec.loader import load_workflow

    session = Session(load_workflow(path, []), RunOptions(db=str(db)))
    try:
        out = asyncio.run(run_session(session, Invocation(start=start, end=end, every=every)))
    finally:
        session.close()
    assert out.status == "completed", out.error
    return out


def logged(db: Path, run_id: str) -> Any:
    """A run's whole record of orders, fills and risk reviews, as the event log holds it (an
    Outcome keeps only its latest decision time's)."""
    from types import SimpleNamespace

    from flowkit.store import RunStore

    with RunStore.open(str(db)) as store:
        return SimpleNamespace(orders=[dict(o) for o in store.orders(run_id)],
                               fills=[dict(f) for f in store.fills(run_id)],
                               reviews=[dict(r) for r in store.risk_reviews(run_id)])


def user_prompt(messages: list[dict[str, Any]]) -> str:
    """The first user message: the rendered prompt template."""
    return next(m["content"] for m in messages if m["role"] == "user")


def run_firm(path: Path, db: Path, models: dict[str, Any] | None = None,
             overrides: list[str] | None = None, symbols: list[str] | None = None,
             date: str | None = None) -> Any:
    """Load, run one decision per symbol through the real runtime, close the log; the Outcome."""
    from flowkit.app import Invocation, run_session
    from flowkit.runtime.session import RunOptions, Session
    from flowkit.spec.loader import load_workflow

    loaded = load_workflow(path, overrides or [])
    session = Session(loaded, RunOptions(db=str(db), symbols=symbols), models=models)
    try:
        return asyncio.run(run_session(session, Invocation(symbols=symbols, date=date), None))
    finally:
        session.close()


def query(db: Path | str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with open_reader(db) as con:
        return con.execute(sql, params or []).fetchall()


def dicts(db: Path | str, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    with open_reader(db) as con:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def steps(db: Path | str, run_id: str) -> list[dict[str, Any]]:
    out = dicts(db, "SELECT * FROM steps WHERE run_id = ? ORDER BY seq", [run_id])
    for row in out:
        for col in ("input", "output"):
            if isinstance(row[col], str):
                row[col] = json.loads(row[col])
    return out


def model_calls(db: Path | str, run_id: str) -> list[dict[str, Any]]:
    out = dicts(db, "SELECT * FROM model_calls_full WHERE run_id = ? ORDER BY started_at, call_id",
                [run_id])
    for row in out:
        if isinstance(row["request"], str):
            row["request"] = json.loads(row["request"])
    return out


def overlap(intervals: list[tuple[Any, Any]]) -> bool:
    """Whether every interval shares one moment: each started before any finished."""
    return max(s for s, _ in intervals) < min(f for _, f in intervals)


def only(rows: list[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


Predicate = Callable[[dict[str, Any]], bool]


def cli(*args: str) -> tuple[int, str]:
    """`flowkit ARGS` in this process: (exit code, stdout + stderr)."""
    from flowkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue() + err.getvalue()


def flowkit_cli(*args: Any) -> tuple[int, str, str]:
    """`flowkit ARGS` in this process; (exit code, stdout, stderr)."""
    from flowkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


AMBIENT = ("FLOWKIT_MODEL", "FLOWKIT_DEEP_MODEL", "FLOWKIT_DB", "OPENAI_API_KEY")


def without_ambient(monkeypatch: Any) -> None:
    """No model, database or key from the environment the tests run in."""
    for name in AMBIENT:
        monkeypatch.delenv(name, raising=False)


def rows(db: Path | str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return query(db, sql, list(params))

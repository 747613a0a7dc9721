"""Helpers for the runtime tests: small firms in tmp dirs, a recording ChatModel, DuckDB reads."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowkit.errors import ModelError
from flowkit.llm.base import ModelRequest, ModelResponse
from flowkit.llm.offline import OfflineModel
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


@dataclass
class Call:
    agent: str
    messages: list[dict[str, Any]]
    outputs_seen: list[str]         # agent ids in the context's `outputs` when the model answered
    transcript_seen: list[tuple[str, int]]
    started: float
    finished: float


@dataclass
class RecordingModel:
    """A ChatModel that answers like the offline model (or from a script), optionally after a
    delay or with an error, and records every request it got.

    delays: agent -> seconds to sleep before answering (an await, like a real HTTP call).
    fail: agent ids whose calls raise ModelError (after the delay).
    script: agent -> list of answers (dicts, sent as JSON) used one per call, before offline.
    """

    delays: dict[str, float] = field(default_factory=dict)
    fail: set[str] = field(default_factory=set)
    script: dict[str, list[Any]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    name: str = "recording"
    _offline: OfflineModel = field(default_factory=OfflineModel)

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        await asyncio.sleep(self.delays.get(request.agent, 0.0))
        ctx = request.context
        call = Call(request.agent, request.messages, sorted(ctx.get("outputs", {})),
                    [(t["agent"], t["round"]) for t in ctx.get("transcript", [])], started, 0.0)
        self.calls.append(call)
        call.finished = time.monotonic()
        if request.agent in self.fail:
            raise ModelError(f"scripted failure for {request.agent}")
        queue = self.script.get(request.agent)
        if queue:
            answer = queue.pop(0)
            content = answer(request) if callable(answer) else answer
            text = content if isinstance(content, str) else json.dumps(content)
            return ModelResponse(model=self.name, content=text, prompt_tokens=1,
                                 completion_tokens=1)
        response = await self._offline.complete(request)
        response.model = self.name
        return response

    async def aclose(self) -> None:
        return None

    def by_agent(self, agent: str) -> list[Call]:
        return [c for c in self.calls if c.agent == agent]


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
    out = dicts(db, "SELECT * FROM model_calls WHERE run_id = ? ORDER BY started_at, call_id",
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


def rows(db: Path | str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return query(db, sql, list(params))

"""Reading runs back: the one way flowkit reads an event log, whoever wrote it and whenever.

A `RunStore` answers typed questions (a run, its decisions, transcript, orders, fills, equity,
metrics, model calls, beliefs) and never holds the file between them: each answer attaches
the file read-only, retrying with backoff while a writer holds it (DuckDB allows one writing
process per file, and a running flowkit holds it for milliseconds per flush), and detaches at
once. `with store:` keeps one attachment for a block of reads that must agree with each other
(a report); keep such a block short, since a writer waits for it.

JSON columns come back decoded; times are naive UTC datetimes. Rows are TypedDicts named after
their tables (columns as in schema.sql, documented in docs/tables.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypedDict

from flowkit.errors import RunNotFound, StoreError

if TYPE_CHECKING:
    import duckdb

    from flowkit.store._rows import Row

Connect = Callable[[], AbstractContextManager["duckdb.DuckDBPyConnection"]]


class Run(TypedDict):
    run_id: str
    workflow_name: str | None
    workflow_path: str | None
    workflow_hash: str | None
    mode: str | None
    parent_run_id: str | None
    status: str | None
    started_at: datetime | None
    finished_at: datetime | None
    config: dict[str, Any]
    error: str | None
    flowkit_version: str | None
    decision_times: int | None
    pid: int | None
    host: str | None


class Step(TypedDict):
    run_id: str
    seq: int
    step_id: str
    symbol: str | None
    as_of: datetime | None
    agent: str | None
    role: str | None
    pattern: str | None
    round: int | None
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    status: str | None
    input: Any
    output: Any
    error: str | None
    repairs: list[str] | None


class Decision(TypedDict):
    run_id: str
    symbol: str
    as_of: datetime
    agent: str | None
    action: str | None
    size_pct: float | None
    target_weight: float | None
    confidence: float | None
    entry: float | None
    stop_loss: float | None
    take_profit: float | None
    reasoning: str | None
    status: str | None


class RiskReview(TypedDict):
    run_id: str
    symbol: str
    as_of: datetime
    verdict: str | None
    rule: str | None
    requested_qty: float | None
    approved_qty: float | None
    details: Any


class Order(TypedDict):
    run_id: str
    order_id: str
    symbol: str | None
    as_of: datetime | None
    side: str | None
    quantity: float | None
    order_type: str | None
    limit_price: float | None
    reason: str | None
    status: str | None
    broker: str | None
    submitted_at: datetime | None


class Fill(TypedDict):
    run_id: str
    fill_id: str
    order_id: str | None
    symbol: str
    time: datetime
    side: str
    quantity: float
    price: float
    fee: float | None
    slippage: float | None


class Snapshot(TypedDict):
    run_id: str
    time: datetime
    cash: float | None
    equity: float | None
    gross_exposure: float | None
    drawdown: float | None
    positions: Any


class RiskStateRow(TypedDict):
    run_id: str
    time: datetime
    equity: float | None
    daily_return: float | None
    cvar: float | None
    reference_cvar: float | None
    risk_averse: bool | None
    halted: bool | None
    drawdown: float | None
    reason: str | None


class MetricsRow(TypedDict):
    run_id: str
    strategy: str
    symbol: str | None
    metrics: dict[str, Any]


class ModelCall(TypedDict):
    run_id: str
    call_id: str
    step_id: str | None
    symbol: str | None
    as_of: datetime | None
    agent: str | None
    model: str | None
    attempt: int | None
    request: Any
    response: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_ms: float | None
    cached: bool | None
    cache_key: str | None
    error: str | None
    started_at: datetime | None
    superseded: bool | None


class HistoryEvent(TypedDict):
    run_id: str
    event: str
    time: datetime
    as_of: datetime | None
    reason: str | None
    superseded: bool | None


class Checkpoint(TypedDict):
    run_id: str
    seq: int
    as_of: datetime
    state: dict[str, Any]
    created_at: datetime | None


class Belief(TypedDict):
    belief_id: str
    run_id: str
    episode: int | None
    created_at: datetime | None
    workflow: str | None
    text: str
    agents: list[str]
    condition: Any
    effect: Any
    evidence: dict[str, Any]
    frozen: bool | None


@dataclass(frozen=True)
class RunSummary:
    """One line of `flowkit runs`."""

    run_id: str
    workflow_name: str | None
    mode: str | None
    status: str | None
    started_at: datetime | None
    decisions: int
    model_calls: int
    cost_usd: float
    done: int                  # decision times committed by the last checkpoint
    decision_times: int | None  # the run's total (None: logged before flowkit recorded it)
    pid: int | None
    host: str | None
    # The pace of its latest attempt (its start or resume): decision times done when it
    # began and when it began, and when the last checkpoint was committed (None: none yet).
    attempt_done: int = 0
    attempt_at: datetime | None = None
    checkpoint_at: datetime | None = None


@dataclass(frozen=True)
class CallTotals:
    """A run's model calls summed up: the calls that made its result, and the cost of every
    call made for it (attempts a resume superseded included: that money was spent)."""

    calls: int
    cached: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    models: tuple[str, ...]


class RunTally:
    """A run's decisions and model calls counted as their rows are appended, by the rules of
    `RunStore.decision_count` and `call_totals`, so the end of a run need not wait for the log's
    last commit to read them back. `RunStore.tally(run_id)` starts one from what the log already
    holds: a resumed run's earlier attempts, superseded ones' cost included."""

    def __init__(self, decisions: int = 0, totals: CallTotals | None = None) -> None:
        t = totals or CallTotals(0, 0, 0, 0, 0.0, ())
        self.decisions = decisions
        self._calls, self._cached = t.calls, t.cached
        self._prompt, self._completion, self._cost = t.prompt_tokens, t.completion_tokens, t.cost_usd
        self._models = set(t.models)

    def add(self, table: str, row: dict[str, Any]) -> None:
        if table == "decisions":
            self.decisions += 1
        elif table == "model_calls":
            self._cost += row.get("cost_usd") or 0.0
            if row.get("superseded"):
                return
            self._calls += 1
            self._cached += bool(row.get("cached"))
            self._prompt += row.get("prompt_tokens") or 0
            self._completion += row.get("completion_tokens") or 0
            if row.get("model") is not None:
                self._models.add(row["model"])

    def totals(self) -> CallTotals:
        return CallTotals(self._calls, self._cached, self._prompt, self._completion, self._cost,
                          tuple(sorted(self._models)))


class RunStore:
    """Typed reads of an event log (see the module docstring). Build one with `open(path)`, `of`
    (a path, a store or an open connection) or an EventSink's `reader()`; use each from one
    thread at a time (a `with` block's attachment belongs to the store)."""

    def __init__(self, connect: Connect, where: str, *, before: Callable[[], None] | None = None):
        self._connect = connect
        self._before = before       # e.g. flush the sink this store reads
        self._block: AbstractContextManager[duckdb.DuckDBPyConnection] | None = None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._depth = 0
        self.where = where          # what the messages call the log: its path

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, timeout: float = 30.0) -> RunStore:
        """The event log file at `path`, read-only; each read waits up to `timeout` s for a writer."""
        from flowkit.store._db import attached, settle_writes

        path = os.path.abspath(os.fspath(path))
        settle_writes(path)  # an EventLog of this process may still be creating the file
        if not os.path.exists(path):
            raise StoreError(f"no event log at {path} (use --db PATH or FLOWKIT_DB)")
        return cls(lambda: attached(path, read_only=True, timeout=timeout), path)

    @classmethod
    def of(cls, source: Any) -> RunStore:
        """A store for a path, an existing store, or an open DuckDB connection (used as it is)."""
        if isinstance(source, RunStore):
            return source
        if isinstance(source, (str, os.PathLike)):
            return cls.open(source)
        return cls(lambda: nullcontext(source), "the given connection")

    @classmethod
    def from_rows(cls, tables: Callable[[], Mapping[str, list[Row]]]) -> RunStore:
        """A store over rows held in memory (converted by RowChecker): `tables()` is called at
        each read (or `with` block) for the rows per table, e.g. a MemorySink's."""
        return cls(lambda: _in_memory(tables()), "memory")

    # ---- one attachment for a block of reads ----------------------------------------------

    def __enter__(self) -> RunStore:
        if self._depth == 0:
            if self._before is not None:
                self._before()
            self._block = self._connect()
            self._con = self._block.__enter__()
        self._depth += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self._depth -= 1
        if self._depth == 0 and self._block is not None:
            block, self._block, self._con = self._block, None, None
            block.__exit__(*exc)

    # ---- runs -----------------------------------------------------------------------------

    def runs(self, limit: int = 20) -> list[RunSummary]:
        """The latest runs first, with their decision and model-call counts and cost."""
        rows = self._rows("""
            SELECT r.run_id, r.workflow_name, r.mode, r.status, r.started_at,
                   (SELECT count(*) FROM decisions d WHERE d.run_id = r.run_id) AS decisions,
                   (SELECT count(*) FROM model_calls c WHERE c.run_id = r.run_id
                    AND c.superseded IS NOT TRUE) AS model_calls,
                   (SELECT coalesce(sum(cost_usd), 0) FROM model_calls c
                    WHERE c.run_id = r.run_id) AS cost_usd,
                   (SELECT coalesce(max(seq) + 1, 0) FROM checkpoints k
                    WHERE k.run_id = r.run_id) AS done,
                   r.decision_times, r.pid, r.host,
                   (SELECT coalesce(max(seq) + 1, 0) FROM checkpoints k
                    WHERE k.run_id = r.run_id AND k.created_at < a.attempt_at) AS attempt_done,
                   a.attempt_at,
                   (SELECT max(created_at) FROM checkpoints k
                    WHERE k.run_id = r.run_id AND k.created_at >= a.attempt_at) AS checkpoint_at
            FROM runs r LEFT JOIN (SELECT run_id, max(time) AS attempt_at FROM run_history
                                   WHERE event IN ('started', 'resumed') GROUP BY run_id) a
                 USING (run_id)
            ORDER BY r.started_at DESC NULLS LAST LIMIT ?""", [limit])
        return [RunSummary(**r) for r in rows]

    def run(self, run_id: str) -> Run:
        """The run's row (config decoded); RunNotFound when the log has no such run."""
        found = self._rows("SELECT * FROM runs WHERE run_id = ? ORDER BY started_at DESC LIMIT 1",
                           [run_id])
        if not found:
            raise RunNotFound(f"no run {run_id} in {self.where} (see `flowkit runs`)")
        run = found[0]
        run["config"] = run["config"] or {}
        return run  # type: ignore[return-value]

    def latest_child(self, run_id: str, mode: str) -> Run | None:
        """The latest run of `mode` derived from `run_id` (a replay, a seed, a resume)."""
        found = self._rows("SELECT * FROM runs WHERE parent_run_id = ? AND mode = ? "
                           "ORDER BY started_at DESC LIMIT 1", [run_id, mode])
        return found[0] if found else None  # type: ignore[return-value]

    def history(self, run_id: str) -> list[HistoryEvent]:
        """The run's starts, resumes and ends, oldest first (superseded attempts included)."""
        return self._rows("SELECT * FROM run_history WHERE run_id = ? ORDER BY time",
                          [run_id])  # type: ignore[return-value]

    def last_checkpoint(self, run_id: str) -> Checkpoint | None:
        found = self._rows("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY seq DESC LIMIT 1",
                           [run_id])
        return found[0] if found else None  # type: ignore[return-value]

    # ---- what the firm decided and did ------------------------------------------------------

    def decisions(self, run_id: str, *, symbol: str | None = None,
                  day: date | str | None = None) -> list[Decision]:
        """In time order, then symbol; optionally one symbol and/or one (UTC) day."""
        where, params = _filter(run_id, symbol, day)
        return self._rows(f"SELECT * FROM decisions WHERE {where} ORDER BY as_of, symbol",
                          params)  # type: ignore[return-value]

    def decision_count(self, run_id: str) -> int:
        return self._scalar("SELECT count(*) FROM decisions WHERE run_id = ?", [run_id])

    def risk_reviews(self, run_id: str, *, symbol: str | None = None,
                     day: date | str | None = None) -> list[RiskReview]:
        where, params = _filter(run_id, symbol, day)
        return self._rows(f"SELECT * FROM risk_reviews WHERE {where} ORDER BY as_of, symbol",
                          params)  # type: ignore[return-value]

    def steps(self, run_id: str, *, symbol: str | None = None,
              day: date | str | None = None) -> list[Step]:
        """The transcript: by symbol, decision time, then the order steps finished in."""
        where, params = _filter(run_id, symbol, day)
        return self._rows(f"SELECT * FROM steps WHERE {where} ORDER BY symbol, as_of, seq",
                          params)  # type: ignore[return-value]

    def last_step_seq(self, run_id: str) -> int:
        """The highest step number logged for the run, -1 when none."""
        return self._scalar("SELECT coalesce(max(seq), -1) FROM steps WHERE run_id = ?", [run_id])

    def orders(self, run_id: str) -> list[Order]:
        return self._rows("SELECT * FROM orders WHERE run_id = ? ORDER BY submitted_at, order_id",
                          [run_id])  # type: ignore[return-value]

    def fills(self, run_id: str) -> list[Fill]:
        return self._rows("SELECT * FROM fills WHERE run_id = ? ORDER BY time, fill_id",
                          [run_id])  # type: ignore[return-value]

    def snapshots(self, run_id: str) -> list[Snapshot]:
        """The portfolio after each decision time: the equity curve."""
        return self._rows("SELECT * FROM portfolio WHERE run_id = ? ORDER BY time",
                          [run_id])  # type: ignore[return-value]

    def risk_state(self, run_id: str) -> list[RiskStateRow]:
        """The risk engine's state at each decision time: CVaR, its reference, risk-averse or
        not and why, the drawdown halt."""
        return self._rows("SELECT * FROM risk_state WHERE run_id = ? ORDER BY time",
                          [run_id])  # type: ignore[return-value]

    def metrics(self, run_id: str) -> list[MetricsRow]:
        """The rows flowkit.backtest.evaluate stores (the firm, baselines, price series)."""
        return self._rows("SELECT * FROM metrics WHERE run_id = ? ORDER BY strategy, symbol",
                          [run_id])  # type: ignore[return-value]

    # ---- models and learning -----------------------------------------------------------------

    def model_calls(self, run_id: str) -> list[ModelCall]:
        return self._rows("SELECT * FROM model_calls_full WHERE run_id = ? ORDER BY started_at, call_id",
                          [run_id])  # type: ignore[return-value]

    def call_totals(self, run_id: str) -> CallTotals:
        [row] = self._rows("""
            SELECT count(*) FILTER (WHERE result) AS calls,
                   count(*) FILTER (WHERE result AND cached) AS cached,
                   coalesce(sum(prompt_tokens) FILTER (WHERE result), 0) AS prompt_tokens,
                   coalesce(sum(completion_tokens) FILTER (WHERE result), 0) AS completion_tokens,
                   coalesce(sum(cost_usd), 0) AS cost_usd,
                   list_sort(list_distinct(list(model) FILTER (WHERE result))) AS models
            FROM (SELECT *, superseded IS NOT TRUE AS result FROM model_calls WHERE run_id = ?)""",
                           [run_id])
        row["models"] = tuple(row["models"] or ())
        return CallTotals(**row)

    def tally(self, run_id: str) -> RunTally:
        """A RunTally holding what the log has of the run, to count on from."""
        return RunTally(self.decision_count(run_id), self.call_totals(run_id))

    def beliefs(self, workflow: str, *, run_id: str | None = None) -> list[Belief]:
        """Frozen beliefs of training run `run_id`, else of the latest training run of `workflow`."""
        if run_id is None:
            latest = self._rows("SELECT run_id FROM beliefs WHERE workflow = ? AND frozen "
                                "ORDER BY created_at DESC LIMIT 1", [workflow])
            if not latest:
                return []
            run_id = latest[0]["run_id"]
        return self._rows("SELECT * FROM beliefs WHERE workflow = ? AND frozen AND run_id = ? "
                          "ORDER BY belief_id", [workflow, run_id])  # type: ignore[return-value]

    # ---- internals -------------------------------------------------------------------------

    # ---- export ----------------------------------------------------------------------------

    def export_parquet(self, run_id: str, directory: str | os.PathLike[str]) -> list[str]:
        """Write every table's rows of the run to DIRECTORY/<table>.parquet; the paths written.
        model_calls holds the full prompts (as model_calls_full), so prompt_parts is not needed;
        model_cache holds the entries the run's calls used."""
        import duckdb

        from flowkit.store._db import schema, sql_literal

        self.run(run_id)  # RunNotFound first
        out = os.path.abspath(os.fspath(directory))
        try:
            os.makedirs(out, exist_ok=True)
        except OSError as exc:  # a file there, no permission, a read-only or pseudo file system
            raise StoreError(f"cannot export run {run_id} to {out}: "
                             f"{exc.strerror or exc}") from None
        run = sql_literal(run_id)
        queries = {table: f'SELECT * FROM "{table}" WHERE run_id = {run}' for table in schema()
                   if table not in ("model_calls", "model_cache", "prompt_parts")}
        queries["model_calls"] = f"SELECT * FROM model_calls_full WHERE run_id = {run}"
        queries["model_cache"] = ("SELECT * FROM model_cache WHERE cache_key IN (SELECT cache_key "
                                  f"FROM model_calls WHERE run_id = {run})")
        written = []
        with self:
            assert self._con is not None
            for table, query in sorted(queries.items()):
                path = os.path.join(out, f"{table}.parquet")
                try:
                    self._con.execute(f"COPY ({query}) TO {sql_literal(path)} (FORMAT PARQUET)")
                except duckdb.Error as exc:
                    raise StoreError(f"cannot export {table} of run {run_id} to {path}: {exc}") from None
                written.append(path)
        return written

    def _rows(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        import duckdb

        with self:
            assert self._con is not None
            try:
                cur = self._con.execute(sql, params)
            except duckdb.Error as exc:
                raise StoreError(f"cannot read the event log {self.where}: {exc}") from None
            names = [d[0] for d in cur.description]
            decode = [d[1] == "JSON" for d in cur.description]
            return [{n: _decode(v) if j else v for n, j, v in zip(names, decode, row, strict=True)}
                    for row in cur.fetchall()]

    def _scalar(self, sql: str, params: list[Any]) -> Any:
        [row] = self._rows(sql, params)
        return next(iter(row.values()))


def _filter(run_id: str, symbol: str | None, day: date | str | None) -> tuple[str, list[Any]]:
    where, params = "run_id = ?", [run_id]
    if symbol is not None:
        where += " AND symbol = ?"
        params.append(symbol)
    if day is not None:
        where += " AND CAST(as_of AS DATE) = ?"
        params.append(date.fromisoformat(day) if isinstance(day, str) else day)
    return where, params


def _decode(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


@contextmanager
def _in_memory(tables: Mapping[str, list[Row]]) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory database with schema.sql's tables holding `tables`' rows."""
    from flowkit.store._db import attached, ensure_schema, schema
    from flowkit.store._rows import staged_rows

    with attached(":memory:", read_only=False, timeout=0) as con:
        ensure_schema(con)
        kinds = schema()
        for table, rows in tables.items():
            if rows:
                with staged_rows(kinds[table], rows) as (columns, source):
                    quoted = ", ".join(f'"{c}"' for c in columns)
                    con.execute(f'INSERT INTO "{table}" ({quoted}) SELECT {quoted} FROM {source}')
        yield con

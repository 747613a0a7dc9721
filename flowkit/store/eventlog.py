"""The event log: every part of flowkit appends rows here; a writer thread commits them.

DuckDB lets one process at a time open a file, so the log never keeps it open: appends only
buffer in memory, and a background thread attaches the file, writes everything buffered in one
transaction (a DataFrame insert per table), commits and detaches it again, every
`flush_interval` seconds, when `max_buffer_rows` rows are waiting, or when someone waits on
`flush()` (a checkpoint does). Few commits keep the file small: each one leaves free space. Between flushes other processes (`flowkit runs`, `flowkit show`, `open_reader`) can
read the file; while they hold it the writer keeps the rows and retries, dropping nothing.
(Queries through the log also attach the file just for their duration: see _db.attached.)
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import signal
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from flowkit.errors import StoreError
from flowkit import secrets
from flowkit.store._db import Busy, attached, cursor, ensure_schema, unique_name
from flowkit.store._prompts import PromptParts
from flowkit.store._redact import macro_sql
from flowkit.store._rows import Row, RowChecker, register_rows
from flowkit.store._values import to_json
from flowkit.store.runstore import RunStore
from flowkit.store.sink import DISCARD_COLUMNS, SUPERSEDE_COLUMNS, cache_row, checkpoint_row, discard_cutoff

if TYPE_CHECKING:
    import duckdb
    import pandas

log = logging.getLogger("flowkit.store")

_RETRY_MIN = 0.002                     # writer's first retry delay after a failed flush
_RETRY_MAX_BUSY = 0.05                 # ... while another process holds the file (it will let go)
_RETRY_MAX_BROKEN = 2.0                # ... when writing fails otherwise (disk full, table dropped)
_FRAME = "flowkit_rows"                # name the batch frame is registered under while inserting
# Test hooks: the process dies (os._exit, like kill -9) once its Nth checkpoint is committed, so
# kill/resume tests choose their kill point by count, never by timing; with KILL_SIGNAL set
# (SIGTERM, SIGINT) it sends itself that signal instead, as a user or a scheduler would.
KILL_AFTER_CHECKPOINTS = "FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS"
KILL_SIGNAL = "FLOWKIT_TEST_KILL_SIGNAL"

T = TypeVar("T")


class _Request:
    """A flush/operation someone may be waiting on; answered after the commit that covers it."""

    __slots__ = ("deadline", "done", "error", "result", "run")

    def __init__(self, run: Callable[[duckdb.DuckDBPyConnection], int] | None, deadline: float):
        self.run = run
        self.deadline = deadline
        self.done = threading.Event()
        self.result = 0
        self.error: StoreError | None = None

    def answer(self, error: StoreError | None = None) -> None:
        self.error = error
        self.done.set()

    def wait(self, writer: threading.Thread) -> int:
        while not self.done.wait(0.25):
            if not writer.is_alive():
                raise StoreError("the event log's writer thread has stopped")
        if self.error is not None:
            raise self.error
        return self.result


class _Segment:
    """Rows per table, then (optionally) an operation that must run after exactly those rows."""

    __slots__ = ("op", "rows")

    def __init__(self) -> None:
        self.rows: defaultdict[str, list[Row]] = defaultdict(list)
        self.op: _Request | None = None


class EventLog:
    """Append-only, thread-safe event log on a DuckDB file (see the module docstring).

    `lock_timeout`: how long flush()/checkpoint()/discard_after()/query() wait for another
    process to release the file before raising StoreError (the rows stay buffered).
    """

    def __init__(self, path: str | os.PathLike[str], *, flush_interval: float = 5.0,
                 max_buffer_rows: int = 20000, lock_timeout: float = 60.0):
        # Loaded now, not at the first flush: that may run at interpreter exit, when imports that
        # register atexit hooks (pandas does) fail.
        import pandas  # noqa: F401

        self.path = os.path.abspath(os.fspath(path))
        self.flush_interval = flush_interval
        self.max_buffer_rows = max_buffer_rows
        self.lock_timeout = lock_timeout
        self._rows = RowChecker()
        self._prompts = PromptParts(self._add_part)
        self._kill_after = int(os.environ.get(KILL_AFTER_CHECKPOINTS) or 0)
        self._convert = self._rows.convert
        self._columns = self._rows.columns
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self._attached(lock_timeout) as con:
            ensure_schema(con)
            self._cache_keys = {key for (key,) in con.execute(
                "SELECT DISTINCT cache_key FROM model_cache WHERE cache_key IS NOT NULL").fetchall()}
        self._cache_text: dict[str, str] = {}   # JSON text of entries put or read in this session
        self._redact = f"memory.main.{unique_name('flowkit_redact')}"  # defined in memory
        self._redaction = -1  # secrets.generation() the macro was built for
        self._define_redaction()

        self._lock = threading.Lock()  # guards the buffer; append takes it directly (cheaper)
        self._cond = threading.Condition(self._lock)
        self._segments = [_Segment()]
        self._tail = self._segments[0].rows
        self._waiting: list[_Request] = []
        self._pending = 0
        self._closing = False    # no more appends
        self._stopping = False   # the writer exits after its current batch
        self._last_warning = ""  # the writer's last logged failure, so a retry loop logs it once
        self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"flowkit-eventlog:{os.path.basename(self.path)}")
        self._thread.start()
        atexit.register(self.close)

    # ---- writing ---------------------------------------------------------------------------

    def append(self, table: str, row: Row) -> None:
        """Buffer one row; it is committed by the next flush. Bad tables/columns/values raise here.
        A model call's messages are stored content-addressed (see _prompts)."""
        if table == "model_calls" and "request" in row:
            with self._lock:  # its new parts must be buffered before (so committed with) the row
                row = {**row, "request": self._prompts.lean(row["request"])}
        clean = self._convert(table, row)
        with self._lock:
            if self._closing:
                raise StoreError(f"the event log {self.path} is closed")
            self._tail[table].append(clean)
            self._pending += 1
            if self._pending == self.max_buffer_rows:
                self._cond.notify()
        if self._kill_after and table == "checkpoints":
            self._kill_after -= 1
            if not self._kill_after:
                self.flush()
                if os.environ.get(KILL_SIGNAL):
                    os.kill(os.getpid(), signal.Signals[os.environ[KILL_SIGNAL]])
                else:
                    os._exit(137)

    def _add_part(self, key: str, text: str) -> None:
        """A prompt line new to this log (called under the lock, from append)."""
        if self._closing:
            raise StoreError(f"the event log {self.path} is closed")
        self._tail["prompt_parts"].append(self._convert("prompt_parts", {"part_id": key, "text": text}))
        self._pending += 1

    def flush(self) -> None:
        """Block until every row appended before this call is committed."""
        self._request(None)

    def checkpoint(self, run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> None:
        """Commit everything appended so far together with the checkpoint row."""
        self.append("checkpoints", checkpoint_row(run_id, seq, as_of, state))
        self.flush()

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Update this run's `runs` row, after every row appended before the call is written."""
        if not fields:
            return
        row = self._convert("runs", {**fields, "run_id": run_id})
        with self._cond:
            if self._closing:
                raise StoreError(f"the event log {self.path} is closed")
            self._queue_op(_Request(lambda con: self._update_run(con, row), math.inf))

    def discard_after(self, run_id: str, as_of: Any) -> int:
        """Delete this run's rows later than `as_of` and its metrics; mark its later model calls
        and its history superseded (see the EventSink contract); returns how many rows changed."""
        cutoff = discard_cutoff(as_of)

        def discard(con: duckdb.DuckDBPyConnection) -> int:
            gone = sum(_count(con, f'DELETE FROM "{table}" WHERE run_id = ? AND "{column}" > ?', [run_id, cutoff])
                       for table, column in DISCARD_COLUMNS.items())
            gone += _count(con, "DELETE FROM metrics WHERE run_id = ?", [run_id])
            for table, column in SUPERSEDE_COLUMNS.items():
                after = f' AND "{column}" > ?' if column else ""
                gone += _count(con, f'UPDATE "{table}" SET superseded = true WHERE run_id = ?{after} '
                                    f'AND superseded IS NOT TRUE', [run_id, cutoff] if column else [run_id])
            return gone

        return self._request(discard)

    def close(self) -> None:
        """Flush and stop the writer thread. Idempotent; also runs at interpreter exit."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
        atexit.unregister(self.close)
        try:
            self.flush()
        except StoreError as exc:
            raise StoreError(f"closing the event log lost the rows it could not write: {exc}") from exc
        finally:
            with self._cond:
                self._stopping = True
                self._cond.notify()
            self._thread.join()
            with cursor() as con:
                con.execute(f"DROP MACRO IF EXISTS {self._redact}")

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- reading ---------------------------------------------------------------------------

    def reader(self) -> RunStore:
        """Typed reads of this file; each read flushes first, so it sees every row appended
        before it."""
        return RunStore(lambda: attached(self.path, read_only=True, timeout=self.lock_timeout),
                        self.path, before=self.flush)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Flush, then run `sql` with the file attached for just this call. Plain SQL for
        users and tests; flowkit itself reads through reader()."""
        self.flush()
        return self._read(sql, params, lambda result: result.fetchall())

    def query_df(self, sql: str, params: Sequence[Any] = ()) -> pandas.DataFrame:
        self.flush()
        return self._read(sql, params, lambda result: result.df())

    # ---- model response cache (flowkit.llm.cache) --------------------------------------------

    def cache_get(self, key: str) -> dict[str, Any] | None:
        """The payload stored under `key`, or None. A miss never touches the file."""
        text = self._cache_text.get(key)
        if text is None:
            if key not in self._cache_keys:
                return None
            found = self._read("SELECT response FROM model_cache WHERE cache_key = ? "
                               "ORDER BY created_at DESC NULLS LAST LIMIT 1", [key],
                               lambda result: result.fetchone())
            if found is None or found[0] is None:
                return None
            text = self._cache_text[key] = found[0]
        return json.loads(text)

    def cache_put(self, key: str, model: str, payload: dict[str, Any]) -> None:
        text = to_json(payload)
        self.append("model_cache", cache_row(key, model, text))
        self._cache_text[key] = text

    # ---- internals -------------------------------------------------------------------------

    def _queue_op(self, op: _Request) -> None:
        """Close the tail segment with `op`, so it runs after exactly the rows buffered so far."""
        self._segments[-1].op = op
        self._segments.append(_Segment())
        self._tail = self._segments[-1].rows

    def _request(self, run: Callable[[duckdb.DuckDBPyConnection], int] | None) -> int:
        request = _Request(run, time.monotonic() + self.lock_timeout)
        with self._cond:
            if self._stopping:
                if run is None:
                    return 0  # closed: nothing can be buffered
                raise StoreError(f"the event log {self.path} is closed")
            if run is not None:
                self._queue_op(request)
            self._waiting.append(request)
            self._cond.notify()
        return request.wait(self._thread)

    def _write_loop(self) -> None:
        delay = _RETRY_MIN
        while True:
            with self._cond:
                if not (self._waiting or self._stopping or self._pending >= self.max_buffer_rows):
                    self._cond.wait(self.flush_interval)
                segments, self._segments = self._segments, [_Segment()]
                self._tail = self._segments[0].rows
                waiting, self._waiting = self._waiting, []
                pending, self._pending = self._pending, 0
                stopping = self._stopping
            if pending or any(s.op is not None for s in segments):
                try:
                    self._write(segments)
                except Exception as exc:  # noqa: BLE001 - keep everything and retry; see _give_back
                    busy = self._give_back(segments, waiting, pending, exc)
                    if stopping:
                        return
                    with self._cond:  # a new flush() request cuts the backoff short
                        self._cond.wait(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, _RETRY_MAX_BUSY if busy else _RETRY_MAX_BROKEN)
                    continue
            delay = _RETRY_MIN
            self._last_warning = ""
            for request in waiting:
                request.answer()
            if stopping:
                return

    def _write(self, segments: list[_Segment]) -> None:
        """One transaction: each segment's rows, then its operation. Raises Busy if locked."""
        import duckdb

        self._define_redaction()
        with self._attached(0) as con:
            con.begin()
            try:
                for segment in segments:
                    for table, rows in segment.rows.items():
                        columns = self._register(con, table, rows)
                        select = select_sql(self._columns[table], columns, _FRAME, self._redact)
                        if table == "prompt_parts":  # another session may have stored a line
                            select = (f"SELECT DISTINCT * FROM ({select}) WHERE part_id NOT IN "
                                      f"(SELECT part_id FROM prompt_parts)")
                        con.execute(f'INSERT INTO "{table}" BY NAME {select}')
                    op = segment.op
                    if op is not None and op.run is not None and not op.done.is_set():
                        op.result = op.run(con)  # (done already = its caller gave up on it)
                con.commit()
            except BaseException:
                with contextlib.suppress(duckdb.Error):  # nothing to roll back if commit failed
                    con.rollback()
                raise

    def _give_back(self, segments: list[_Segment], waiting: list[_Request], pending: int,
                   exc: Exception) -> bool:
        """Put a failed batch back in front of the buffer. Waiters are answered with an error
        when the file is broken (not just busy) or their lock_timeout has passed; the rows stay.
        Returns whether the failure was only a busy file."""
        busy = isinstance(exc, Busy)
        now = time.monotonic()
        if busy:
            error = StoreError(f"the event log {self.path} stayed busy for {self.lock_timeout:g}s: "
                               f"{exc.__cause__ or exc}")
        else:
            error = exc if isinstance(exc, StoreError) else StoreError(f"cannot write the event log {self.path}: {exc}")
        keep = []
        for request in waiting:
            if busy and now < request.deadline:
                keep.append(request)
            else:
                request.answer(StoreError(f"{error} ({pending} rows kept in memory, will retry)"))
        if not busy and str(error) != self._last_warning:  # once per distinct error
            self._last_warning = str(error)
            log.warning("%s; %d rows kept in memory, will retry", error, pending)
        with self._cond:
            self._segments = segments + self._segments
            self._waiting = keep + self._waiting
            self._pending += pending
        return busy

    def _define_redaction(self) -> None:
        """(Re)build the macro when a credential variable was named since (an api_key_env
        read after the log opened), so its value is masked from the next write on."""
        if self._redaction != secrets.generation():
            self._redaction = secrets.generation()
            with cursor() as con:
                con.execute(macro_sql(self._redact, secrets.credentials()))

    def _update_run(self, con: duckdb.DuckDBPyConnection, row: Row) -> int:
        columns = self._register(con, "runs", [row])
        sets = ", ".join(f'"{c}" = u."{c}"' for c in columns if c != "run_id")
        select = select_sql(self._columns["runs"], columns, _FRAME, self._redact)
        return _count(con, f"UPDATE runs SET {sets} FROM ({select}) AS u WHERE runs.run_id = u.run_id")

    def _register(self, con: duckdb.DuckDBPyConnection, table: str, rows: list[Row]) -> list[str]:
        return register_rows(con, self._columns[table], rows, _FRAME)

    def _attached(self, timeout: float) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return attached(self.path, read_only=False, timeout=timeout)

    def _read(self, sql: str, params: Sequence[Any], fetch: Callable[[Any], T]) -> T:
        import duckdb

        with self._attached(self.lock_timeout) as con:
            try:
                return fetch(con.execute(sql, list(params)))
            except duckdb.Error as exc:
                raise StoreError(f"query on {self.path} failed: {exc}") from exc


def select_sql(kinds: dict[str, str], columns: list[str], source: str, redact: str) -> str:
    """SELECT over a frame of buffered values, with every string redacted by macro `redact`.

    The string columns go through the macro as one list, so its regexes are compiled
    once per statement rather than once per column (that dominated small flushes). JSON text
    that redaction made invalid (a secret inside a number) is stored as a JSON string."""
    texts = [c for c in columns if kinds[c] in ("VARCHAR", "JSON")]
    inner = [f'"{c}"' for c in columns if c not in texts]
    if texts:
        quoted = ", ".join(f'"{c}"' for c in texts)
        inner.append(f"list_transform([{quoted}], lambda s: {redact}(s)) AS flowkit_texts")
    outer = []
    for c in columns:
        if c not in texts:
            outer.append(f'"{c}"')
            continue
        value = f"flowkit_texts[{texts.index(c) + 1}]"
        if kinds[c] == "JSON":
            value = f"CASE WHEN json_valid({value}) THEN {value} ELSE to_json({value}) END"
        outer.append(f'{value} AS "{c}"')
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {source})"


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    """Rows changed by an UPDATE/DELETE."""
    row = con.execute(sql, list(params)).fetchone()
    return row[0] if row else 0


"""The event log: every part of flowkit appends rows here; a writer thread commits them.

DuckDB lets one process at a time open a file, so the log never keeps it open: appends only
buffer in memory, and a background thread attaches the file, writes everything buffered in one
transaction (an insert per table, staged as JSON), commits and detaches it again, every
`flush_interval` seconds, when `max_buffer_rows` rows are waiting, when a checkpoint row is
appended, or when someone asks with `flush()`. Few commits keep the file small: each one leaves
free space. The caller's thread never waits for the file except to read it (see close()).
Between flushes other processes (`flowkit runs`, `flowkit show`, `open_reader`) can read the
file; while they hold it the writer keeps the rows and retries, dropping nothing.
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
from flowkit.store._db import (Busy, attached, create_log, cursor, ensure_schema,
                               register_writer, settle_writes, unique_name)
from flowkit.store._redact import macro_sql
from flowkit.store._rows import Row, RowChecker, staged_rows
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
# Test hooks: the process dies (os._exit, like kill -9) once its Nth checkpoint is committed (0:
# as its first is appended, which is never logged), so
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

    def __init__(self, path: str | os.PathLike[str], *, flush_interval: float = 2.0,
                 max_buffer_rows: int = 20000, lock_timeout: float = 60.0):
        self.path = os.path.abspath(os.fspath(path))
        self.flush_interval = flush_interval
        self.max_buffer_rows = max_buffer_rows
        self.lock_timeout = lock_timeout
        self._rows = RowChecker()
        hook = os.environ.get(KILL_AFTER_CHECKPOINTS)  # checkpoints left before the test hook kills
        self._kill_after = int(hook) if hook else None
        self._convert = self._rows.convert
        self._columns = self._rows.columns
        if not _check_file(self.path):  # a new file gets its tables now, so other processes
            create_log(self.path)        # see a complete log at once; the writer opens it
        self._ready = threading.Event()         # the writer has opened the file (schema, cache keys)
        self._cache_keys: set[str] = set()
        self._cache_text: dict[str, str] = {}   # JSON text of entries put or read in this session
        self._redact = f"memory.main.{unique_name('flowkit_redact')}"  # defined in memory
        self._redaction = -1  # secrets.generation() the macro was built for

        self._lock = threading.Lock()  # guards the buffer; append takes it directly (cheaper)
        self._cond = threading.Condition(self._lock)
        self._segments = [_Segment()]
        self._tail = self._segments[0].rows
        self._waiting: list[_Request] = []
        self._pending = 0
        self._unwritten = 0      # rows and operations appended but not committed yet
        self._soon = False       # someone asked for a commit without waiting for it
        self._closing = False    # no more appends
        self._stopping = False   # the writer exits once everything is written
        self._close_deadline = math.inf  # ... or, if the file stays unwritable, at this time
        self._lost: StoreError | None = None  # why rows were left unwritten at close
        self._last_warning = ""  # the writer's last logged failure, so a retry loop logs it once
        self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                        name=f"flowkit-eventlog:{os.path.basename(self.path)}")
        self._thread.start()
        register_writer(self.path, self)
        atexit.register(self._at_exit)

    # ---- writing ---------------------------------------------------------------------------

    def append(self, table: str, row: Row) -> None:
        """Buffer one row; it is committed by the next flush. Bad tables/columns/values raise here."""
        clean = self._convert(table, row)
        if self._kill_after == 0 and table == "checkpoints":
            self._die()  # FLOWKIT_TEST_KILL_AFTER_CHECKPOINTS=0: dies before its first checkpoint
        with self._lock:
            if self._closing:
                raise self._lost or StoreError(f"the event log {self.path} is closed")
            self._tail[table].append(clean)
            self._pending += 1
            self._unwritten += 1
            if self._pending == self.max_buffer_rows or table == "checkpoints":
                self._soon = True  # a checkpoint is committed at once, not a flush_interval later
                self._cond.notify()
        if self._kill_after is not None and table == "checkpoints":
            self._kill_after -= 1
            if not self._kill_after:
                self._die()

    def _die(self) -> None:
        """The test hook's death: everything appended so far committed, then kill -9 or a signal
        (which a run may survive to log more: the hook fires once)."""
        self._kill_after = None
        self.flush()
        if os.environ.get(KILL_SIGNAL):
            os.kill(os.getpid(), signal.Signals[os.environ[KILL_SIGNAL]])
        else:
            os._exit(137)

    def flush(self, wait: bool = True) -> None:
        """Block until every row appended before this call is committed; with wait=False, ask
        the writer to commit now and return at once. After close(): wait for its last write."""
        if not wait:
            with self._cond:
                self._soon = True
                self._cond.notify()
            return
        self._request(None)

    def checkpoint(self, run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> None:
        """Commit everything appended so far together with the checkpoint row. (The backtest
        appends its checkpoint rows instead: it never waits for the disk.)"""
        self.append("checkpoints", checkpoint_row(run_id, seq, as_of, state))
        self.flush()

    def update_run(self, run_id: str, **fields: Any) -> None:
        """Update this run's `runs` row, after every row appended before the call is written."""
        if not fields:
            return
        row = self._convert("runs", {**fields, "run_id": run_id})
        with self._cond:
            if self._closing:
                raise self._lost or StoreError(f"the event log {self.path} is closed")
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
        """Stop taking rows and return at once; the writer commits what is buffered and stops
        (retrying up to lock_timeout while the file is busy). Reads after close, in this process
        (query, reader, open_reader, a RunStore on the file), wait for that last commit, and so
        does the interpreter's exit: nothing appended is lost. Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = self._stopping = True
            self._close_deadline = time.monotonic() + self.lock_timeout
            self._cond.notify()

    def _at_exit(self) -> None:
        """Interpreter exit: close, and wait until the last rows are committed and the writer
        has ended (a thread still inside DuckDB when the interpreter finalises aborts it)."""
        self.close()
        self._thread.join()  # what it could not write it has logged

    def _drain(self) -> None:
        """Return once every row appended so far is committed (after close: the writer ended);
        raise StoreError if close could not write them."""
        if self._thread.is_alive() and (self._unwritten or not self._ready.is_set()):
            self.flush()
        if self._lost is not None:
            raise self._lost

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
            if not self._ready.wait(self.lock_timeout):
                raise StoreError(f"the event log {self.path} could not be opened in "
                                 f"{self.lock_timeout:g}s: {self._last_warning or 'busy'}")
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
        self._unwritten += 1
        self._segments.append(_Segment())
        self._tail = self._segments[-1].rows

    def _request(self, run: Callable[[duckdb.DuckDBPyConnection], int] | None) -> int:
        request = _Request(run, time.monotonic() + self.lock_timeout)
        with self._cond:
            if self._stopping:
                if run is not None:
                    raise StoreError(f"the event log {self.path} is closed")
                wait_closed = True
            else:
                wait_closed = False
                if run is not None:
                    self._queue_op(request)
                self._waiting.append(request)
                self._cond.notify()
        if wait_closed:  # closed: its writer commits what is left, then ends
            self._thread.join()
            if self._lost is not None:
                raise self._lost
            return 0
        return request.wait(self._thread)

    def _write_loop(self) -> None:
        delay = _RETRY_MIN
        try:
            while True:
                with self._cond:
                    if not (self._waiting or self._stopping or self._soon or not self._ready.is_set()
                            or self._pending >= self.max_buffer_rows):
                        self._cond.wait(self.flush_interval)
                    segments, self._segments = self._segments, [_Segment()]
                    self._tail = self._segments[0].rows
                    waiting, self._waiting = self._waiting, []
                    pending, self._pending = self._pending, 0
                    stopping, self._soon = self._stopping, False
                ops = sum(s.op is not None for s in segments)
                if pending or ops or not self._ready.is_set():
                    try:
                        self._write(segments)
                    except Exception as exc:  # noqa: BLE001 - keep everything and retry; see _give_back
                        if not self._ready.is_set() and not isinstance(exc, Busy):
                            self._refuse(exc, waiting)  # never opened: nothing to wait for
                            return
                        busy = self._give_back(segments, waiting, pending, exc)
                        if stopping and time.monotonic() >= self._close_deadline:
                            self._lose(exc)
                            return
                        with self._cond:  # a new flush() request cuts the backoff short
                            self._cond.wait(delay * random.uniform(0.5, 1.0))
                        delay = min(delay * 2, _RETRY_MAX_BUSY if busy else _RETRY_MAX_BROKEN)
                        continue
                    with self._cond:
                        self._unwritten -= pending + ops
                delay = _RETRY_MIN
                self._last_warning = ""
                for request in waiting:
                    request.answer()
                if stopping:
                    return
        finally:
            if self._redaction >= 0:
                with cursor() as con:
                    con.execute(f"DROP MACRO IF EXISTS {self._redact}")
            # Last: until here the exit must wait for this thread (see _at_exit). All is written,
            # or the loss logged.
            atexit.unregister(self._at_exit)

    def _refuse(self, exc: Exception, waiting: list[_Request]) -> None:
        """The file cannot be opened for writing at all (a read-only view of Parquet folders,
        no permission, not a log): stop taking rows, so the run fails now rather than run on
        to lose everything at close. The next append, flush or read says why."""
        self._fail(exc if isinstance(exc, StoreError) else StoreError(
            f"cannot write the event log {self.path}: {exc}"), waiting, refuse_rows=True)

    def _lose(self, exc: Exception) -> None:
        """Closing gave up (the file stayed unwritable for lock_timeout): say what was lost."""
        self._fail(StoreError(f"closing the event log {self.path} lost the {self._unwritten} "
                              f"rows it could not write: {exc}"), [], refuse_rows=False)
        log.error("%s", self._lost)

    def _fail(self, error: StoreError, waiting: list[_Request], *, refuse_rows: bool) -> None:
        """Record why rows are lost and answer every waiter with it (with refuse_rows, in the
        same step: no more appends)."""
        with self._cond:
            if refuse_rows:
                self._closing = self._stopping = True
            self._lost = error
            waiting = [*waiting, *self._waiting]
            self._waiting = []
        for request in waiting:
            request.answer(error)

    def _write(self, segments: list[_Segment]) -> None:
        """One transaction: each segment's rows, then its operation. Raises Busy if locked."""
        import duckdb

        self._define_redaction()
        if not self._ready.is_set():  # an earlier log on this file (a run before) ends its writes
            settle_writes(self.path, but=self)
        with self._attached(0) as con:
            if not self._ready.is_set():  # the first write opens the file: off the caller's thread
                if con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = "
                               "'runs' AND table_type = 'VIEW' AND table_catalog = "
                               "current_database()").fetchone()[0]:  # type: ignore[index]
                    raise StoreError(f"the event log {self.path} is a read-only view of Parquet "
                                     f"folders (a sweep's): runs, show, report and export read "
                                     f"it; write runs to another --db")
                ensure_schema(con)
                self._cache_keys |= {key for (key,) in con.execute(
                    "SELECT DISTINCT cache_key FROM model_cache WHERE cache_key IS NOT NULL").fetchall()}
                self._ready.set()
            con.begin()
            try:
                for segment in segments:
                    for table, rows in segment.rows.items():
                        with staged_rows(self._columns[table], rows) as (columns, source):
                            select = select_sql(self._columns[table], columns, source, self._redact)
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
        with staged_rows(self._columns["runs"], [row]) as (columns, source):
            sets = ", ".join(f'"{c}" = u."{c}"' for c in columns if c != "run_id")
            select = select_sql(self._columns["runs"], columns, source, self._redact)
            return _count(con, f"UPDATE runs SET {sets} FROM ({select}) AS u WHERE runs.run_id = u.run_id")

    def _attached(self, timeout: float) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        return attached(self.path, read_only=False, timeout=timeout)

    def _read(self, sql: str, params: Sequence[Any], fetch: Callable[[Any], T]) -> T:
        import duckdb

        with self._attached(self.lock_timeout) as con:
            try:
                return fetch(con.execute(sql, list(params)))
            except duckdb.Error as exc:
                raise StoreError(f"query on {self.path} failed: {exc}") from exc


def _check_file(path: str) -> bool:
    """Whether the file exists; fails at once, not at the first commit, on a path that cannot
    be a DuckDB event log."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "rb") as f:
            head = f.read(12)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StoreError(f"cannot open the event log {path}: {exc.strerror or exc}") from None
    if head[8:12] != b"DUCK":
        raise StoreError(f"cannot open the event log {path}: not a DuckDB file")
    return True


def select_sql(kinds: dict[str, str], columns: list[str], source: str, redact: str) -> str:
    """SELECT over a frame of buffered values, with every string redacted by macro `redact`.

    The string columns go through the macro as one list, so its regexes are compiled
    once per statement rather than once per column (that dominated small flushes). JSON text
    that redaction made invalid (a secret inside a number) is stored as a JSON string; text it
    left alone is valid already (checked at append), so only changed text is parsed again."""
    texts = [c for c in columns if kinds[c] in ("VARCHAR", "JSON")]
    inner = [f'"{c}"' for c in columns if kinds[c] != "VARCHAR"]
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
            value = (f'CASE WHEN {value} IS NOT DISTINCT FROM "{c}" OR json_valid({value}) '
                     f"THEN {value} ELSE to_json({value}) END")
        outer.append(f'{value} AS "{c}"')
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {source})"


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    """Rows changed by an UPDATE/DELETE."""
    row = con.execute(sql, list(params)).fetchone()
    return row[0] if row else 0


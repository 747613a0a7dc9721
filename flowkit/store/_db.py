"""Opening the DuckDB file: one process at a time, so every open retries while it is busy.

Files are ATTACHed to one private in-memory DuckDB instance per process instead of opened with
duckdb.connect: a new instance costs ~20 ms (also on every failed try while another process
holds the lock), an ATTACH/DETACH ~1 ms. Detaching checkpoints the WAL into the file and
releases its lock, so between uses the file is complete and free for other processes.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from flowkit import _cache
from flowkit.errors import StoreError
from flowkit.store._values import CONVERTERS

if TYPE_CHECKING:
    import duckdb

SCHEMA_SQL = Path(__file__).with_name("schema.sql")
VIEWS_SQL = Path(__file__).with_name("views.sql")
T = TypeVar("T")
log = logging.getLogger("flowkit.store")

# Rows per row group written (DuckDB's default: 122,880). A commit checkpoints the table's last,
# partly filled row group again, decompressing and recompressing it: the smallest groups (one
# vector) keep that work and its memory small. Measured on a 10-year run: 16,384-row groups grew
# the highest RSS of a year from 464 to 735 MB and cost the writer 20% more CPU; 2,048-row ones
# hold it at 456-497 MB, for a file 4% larger (zstd works per 2,048 rows either way).
_ROW_GROUP = 2_048
_instance: tuple[int, duckdb.DuckDBPyConnection] | None = None
_instance_lock = threading.Lock()
_names = itertools.count()  # unique attachment aliases and macro names within the instance


_writers: dict[str, list[weakref.WeakMethod[Callable[[], None]]]] = {}  # path -> drain of its logs


def register_writer(path: str, log: object) -> None:
    """Make reads of `path` in this process wait until `log` (an EventLog) has committed what
    was appended to it: read your writes, also after its close returned (see EventLog.close)."""
    alive = [ref for ref in _writers.get(path, []) if ref() is not None]
    _writers[path] = [*alive, weakref.WeakMethod(log._drain)]  # type: ignore[attr-defined]


def settle_writes(path: str, but: object = None) -> None:
    """Wait until this process's event logs on `path` have committed what was appended to
    them; with `but` (a log), only the logs opened on it before that one: two logs opened
    together would otherwise each wait for the other's first write. A log that could not
    write says so itself (its appends, flushes, close); readers read what there is."""
    _drain(_writers.get(os.path.abspath(path), []), but)


def settle_all() -> None:
    """Wait until every event log of this process has committed what was appended to it (the
    interpreter's exit waits for that too); raise StoreError if one could not write it all."""
    lost = _drain([ref for refs in list(_writers.values()) for ref in refs])
    if lost is not None:
        raise lost


def _drain(refs: list[weakref.WeakMethod[Callable[[], None]]], but: object = None) -> StoreError | None:
    """Drain each live log of `refs` in order, up to `but`; the first StoreError one raised."""
    lost = None
    for ref in refs:
        drain = ref()
        if drain is None:
            continue
        if drain.__self__ is but:  # type: ignore[attr-defined]
            break
        try:
            drain()
        except StoreError as exc:
            lost = lost or exc
    return lost


class Busy(StoreError):
    """Another process, or another attachment in this one, holds the file."""


_BUSY = ("Could not set lock",            # another process holds the file
         "Unique file handle conflict")   # another attachment or instance in this process has it


def retry_busy(attempt: Callable[[], T], path: str, timeout: float) -> T:
    """attempt(), retried with jittered backoff while the file is busy, for up to `timeout` s."""
    import duckdb

    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            if not any(marker in str(exc) for marker in _BUSY):
                raise StoreError(f"cannot open the event log {path}: {exc}") from exc
            left = deadline - time.monotonic()
            if left <= 0:
                raise Busy(f"the event log {path} is busy (waited {timeout:g}s): {exc}") from exc
            time.sleep(min(left, delay * random.uniform(0.5, 1.0)))
            delay = min(delay * 2, 0.05)


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def unique_name(prefix: str) -> str:
    return f"{prefix}_{next(_names)}"


def cursor() -> duckdb.DuckDBPyConnection:
    """A new connection to this process's private in-memory instance (created on first use)."""
    global _instance
    with _instance_lock:  # the parent connection is shared by every thread: only cursor() it
        if _instance is None or _instance[0] != os.getpid():  # a forked child needs its own
            import duckdb

            _instance = (os.getpid(), duckdb.connect(":memory:"))
        return _instance[1].cursor()


@contextmanager
def attached(path: str, *, read_only: bool, timeout: float) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh cursor whose default catalog is the file at `path`, attached for the block only
    (retrying while another process or attachment holds it, up to `timeout` s)."""
    import duckdb

    if read_only:
        settle_writes(path)
    alias = unique_name("flowkit")
    con = cursor()
    try:
        options = "READ_ONLY" if read_only else f"ROW_GROUP_SIZE {_ROW_GROUP}"
        retry_busy(lambda: con.execute(f"ATTACH {sql_literal(path)} AS {alias} ({options})"),
                   path, timeout)
        con.execute(f"USE {alias}")
    except BaseException:
        con.close()
        raise
    try:
        yield con
    finally:
        con.close()
        try:
            with cursor() as detacher:
                detacher.execute(f"DETACH {alias}")
        except duckdb.Error as exc:  # whatever was committed stays committed
            log.warning("event log %s: detach failed: %s", path, exc)


@contextmanager
def open_reader(path: str | os.PathLike[str], timeout: float = 15.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to an event log, closed on exit.

    A running flowkit process holds the file only while it flushes (milliseconds every
    flush_interval), so this retries with backoff until `timeout` seconds have passed, then
    raises StoreError naming the process that holds the file. Keep the block short: while it
    is open, that writer cannot flush (it keeps its rows and retries).
    """
    path = os.path.abspath(os.fspath(path))
    settle_writes(path)  # an EventLog of this process opens (creates) the file in its writer
    if not os.path.exists(path):
        raise StoreError(f"no event log at {path}")
    with attached(path, read_only=True, timeout=timeout) as con:
        yield con


_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*?)\);", re.DOTALL)
_COLUMN = re.compile(r"(\w+)\s+([A-Z][A-Z0-9_]*)\b")


@cache
def schema() -> dict[str, dict[str, str]]:
    """{table: {column: DuckDB type}} as declared in schema.sql, in declaration order. Read as
    text, not by running the DDL: that took ~0.3 s of every Session() (tests/test_store_schema.py
    checks the two agree)."""
    text = re.sub(r"--[^\n]*", "", SCHEMA_SQL.read_text())
    tables: dict[str, dict[str, str]] = {}
    for table, body in _TABLE.findall(text):
        for line in body.split(","):
            if not line.strip():
                continue
            match = _COLUMN.match(line.strip())
            kind = match.group(2) if match else None
            if match is None or kind not in CONVERTERS:
                raise StoreError(f"schema.sql: {table}: {line.strip()!r} has a type the event log "
                                 f"cannot write (supported: {', '.join(CONVERTERS)})")
            tables.setdefault(table, {})[match.group(1)] = kind
    return tables


def create_log(path: str) -> None:
    """A new event log file with every table and view, made aside and linked into place, so
    other processes see no file or a complete one (if another process created it meanwhile,
    theirs stays). The empty log is kept in flowkit's cache (flowkit/_cache.py), keyed by
    schema.sql, views.sql and the DuckDB version: copying it takes ~1 ms of the caller's
    thread where creating it takes ~100 ms (importing DuckDB, running the DDL)."""
    entry = _empty_log_key()
    aside = f"{path}.{os.getpid()}.{unique_name('new')}.tmp"
    try:
        empty = _cache.read("eventlog", entry) if entry else None
        if empty is not None and empty[8:12] == b"DUCK":
            with open(aside, "xb") as f:
                f.write(empty)
        else:
            import duckdb

            # Its own instance, not an attachment to this process's: closing it writes the
            # whole file at once (a DETACH while other threads use the instance may defer that).
            con = duckdb.connect(aside)
            try:
                ensure_schema(con)
            finally:
                con.close()
            if entry:
                _cache.write("eventlog", entry, Path(aside).read_bytes())
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links: rename, unless it appeared meanwhile
            if not os.path.exists(path):
                os.rename(aside, path)
    except OSError as exc:
        raise StoreError(f"cannot open the event log {path}: {exc.strerror or exc}") from None
    finally:
        for leftover in (aside, f"{aside}.wal"):
            with suppress(OSError):
                os.unlink(leftover)


def _empty_log_key() -> str | None:
    try:
        duckdb_version = metadata.version("duckdb")
    except metadata.PackageNotFoundError:  # an unusual install: no cache, create the file
        return None
    return _cache.key(duckdb_version, SCHEMA_SQL.read_bytes(), VIEWS_SQL.read_bytes())


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create missing tables, add columns schema.sql gained since the file was made, and
    (re)create the views of views.sql."""
    con.execute(SCHEMA_SQL.read_text())
    have = set(con.execute("SELECT table_name, column_name FROM information_schema.columns "
                           "WHERE table_catalog = current_database() AND table_schema = 'main'").fetchall())
    for table, columns in schema().items():
        for column, kind in columns.items():
            if (table, column) not in have:
                con.execute(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {kind}')
    con.execute(VIEWS_SQL.read_text())

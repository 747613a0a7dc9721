"""The write side: where a run's rows go. Every sink implements `EventSink`.

- `EventLog` (eventlog.py): the DuckDB file, committed off the hot path by a writer thread.
- `MemorySink`: rows kept in memory, checked like the file's, readable through a RunStore;
  for tests and for embedding flowkit without a file.
- `NullSink`: accepts any row unchecked and keeps nothing; a run without logging, for
  benchmarks. Its reader sees an empty log.

The contract (tests/test_store_sinks.py runs it against every sink):
- `append(table, row)`: takes one row of a schema.sql table. A sink that keeps rows checks it
  at once and raises StoreError naming the bad table, column or value. After `close()` every
  sink raises StoreError.
- `flush(wait=True)`: returns once every row appended before it is readable through `reader()`
  (for the file: committed, and so visible to other processes); `wait=False` asks for that
  and returns at once (a run never waits on its log: only reads do).
- `checkpoint(run_id, seq, as_of, state)`: appends a checkpoints row and flushes; once a
  checkpoint is readable, every row appended before it is too.
- `update_run(run_id, **fields)`: sets fields of the run's `runs` row, after every row
  appended before the call (so a run appended then updated ends updated).
- `discard_after(run_id, as_of)`: deletes the run's rows later than `as_of` (per table, the
  column in DISCARD_COLUMNS) and its metrics (computed again when the run ends); its model
  calls later than `as_of` and its run_history rows are kept, marked `superseded` (what the
  failed attempts did and cost stays on record); returns how many rows changed. Resume uses it.
- `cache_get(key)` / `cache_put(key, model, payload)`: the model response cache.
- `reader()`: a RunStore over what the sink holds; each read (or `with` block of reads) sees
  every row appended before it.
- `close()`: no more rows; what is buffered is still written (for the file: by its writer,
  before the interpreter exits, and any read of the file waits for it); idempotent.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from datetime import datetime, timezone
from typing import Any, Protocol, runtime_checkable

from flowkit.errors import StoreError
from flowkit.store._rows import Row, RowChecker
from flowkit.store._values import to_json, to_timestamp
from flowkit.store.runstore import RunStore

# Rows "after" a resume point, per table: the column holding their decision time.
DISCARD_COLUMNS = {"steps": "as_of", "decisions": "as_of",
                   "risk_reviews": "as_of", "orders": "as_of", "fills": "time", "portfolio": "time",
                   "lessons": "as_of", "risk_state": "time"}
# Kept but marked superseded instead: the run's model calls after the cut, its whole history.
SUPERSEDE_COLUMNS = {"model_calls": "as_of", "run_history": None}


@runtime_checkable
class EventSink(Protocol):
    """Where a run writes its rows (see the module docstring for the contract)."""

    def append(self, table: str, row: Row) -> None: ...
    def flush(self, wait: bool = True) -> None: ...
    def checkpoint(self, run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> None: ...
    def update_run(self, run_id: str, **fields: Any) -> None: ...
    def discard_after(self, run_id: str, as_of: Any) -> int: ...
    def cache_get(self, key: str) -> dict[str, Any] | None: ...
    def cache_put(self, key: str, model: str, payload: dict[str, Any]) -> None: ...
    def reader(self) -> RunStore: ...
    def close(self) -> None: ...


def checkpoint_row(run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> Row:
    return {"run_id": run_id, "seq": seq, "as_of": as_of, "state": state, "created_at": _utcnow()}


def cache_row(key: str, model: str, text: str) -> Row:
    """A model_cache row holding the JSON `text` of a response."""
    return {"cache_key": key, "model": model, "response": text, "created_at": _utcnow()}


def discard_cutoff(as_of: Any) -> datetime:
    """`as_of` of discard_after as a naive UTC datetime, or StoreError."""
    try:
        cutoff = to_timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"discard_after: bad as_of {as_of!r}: {exc}") from None
    if cutoff is None:
        raise StoreError("discard_after needs a time, got None")
    return cutoff


class _Closable:
    _closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the {type(self).__name__} is closed")

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NullSink(_Closable):
    """Accepts every row unchecked and keeps nothing (a run without logging)."""

    def append(self, table: str, row: Row) -> None:
        self._check_open()

    def flush(self, wait: bool = True) -> None:
        pass

    def checkpoint(self, run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> None:
        self._check_open()

    def update_run(self, run_id: str, **fields: Any) -> None:
        self._check_open()

    def discard_after(self, run_id: str, as_of: Any) -> int:
        self._check_open()
        discard_cutoff(as_of)
        return 0

    def cache_get(self, key: str) -> dict[str, Any] | None:
        return None

    def cache_put(self, key: str, model: str, payload: dict[str, Any]) -> None:
        self._check_open()

    def reader(self) -> RunStore:
        return RunStore.from_rows(dict)


class MemorySink(_Closable):
    """Rows kept in memory, checked against schema.sql like the file's (thread-safe)."""

    def __init__(self) -> None:
        self._check = RowChecker()
        self._lock = threading.Lock()
        self._tables: defaultdict[str, list[Row]] = defaultdict(list)
        self._cache: dict[str, str] = {}

    def append(self, table: str, row: Row) -> None:
        clean = self._check.convert(table, row)
        with self._lock:
            self._check_open()
            self._tables[table].append(clean)

    def flush(self, wait: bool = True) -> None:
        pass

    def checkpoint(self, run_id: str, seq: int, as_of: Any, state: dict[str, Any]) -> None:
        self.append("checkpoints", checkpoint_row(run_id, seq, as_of, state))

    def update_run(self, run_id: str, **fields: Any) -> None:
        clean = self._check.convert("runs", {**fields, "run_id": run_id})
        with self._lock:
            self._check_open()
            for row in self._tables["runs"]:
                if row["run_id"] == run_id:
                    row.update(clean)

    def discard_after(self, run_id: str, as_of: Any) -> int:
        cutoff = discard_cutoff(as_of)
        gone = 0
        with self._lock:
            self._check_open()
            for table, column in {**DISCARD_COLUMNS, "metrics": None}.items():
                rows = self._tables[table]
                keep = [r for r in rows if not _after(r, run_id, column, cutoff)]
                gone += len(rows) - len(keep)
                rows[:] = keep
            for table, column in SUPERSEDE_COLUMNS.items():
                for r in self._tables[table]:
                    if _after(r, run_id, column, cutoff) and not r.get("superseded"):
                        r["superseded"] = True
                        gone += 1
        return gone

    def cache_get(self, key: str) -> dict[str, Any] | None:
        import json

        text = self._cache.get(key)
        return None if text is None else json.loads(text)

    def cache_put(self, key: str, model: str, payload: dict[str, Any]) -> None:
        text = to_json(payload)
        self.append("model_cache", cache_row(key, model, text))
        self._cache[key] = text

    def rows(self, table: str, **equal: Any) -> list[Row]:
        """Copies of `table`'s rows (as stored: JSON as text, times naive UTC) whose columns
        equal `equal`, in append order."""
        with self._lock:
            return [dict(r) for r in self._tables[table]
                    if all(r.get(k) == v for k, v in equal.items())]

    def reader(self) -> RunStore:
        return RunStore.from_rows(self._snapshot)

    def _snapshot(self) -> dict[str, list[Row]]:
        with self._lock:
            return {table: [dict(r) for r in rows] for table, rows in self._tables.items()}


def _after(row: Row, run_id: str, column: str | None, cutoff: datetime) -> bool:
    """Whether discard_after's cut takes `row` (every row of the run when `column` is None)."""
    return row.get("run_id") == run_id and (
        column is None or (row.get(column) is not None and row[column] > cutoff))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)

"""Event logs as folders of Parquet files, so many processes can add runs with no shared file.

A writer still logs to a private DuckDB file (the EventLog); once the run is over,
`export_tables` writes each table to <folder>/<table>.parquet and moves the folder into place
in one rename. Readers see a set of such folders through a database of views
(`write_views`: `read_parquet` over a glob, so a folder added later is seen at the next read;
RunStore and the CLI read it like any event log), or through one DuckDB file holding them all
(`compact`). `seed_cache` gives a new private log the model responses those folders cached.
"""

from __future__ import annotations

import glob
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flowkit.errors import StoreError
from flowkit.store._db import VIEWS_SQL, attached, ensure_schema, schema, sql_literal

# prompt_parts is not exported: model_calls is written with its prompts rebuilt in full.
_NOT_EXPORTED = ("prompt_parts",)


def exported_tables() -> list[str]:
    return [t for t in schema() if t not in _NOT_EXPORTED]


def export_tables(db: str | os.PathLike[str], folder: str | os.PathLike[str],
                  scratch: str | os.PathLike[str]) -> int:
    """Write every table of the (closed) event log `db` to `folder`/<table>.parquet; returns
    the bytes written. The files are built in `scratch` (a folder on the same file system,
    outside any glob readers use) and moved into place by one rename, an older `folder` moved
    out to `scratch` first, so a reader sees the old tables or the new, never half of them."""
    import duckdb

    out, work = Path(folder), Path(scratch)
    new, old = work / "tables", work / "old"
    for path in (new, old):
        shutil.rmtree(path, ignore_errors=True)
    new.mkdir(parents=True)
    with attached(os.fspath(db), read_only=True, timeout=30) as con:
        for table in exported_tables():
            source = "model_calls_full" if table == "model_calls" else f'"{table}"'
            path = sql_literal(str(new / f"{table}.parquet"))
            try:
                con.execute(f"COPY (SELECT * FROM {source}) TO {path} (FORMAT PARQUET)")
            except duckdb.Error as exc:
                raise StoreError(f"cannot export {table} of {db} to Parquet: {exc}") from None
    size = sum(f.stat().st_size for f in new.iterdir())
    if out.exists():
        os.replace(out, old)
    os.replace(new, out)
    shutil.rmtree(old, ignore_errors=True)
    return size


def _files(folders: str, table: str) -> str | None:
    """The glob of `table`'s Parquet files in the folders matching `folders`, or None when
    there are none yet (read_parquet refuses a glob that matches nothing)."""
    pattern = os.path.join(os.path.abspath(folders), f"{table}.parquet")
    return pattern if glob.glob(pattern) else None


def seed_cache(db: str | os.PathLike[str], folders: str) -> int:
    """Copy the model responses cached in the Parquet folders matching the glob `folders` into
    the event log `db` (created if need be), so its run reuses them; the entries copied."""
    pattern = _files(folders, "model_cache")
    with attached(os.path.abspath(os.fspath(db)), read_only=False, timeout=30) as con:
        ensure_schema(con)
        if pattern is None:
            return 0
        con.execute("INSERT INTO model_cache BY NAME SELECT DISTINCT ON (cache_key) * FROM "
                    f"read_parquet({sql_literal(pattern)}, union_by_name = true) "
                    "WHERE cache_key IS NOT NULL ORDER BY cache_key, created_at DESC")
        return con.execute("SELECT count(*) FROM model_cache").fetchone()[0]  # type: ignore[index]


def write_views(db: str | os.PathLike[str], folders: str) -> None:
    """(Re)write the DuckDB file `db` as views over every table of the Parquet folders matching
    the glob `folders` (absolute paths: readers may run anywhere). A table no folder has yet
    stays an empty table."""
    with _building(db, folders) as (con, tables):
        for table, source in tables:
            con.execute(f'DROP TABLE "{table}"')
            con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}')
        con.execute(VIEWS_SQL.read_text())  # model_calls_full, now over the views


def compact(folders: str, db: str | os.PathLike[str]) -> int:
    """Write one DuckDB file `db` holding the rows of every Parquet folder matching `folders`;
    the number of runs it holds."""
    with _building(db, folders) as (con, tables):
        for table, source in tables:
            con.execute(f'INSERT INTO "{table}" BY NAME SELECT * FROM {source}')
        return int(con.execute("SELECT count(*) FROM runs").fetchone()[0])  # type: ignore[index]


@contextmanager
def _building(db: str | os.PathLike[str], folders: str) -> Iterator[tuple[Any, list[tuple[str, str]]]]:
    """A connection to a new event log (schema.sql's tables) under a temporary name, renamed
    over `db` when the block succeeds, with (table, `read_parquet(...)` of its files) for each
    table the folders matching `folders` have."""
    target = os.path.abspath(os.fspath(db))
    tmp = f"{target}.{os.getpid()}.part"
    _remove(tmp)
    try:
        with attached(tmp, read_only=False, timeout=0) as con:
            ensure_schema(con)
            yield con, [(t, f"read_parquet({sql_literal(p)}, union_by_name = true)")
                        for t in exported_tables() if (p := _files(folders, t)) is not None]
        os.replace(tmp, target)
    finally:
        _remove(tmp)


def _remove(path: str) -> None:
    for p in (path, f"{path}.wal"):
        if os.path.exists(p):
            os.remove(p)

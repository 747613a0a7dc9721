"""Rows checked against schema.sql, shared by every sink that keeps rows.

A row is normalised on the caller's thread (see _values), so a bad table, column or value
fails at append, naming what is wrong, and never later in a batch.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from flowkit.errors import StoreError
from flowkit.store._db import schema, sql_literal
from flowkit.store._values import CONVERTERS, PASSTHROUGH

Row = dict[str, Any]
_MAX_ROW_BYTES = 1 << 30  # read_json's limit per row (its default, 16 MB, is a long prompt)
_SLICE = 500              # rows encoded at a time while staging


class RowChecker:
    """Converts rows to the column types of schema.sql, or raises StoreError naming the culprit."""

    def __init__(self) -> None:
        self.columns = schema()
        self._converters = {table: {col: CONVERTERS[kind] for col, kind in cols.items()}
                            for table, cols in self.columns.items()}
        # NoneType: no value to convert has it, so every value of such a column is converted
        self._passthrough = {table: {col: PASSTHROUGH.get(kind, type(None)) for col, kind in cols.items()}
                             for table, cols in self.columns.items()}

    def convert(self, table: str, row: Row) -> Row:
        """A new row of plain values (never a container: the buffered rows stay out of the
        garbage collector's way)."""
        try:
            converters, passthrough = self._converters[table], self._passthrough[table]
            clean = {}
            for col, value in row.items():
                keep = passthrough[col]
                clean[col] = value if value is None or (
                    type(value) is keep and (keep is not str or value.isascii())) \
                    else converters[col](value)
            return clean
        except Exception as exc:  # noqa: BLE001 - converters call user objects; _explain says which
            raise self._explain(table, row, exc) from None

    def _explain(self, table: str, row: Row, exc: Exception) -> StoreError:
        """Name the table or column a row failed on (the slow path of convert)."""
        converters = self._converters.get(table)
        if converters is None:
            return StoreError(f"unknown table {table!r} (tables: {', '.join(self._converters)})")
        for col, value in row.items():
            if col not in converters:
                return StoreError(f"table {table!r} has no column {col!r} "
                                  f"(columns: {', '.join(converters)})")
            if value is not None:
                try:
                    converters[col](value)
                except Exception as col_exc:  # noqa: BLE001 - reported, with its column
                    return StoreError(f"{table}.{col} ({self.columns[table][col]}) cannot hold "
                                      f"{type(value).__name__} {_short(value)}: {col_exc}")
        return StoreError(f"cannot log a {table} row: {exc}")


@contextmanager
def staged_rows(kinds: dict[str, str], rows: list[Row]) -> Iterator[tuple[list[str], str]]:
    """Converted `rows` as a source DuckDB can insert from: (the columns present, in schema
    order; a `read_json` of a temporary file holding them, typed as schema.sql says, JSON
    columns as their text). orjson writes the file in C and DuckDB parses it without the GIL:
    the writer thread costs the run's thread far less than a DataFrame of Python objects."""
    import orjson

    present = set().union(*rows)
    columns = [c for c in kinds if c in present]
    types = ", ".join(f"{sql_literal(c)}: {sql_literal('VARCHAR' if kinds[c] == 'JSON' else kinds[c])}"
                      for c in columns)
    fd, path = tempfile.mkstemp(prefix="flowkit-rows-", suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:  # in slices: a batch's JSON never sits whole in memory
            f.write(b"[")
            for i in range(0, len(rows), _SLICE):
                f.write(b"," if i else b"")
                f.write(orjson.dumps(rows[i:i + _SLICE], default=_iso)[1:-1])
            f.write(b"]")
        yield columns, (f"read_json({sql_literal(path)}, format = 'array', columns = {{{types}}}, "
                        f"maximum_object_size = {_MAX_ROW_BYTES})")
    finally:
        os.unlink(path)


def _iso(value: Any) -> str:
    """A datetime subclass (pandas' Timestamp), which orjson leaves to us."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot stage {type(value).__name__}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."

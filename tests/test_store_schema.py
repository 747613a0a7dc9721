"""The event log's column types, read from schema.sql as text, are what DuckDB makes of it."""

from __future__ import annotations

import duckdb

from flowkit.store._db import SCHEMA_SQL, schema


def test_schema_read_as_text_equals_duckdbs_own_reading():
    con = duckdb.connect(":memory:")
    con.execute(SCHEMA_SQL.read_text())
    rows = con.execute("SELECT table_name, column_name, data_type FROM information_schema.columns "
                       "ORDER BY table_name, ordinal_position").fetchall()
    theirs: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        theirs.setdefault(table, {})[column] = kind
    ours = schema()
    assert ours == theirs
    assert [list(cols) for cols in ours.values()] == [list(theirs[t]) for t in ours]  # column order

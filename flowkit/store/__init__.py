"""The DuckDB event log: runs, steps, model calls, decisions, orders, fills, portfolio, cache.

Tables are defined in schema.sql and documented in docs/tables.md.
"""

from flowkit.store._db import open_reader
from flowkit.store.eventlog import EventLog

__all__ = ["EventLog", "open_reader"]

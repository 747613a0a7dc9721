"""The only place that speaks SQL. Writes go through an EventSink (the DuckDB event log, a
memory sink, a null sink); reads through a RunStore, which opens the file the safe way.

Tables are defined in schema.sql and documented in docs/tables.md.
"""

from flowkit.store._db import open_reader, settle_all
from flowkit.store.eventlog import EventLog
from flowkit.store.runstore import RunStore
from flowkit.store.sink import EventSink, MemorySink, NullSink

__all__ = ["EventLog", "EventSink", "MemorySink", "NullSink", "RunStore", "open_reader", "settle_all"]

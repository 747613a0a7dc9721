"""The market data cache of the ccxt source: OHLCV bars per (exchange, symbol, timeframe) in a
DuckDB file of their own (not the event log), opened with the same retry-while-busy rule."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from flowkit.store._db import attached

if TYPE_CHECKING:
    import duckdb
    import numpy as np

_SCHEMA = """CREATE TABLE IF NOT EXISTS ohlcv_cache (
    exchange VARCHAR, symbol VARCHAR, timeframe VARCHAR,
    time TIMESTAMP,   -- bar open, UTC
    open DOUBLE, high DOUBLE, low DOUBLE, close DOUBLE, volume DOUBLE,
    PRIMARY KEY (exchange, symbol, timeframe, time))"""
_KEY = "exchange = ? AND symbol = ? AND timeframe = ?"
COLUMNS = ("open", "high", "low", "close", "volume")


class OhlcvCache:
    """Bars of one file; times are bar opens in epoch milliseconds (UTC)."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def last_ms(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """The open of the latest cached bar, None when the series is not cached."""
        [(last,)] = self._con.execute(f"SELECT epoch_ms(max(time)) FROM ohlcv_cache WHERE {_KEY}",
                                      [exchange, symbol, timeframe]).fetchall()
        return last

    def put(self, exchange: str, symbol: str, timeframe: str, candles: np.ndarray) -> None:
        """Store `candles` (rows of [open ms, open, high, low, close, volume]), replacing bars
        already cached at the same times."""
        import numpy as np

        page = {"t": candles[:, 0].astype(np.int64), **{c: candles[:, k + 1] for k, c in enumerate(COLUMNS)}}
        self._con.register("page", page)
        try:
            self._con.execute("INSERT OR REPLACE INTO ohlcv_cache SELECT ?, ?, ?, epoch_ms(t), "
                              "open, high, low, close, volume FROM page", [exchange, symbol, timeframe])
        finally:
            self._con.unregister("page")

    def series(self, exchange: str, symbol: str, timeframe: str) -> dict[str, np.ndarray]:
        """{"t": bar opens (ms), "open": ..., "volume": ...} in time order."""
        return self._con.execute(f"SELECT epoch_ms(time) AS t, {', '.join(COLUMNS)} FROM ohlcv_cache "
                                 f"WHERE {_KEY} ORDER BY time", [exchange, symbol, timeframe]).fetchnumpy()


@contextmanager
def ohlcv_cache(path: str, timeout: float = 60.0) -> Iterator[OhlcvCache]:
    """The cache file at `path` (created if missing), held for the block."""
    with attached(path, read_only=False, timeout=timeout) as con:
        con.execute(_SCHEMA)
        yield OhlcvCache(con)

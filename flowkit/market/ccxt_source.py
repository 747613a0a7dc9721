"""`ccxt` source: OHLCV from any ccxt exchange, paginated, cached in DuckDB.

The cache is authoritative so that runs are reproducible and a second run needs no network: a
(exchange, symbol, timeframe) series is fetched once (full history from the exchange's first
bar) and afterwards only when `refresh` asks for the bars that closed since. The bar still
forming is never cached."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from flowkit.errors import DataError
from flowkit.market.base import DataSource
from flowkit.market.sources import OHLCV, RawSymbol

def default_cache_db() -> str:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "flowkit"
    root.mkdir(parents=True, exist_ok=True)
    return str(root / "market.duckdb")


def ccxt_symbol(symbol: str) -> str:
    """flowkit's BTC-USDT is ccxt's BTC/USDT."""
    return symbol if "/" in symbol else symbol.replace("-", "/", 1)


def make_exchange(exchange_id: str) -> Any:
    import ccxt

    cls = getattr(ccxt, exchange_id, None)
    if not isinstance(cls, type) or not issubclass(cls, ccxt.Exchange):
        raise DataError(f"unknown ccxt exchange {exchange_id!r}")
    return cls({"enableRateLimit": True})


def _page_limit(exchange: Any) -> int | None:
    """The exchange's own maximum candles per request, when ccxt knows it."""
    try:
        return int(exchange.features["spot"]["fetchOHLCV"]["limit"])
    except (KeyError, TypeError, ValueError):
        return None


def _fetch(exchange: Any, pair: str, timeframe: str, since: int) -> list[list[float]]:
    """Closed candles from `since` (ms) to now, one page after another."""
    import ccxt

    step = exchange.parse_timeframe(timeframe) * 1000
    now, limit = exchange.milliseconds(), _page_limit(exchange)
    out: list[list[float]] = []
    try:
        while True:
            page = exchange.fetch_ohlcv(pair, timeframe, since=since, limit=limit)
            page = [c for c in page if c[0] >= since and c[0] + step <= now]
            if not page:
                return out
            out.extend(page)
            since = int(page[-1][0]) + step
    except ccxt.BaseError as e:
        raise DataError(f"ccxt {exchange.id} {pair} {timeframe}: {type(e).__name__}: {e}") from None


def load(exchange_id: str, symbols: list[str], timeframe: str, cache_db: str | None,
         refresh: bool) -> dict[str, RawSymbol]:
    from flowkit.store.ohlcv import ohlcv_cache

    path = cache_db or default_cache_db()
    exchange = None
    out = {}
    with ohlcv_cache(path) as cache:
        for symbol in symbols:
            pair = ccxt_symbol(symbol)
            key = (exchange_id, pair, timeframe)
            last = cache.last_ms(*key)
            if last is None or refresh:
                exchange = exchange or make_exchange(exchange_id)
                if timeframe not in (exchange.timeframes or {}):
                    raise DataError(f"ccxt {exchange_id} has no {timeframe} candles")
                since = 0 if last is None else last + exchange.parse_timeframe(timeframe) * 1000
                candles = np.array(_fetch(exchange, pair, timeframe, since), dtype=np.float64)
                if len(candles):
                    cache.put(*key, candles)
            rows = cache.series(*key)
            if len(rows["t"]) == 0:
                raise DataError(f"ccxt {exchange_id} returned no {timeframe} candles for {pair}")
            out[symbol] = RawSymbol(
                origin=f"{path}: ohlcv_cache {exchange_id} {pair} {timeframe}",
                label=np.asarray(rows["t"], dtype=np.int64).astype("datetime64[ms]").astype("datetime64[s]"),
                ohlcv=np.column_stack([np.asarray(rows[c], dtype=np.float64) for c in OHLCV]))
    return out


class CcxtSource(DataSource):
    """`ccxt`: `market.exchange`'s candles through the DuckDB cache."""

    round_the_clock = True

    def load(self, symbols: list[str], timeframe: str) -> dict[str, RawSymbol]:
        if not self.spec.exchange:
            raise DataError("market.exchange is required for source: ccxt (e.g. binance)")
        return load(self.spec.exchange, symbols, timeframe, self.cache_db, self.refresh)

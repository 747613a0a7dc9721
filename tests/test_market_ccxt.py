"""The ccxt source with the real ccxt client, offline: markets come from a recorded JSON file and
the exchange's HTTP `fetch` is replaced by one that answers Binance /api/v3/klines requests with
klines built from the shipped BTC-USDT and ETH-USDT bars, so ccxt's own request building and
parsing run. Nothing leaves the machine."""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt
import duckdb
import numpy as np
import pytest

from flowkit.errors import DataError
from flowkit.market import ccxt_source, load_market
from flowkit.market.sources import SAMPLE_DIR
from flowkit.spec.models import MarketSpec

MARKETS = Path(__file__).parent / "data" / "ccxt" / "binance_markets.json"
DAY_MS = 86_400_000


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


def klines(symbol: str) -> list[list[Any]]:
    """Binance spot klines (strings for decimals, as the API sends them) from the sample."""
    with (SAMPLE_DIR / "ohlcv" / f"{symbol}.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [[ms(r["date"]), r["open"], r["high"], r["low"], r["close"], r["volume"], ms(r["date"]) + DAY_MS - 1,
             "0", 0, "0", "0", "0"] for r in rows]


class RecordedBinance:
    """A real ccxt.binance whose HTTP layer serves recorded klines up to a fixed clock."""

    def __init__(self, now: str):
        self.calls: list[dict[str, list[str]]] = []
        self.now = ms(now)
        self.series = {"BTCUSDT": klines("BTC-USDT"), "ETHUSDT": klines("ETH-USDT")}
        self.exchange = ccxt.binance()
        self.exchange.set_markets(json.loads(MARKETS.read_text()))
        self.exchange.fetch = self.fetch
        self.exchange.milliseconds = lambda: self.now

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parsed = urlparse(url)
        assert parsed.hostname == "api.binance.com" and parsed.path == "/api/v3/klines", url
        q = parse_qs(parsed.query)
        self.calls.append(q)
        assert q["interval"] == ["1d"]
        start, limit = int(q.get("startTime", ["0"])[0]), int(q.get("limit", ["500"])[0])
        # Binance includes the bar still forming at `now`.
        return [k for k in self.series[q["symbol"][0]] if start <= k[0] <= self.now][:limit]


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> RecordedBinance:
    fake = RecordedBinance(now="2026-01-15T08:00:00")
    monkeypatch.setattr(ccxt_source, "make_exchange", lambda exchange_id: fake.exchange)
    return fake


SPEC = MarketSpec(symbols=["BTC-USDT", "ETH-USDT"], source="ccxt", exchange="binance")


def test_ccxt_bars_match_the_sample_and_are_cached(tmp_path: Path, recorded: RecordedBinance) -> None:
    cache = str(tmp_path / "cache.duckdb")
    md = load_market(SPEC, cache_db=cache)
    sample = load_market(MarketSpec(symbols=["BTC-USDT", "ETH-USDT"]))
    for symbol in SPEC.symbols:
        got, want = md.bars(symbol), sample.bars(symbol)
        for field in ("time", "close_time", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
        assert md.asof(symbol, want.close_time[-1]).snapshot()["indicators"] == \
            sample.asof(symbol, want.close_time[-1]).snapshot()["indicators"]
    # 1,431 bars each: pages of 1000 (ccxt's Binance limit), 431, then an empty page.
    assert [c["startTime"] for c in recorded.calls] == [["0"], [str(ms("2024-09-27"))], [str(ms("2025-12-02"))]] * 2
    assert {c["symbol"][0] for c in recorded.calls} == {"BTCUSDT", "ETHUSDT"}

    recorded.calls.clear()
    again = load_market(SPEC, cache_db=cache)
    assert recorded.calls == []  # served from DuckDB
    np.testing.assert_array_equal(again.bars("BTC-USDT").close, sample.bars("BTC-USDT").close)
    with duckdb.connect(cache, read_only=True) as con:
        assert con.execute("SELECT exchange, symbol, timeframe, count(*) FROM ohlcv_cache GROUP BY ALL "
                           "ORDER BY symbol").fetchall() == [("binance", "BTC/USDT", "1d", 1431),
                                                             ("binance", "ETH/USDT", "1d", 1431)]
        assert [c[0] for c in con.execute("DESCRIBE ohlcv_cache").fetchall()] == [
            "exchange", "symbol", "timeframe", "time", "open", "high", "low", "close", "volume"]


def test_forming_bar_is_never_cached_and_refresh_appends(tmp_path: Path, recorded: RecordedBinance) -> None:
    cache = str(tmp_path / "cache.duckdb")
    spec = MarketSpec(symbols=["BTC-USDT"], source="ccxt", exchange="binance")
    recorded.now = ms("2024-06-01T12:00:00")  # the 1 June bar is still forming
    first = load_market(spec, cache_db=cache)
    assert first.bars("BTC-USDT").time[-1] == np.datetime64("2024-05-31T00:00:00")

    recorded.now = ms("2024-06-10T03:00:00")
    recorded.calls.clear()
    assert len(load_market(spec, cache_db=cache).bars("BTC-USDT")) == len(first.bars("BTC-USDT"))
    assert recorded.calls == []  # without refresh the cache is authoritative

    refreshed = load_market(spec, cache_db=cache, refresh=True)
    assert recorded.calls[0]["startTime"] == [str(ms("2024-06-01"))]  # only the missing bars
    assert refreshed.bars("BTC-USDT").time[-1] == np.datetime64("2024-06-09T00:00:00")
    assert refreshed.latest_time("BTC-USDT") == np.datetime64("2024-06-10T00:00:00")


def test_ccxt_errors(tmp_path: Path, recorded: RecordedBinance) -> None:
    cache = str(tmp_path / "cache.duckdb")
    with pytest.raises(DataError, match="BadSymbol"):
        load_market(MarketSpec(symbols=["DOGE-USDT"], source="ccxt", exchange="binance"), cache_db=cache)
    with pytest.raises(DataError, match="exchange is required"):
        load_market(MarketSpec(symbols=["BTC-USDT"], source="ccxt"), cache_db=cache)



def test_exchange_ids_and_symbols() -> None:
    assert type(ccxt_source.make_exchange("bybit")).__name__ == "bybit"
    with pytest.raises(DataError, match="unknown ccxt exchange"):
        ccxt_source.make_exchange("not_an_exchange")
    assert ccxt_source.ccxt_symbol("BTC-USDT") == "BTC/USDT" and ccxt_source.ccxt_symbol("ETH/BTC") == "ETH/BTC"

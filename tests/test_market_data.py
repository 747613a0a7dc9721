"""Market data on the shipped sample: clock rules, decision times, news and earnings visibility,
snapshot contents, the csv source, errors, lazy imports and speed."""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from flowkit.errors import DataError
from flowkit.market import AsOfView, Bars, MarketData, load_market
from flowkit.market.sources import SAMPLE_DIR
from flowkit.spec.models import MarketSpec

STOCKS = ["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA"]
T = np.datetime64


@pytest.fixture(scope="module")
def stocks() -> MarketData:
    return load_market(MarketSpec(symbols=STOCKS, benchmark="SPY"))


@pytest.fixture(scope="module")
def crypto() -> MarketData:
    return load_market(MarketSpec(symbols=["BTC-USDT", "ETH-USDT"]))


@pytest.fixture(scope="module")
def hourly() -> MarketData:
    return load_market(MarketSpec(symbols=["BTC-USDT"], timeframe="1h"))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


# ---------------------------------------------------------------- bars and the clock


def test_sample_bars_are_the_real_data(stocks: MarketData) -> None:
    bars = stocks.bars("AAPL")
    assert isinstance(bars, Bars) and len(bars) == 5031 and bars.timeframe == "1d"
    i = bars.index_asof(T("2024-01-02T21:00:00"))
    assert bars.close[i] == 184.0815 and bars.volume[i] == 82488700
    assert stocks.bars("SPY").close[-1] == 669.12  # the benchmark is loaded too
    assert stocks.symbols == STOCKS and stocks.benchmark == "SPY"
    with pytest.raises(ValueError):
        bars.close[0] = 0.0  # shared arrays are read-only


def test_stock_bars_open_and_close_in_new_york_time(stocks: MarketData) -> None:
    bars = stocks.bars("AAPL")
    winter = bars.index_asof(T("2024-01-02T21:00:00"))
    summer = bars.index_asof(T("2024-07-01T20:00:00"))
    assert bars.time[winter] == T("2024-01-02T14:30:00") and bars.close_time[winter] == T("2024-01-02T21:00:00")
    assert bars.time[summer] == T("2024-07-01T13:30:00") and bars.close_time[summer] == T("2024-07-01T20:00:00")
    # One second before the close the session's bar is not visible yet.
    assert bars.index_asof(T("2024-01-02T20:59:59")) == winter - 1
    assert bars.index_asof(T("2005-10-10T19:59:59")) == -1
    assert stocks.latest_time("AAPL") == T("2025-10-08T20:00:00")


def test_crypto_daily_bar_closes_at_next_midnight_utc(crypto: MarketData, hourly: MarketData) -> None:
    bars = crypto.bars("BTC-USDT")
    i = bars.index_asof(T("2024-01-02T00:00:00"))
    assert bars.time[i] == T("2024-01-01T00:00:00") and bars.close[i] == 44179.55
    assert bars.index_asof(T("2024-01-01T23:59:59")) == i - 1
    h = hourly.bars("BTC-USDT")
    j = h.index_asof(T("2024-01-01T01:00:00"))
    assert h.time[j] == T("2024-01-01T00:00:00") and h.close_time[j] == T("2024-01-01T01:00:00")
    assert h.open[j] == 42283.58


def test_decision_times_stocks_follow_nyse_sessions(stocks: MarketData) -> None:
    times = stocks.decision_times("AAPL", dt.date(2024, 1, 1), dt.date(2024, 12, 31), "1d")
    assert len(times) == 252
    assert times[0] == T("2024-01-02T21:00:00") and times[-1] == T("2024-12-31T21:00:00")
    assert T("2024-01-15T21:00:00") not in times  # Martin Luther King Jr. Day
    assert T("2024-07-05T20:00:00") in times  # summer time: 16:00 EDT
    assert all(isinstance(t, np.datetime64) for t in times)


def test_decision_times_weekly_is_last_session_of_iso_week(stocks: MarketData, crypto: MarketData) -> None:
    weeks = stocks.decision_times("AAPL", dt.date(2024, 1, 1), dt.date(2024, 12, 31), "1w")
    assert len(weeks) == 52
    assert weeks[0] == T("2024-01-05T21:00:00") and weeks[-1] == T("2024-12-27T21:00:00")
    assert T("2024-03-28T20:00:00") in weeks  # Good Friday: Thursday ends the week
    btc = crypto.decision_times("BTC-USDT", dt.date(2024, 1, 1), dt.date(2024, 1, 31), "1w")
    assert btc[0] == T("2024-01-08T00:00:00")  # Sunday's bar closes Monday 00:00 UTC
    assert len(btc) == 4


def test_decision_times_crypto_daily_and_hourly(crypto: MarketData, hourly: MarketData) -> None:
    days = crypto.decision_times("BTC-USDT", dt.date(2024, 1, 1), dt.date(2024, 12, 31), "1d")
    assert len(days) == 366  # every day of a leap year, weekends included
    assert days[0] == T("2024-01-02T00:00:00") and days[-1] == T("2025-01-01T00:00:00")
    hours = hourly.decision_times("BTC-USDT", dt.date(2024, 1, 1), dt.date(2024, 1, 1), "1h")
    assert len(hours) == 24 and hours[0] == T("2024-01-01T01:00:00") and hours[-1] == T("2024-01-02T00:00:00")
    halt = hourly.decision_times("BTC-USDT", dt.date(2023, 3, 24), dt.date(2023, 3, 24), "1h")
    assert len(halt) == 23 and T("2023-03-24T14:00:00") not in halt  # the real Binance halt
    daily_on_hourly = hourly.decision_times("BTC-USDT", dt.date(2024, 1, 1), dt.date(2024, 1, 3), "1d")
    assert daily_on_hourly == [T("2024-01-02T00:00:00"), T("2024-01-03T00:00:00"), T("2024-01-04T00:00:00")]


def test_decision_times_errors(stocks: MarketData) -> None:
    with pytest.raises(DataError, match="hourly"):
        stocks.decision_times("AAPL", dt.date(2024, 1, 1), dt.date(2024, 1, 31), "1h")
    assert stocks.decision_times("AAPL", dt.date(2030, 1, 1), dt.date(2030, 12, 31), "1d") == []
    assert stocks.decision_times("AAPL", dt.date(2024, 1, 15), dt.date(2024, 1, 15), "1d") == []  # holiday
    with pytest.raises(DataError, match="not loaded"):
        stocks.decision_times("TSLA", dt.date(2024, 1, 1), dt.date(2024, 1, 31), "1d")


# ---------------------------------------------------------------- snapshots


def test_snapshot_structure_and_json(stocks: MarketData) -> None:
    t = T("2024-05-10T20:00:00")
    view = stocks.asof("AAPL", t)
    assert isinstance(view, AsOfView) and view.symbol == "AAPL" and view.as_of == t
    snap = view.snapshot()
    json.dumps(snap, allow_nan=False)
    assert snap["as_of"] == "2024-05-10T20:00:00Z" and snap["timeframe"] == "1d"
    assert snap["sector"] == "Technology"
    assert set(snap) == {"symbol", "as_of", "timeframe", "price", "indicators", "recent_bars", "news",
                         "news_count_7d", "news_count_30d", "fundamentals", "sector"}
    assert set(snap["price"]) == {"open", "high", "low", "close", "volume", "change_1d_pct",
                                  "change_5d_pct", "change_20d_pct", "bars"}
    assert set(snap["indicators"]) == {
        "rsi_14", "macd", "macd_signal", "macd_hist", "sma_20", "sma_50", "sma_200", "ema_12", "ema_26",
        "bb_upper", "bb_middle", "bb_lower", "bb_pct_b", "atr_14", "volatility_20d", "volume_ratio_20d",
        "high_52w", "low_52w", "range_52w_pct"}
    assert all(isinstance(v, float) for v in snap["indicators"].values())
    bars = stocks.bars("AAPL")
    i = bars.index_asof(t)
    assert snap["price"]["close"] == bars.close[i]
    assert snap["price"]["change_1d_pct"] == pytest.approx((bars.close[i] / bars.close[i - 1] - 1) * 100, rel=1e-5)
    assert snap["price"]["bars"] == 250  # the lookback, not the 4,677 bars of history
    assert [b["time"] for b in snap["recent_bars"]][-2:] == ["2024-05-09", "2024-05-10"]
    assert len(snap["recent_bars"]) == 10
    assert view.snapshot() is snap and stocks.asof("AAPL", t) is view  # memoised


def test_indicators_are_none_during_warm_up(crypto: MarketData) -> None:
    snap = crypto.asof("BTC-USDT", T("2022-01-21T00:00:00")).snapshot()  # 20 bars visible
    assert snap["price"]["bars"] == 20
    assert snap["indicators"]["sma_20"] is not None and snap["indicators"]["sma_50"] is None
    assert snap["indicators"]["high_52w"] is None and snap["price"]["change_20d_pct"] is None
    assert snap["fundamentals"] is None and snap["sector"] == "Crypto"


def test_history_is_capped_by_lookback() -> None:
    md = load_market(MarketSpec(symbols=["MSFT"], lookback=30))
    view = md.asof("MSFT", T("2024-01-02T21:00:00"))
    hist = view.history(500)
    assert set(hist) == {"time", "open", "high", "low", "close", "volume"}
    assert len(hist["close"]) == 30 and hist["time"][-1] == "2024-01-02"
    assert hist["close"] == md.bars("MSFT").close[md.bars("MSFT").index_asof(view.as_of) - 29:][:30].tolist()
    assert len(view.history(5)["time"]) == 5 and view.history(0)["close"] == []
    assert view.snapshot()["price"]["bars"] == 30


def test_asof_before_first_bar_is_an_error(stocks: MarketData) -> None:
    with pytest.raises(DataError, match="no AAPL bar has closed"):
        stocks.asof("AAPL", T("2005-10-10T12:00:00"))


# ---------------------------------------------------------------- news and earnings visibility


@pytest.fixture(scope="module")
def news_market(tmp_path_factory: pytest.TempPathFactory) -> MarketData:
    folder = tmp_path_factory.mktemp("news")
    (folder / "ohlcv").mkdir()
    shutil.copy(SAMPLE_DIR / "ohlcv" / "AAPL.csv", folder / "ohlcv" / "AAPL.csv")
    rows = [  # date, datetime_utc, headline
        ("2024-01-05", "", "friday date-only"),
        ("2024-01-06", "", "saturday date-only"),
        ("2024-01-08", "2024-01-08T20:59:59Z", "just before the close"),
        ("2024-01-08", "2024-01-08T21:00:00Z", "at the close"),
        ("2024-01-08", "2024-01-08T21:00:01Z", "just after the close"),
        ("2024-01-09", "2024-01-09T21:00:00Z", "exactly seven days before"),
        ("2024-01-09", "2024-01-09T21:00:01Z", "just inside seven days"),
        ("2024-01-12", "", "friday before a holiday"),
    ]
    write_csv(folder / "news" / "AAPL.csv", ["date", "datetime_utc", "ticker", "headline", "source", "url", "text", "dataset"],
              [[d, ts, "AAPL", h, "test", "", "", "unit"] for d, ts, h in rows])
    return load_market(MarketSpec(symbols=["AAPL"], source="csv", path=str(folder)))


def headlines(md: MarketData, t: str) -> list[str]:
    return [n["headline"] for n in md.asof("AAPL", T(t)).snapshot()["news"]]


def test_date_only_news_waits_for_the_next_session(news_market: MarketData) -> None:
    assert "friday date-only" not in headlines(news_market, "2024-01-05T21:00:00")
    assert "friday date-only" not in headlines(news_market, "2024-01-08T20:59:59")
    monday = headlines(news_market, "2024-01-08T21:00:00")
    assert "friday date-only" in monday and "saturday date-only" in monday
    # Monday 15 January is a holiday: the Friday item waits for Tuesday's close.
    assert "friday before a holiday" not in headlines(news_market, "2024-01-15T23:00:00")
    assert "friday before a holiday" in headlines(news_market, "2024-01-16T21:00:00")


def test_timestamped_news_is_visible_from_its_timestamp(news_market: MarketData) -> None:
    at_close = headlines(news_market, "2024-01-08T21:00:00")
    assert "just before the close" in at_close and "at the close" in at_close
    assert "just after the close" not in at_close
    assert "just after the close" in headlines(news_market, "2024-01-08T21:00:01")
    snap = news_market.asof("AAPL", T("2024-01-08T21:00:00")).snapshot()
    assert snap["news"][0] == {"time": "2024-01-08T21:00:00Z", "headline": "at the close", "source": "test",
                               "text": None, "dataset": "unit"}  # most recent first


def test_news_window_is_seven_days(news_market: MarketData) -> None:
    snap = news_market.asof("AAPL", T("2024-01-16T21:00:00")).snapshot()
    shown = [n["headline"] for n in snap["news"]]
    assert shown == ["friday before a holiday", "just inside seven days"]
    assert snap["news_count_7d"] == 2 and snap["news_count_30d"] == 8


def test_dense_news_is_capped_and_sorted(stocks: MarketData) -> None:
    t = T("2023-06-09T20:00:00")
    snap = stocks.asof("AAPL", t).snapshot()
    assert len(snap["news"]) == 20 and snap["news_count_7d"] > 20
    assert snap["news_count_30d"] >= snap["news_count_7d"]
    dates = [n["time"][:10] for n in snap["news"]]
    assert dates == sorted(dates, reverse=True) and dates[0] == "2023-06-08"  # the 9th waits
    assert min(dates) >= "2023-06-03"


def test_earnings_visible_after_the_next_session(stocks: MarketData) -> None:
    def latest(symbol: str, t: str) -> str:
        return stocks.asof(symbol, T(t)).snapshot()["fundamentals"]["latest"]["fiscal_date_ending"]

    # AAPL reported Q4-2023 on Thu 2024-02-01 after the close: unseen on Friday, seen Monday.
    assert latest("AAPL", "2024-02-01T21:00:00") == "2023-09-30"
    assert latest("AAPL", "2024-02-02T21:00:00") == "2023-09-30"
    assert latest("AAPL", "2024-02-05T21:00:00") == "2023-12-31"
    # GOOGL's row says 2024-01-29 but the call was on the 30th after the close.
    assert latest("GOOGL", "2024-01-30T21:00:00") == "2023-09-30"
    assert latest("GOOGL", "2024-01-31T21:00:00") == "2023-12-31"


def test_fundamentals_contents(stocks: MarketData) -> None:
    f = stocks.asof("AAPL", T("2024-05-10T20:00:00")).snapshot()["fundamentals"]
    assert f["latest"] == {"fiscal_date_ending": "2024-03-31", "reported_date": "2024-05-02", "reported_eps": 1.53,
                           "estimated_eps": 1.5, "surprise": 0.03, "surprise_pct": 2.0}
    assert len(f["history"]) == 8 and f["history"][0] == f["latest"]
    fiscal = [h["fiscal_date_ending"] for h in f["history"]]
    assert fiscal == sorted(fiscal, reverse=True)
    assert f["eps_ttm"] == pytest.approx(1.53 + 2.18 + 1.46 + 1.26)
    assert f["eps_growth_yoy_pct"] == pytest.approx((1.53 - 1.52) / 1.52 * 100, rel=1e-5)
    assert stocks.asof("NVDA", T("2024-05-10T20:00:00")).snapshot()["fundamentals"] is None  # no file


# ---------------------------------------------------------------- sources


def test_sample_drops_non_commercial_news() -> None:
    datasets: dict[str, int] = {}
    for path in (SAMPLE_DIR / "news").glob("*.csv"):
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                datasets[row["dataset"]] = datasets.get(row["dataset"], 0) + 1
    assert not {"fnspid_nasdaq_urlslug", "cryptotrade_gnews"} & set(datasets)
    assert datasets == {"vagmi20_gnews": 4026, "takeo1111_newsapi": 502, "investorbench_summary": 9659}


def test_csv_source_reads_a_user_folder(tmp_path: Path) -> None:
    with (SAMPLE_DIR / "ohlcv" / "AAPL.csv").open() as f:
        lines = f.read().splitlines()
    (tmp_path / "data" / "ohlcv").mkdir(parents=True)
    (tmp_path / "data" / "ohlcv" / "XYZ.csv").write_text("\n".join([lines[0], *lines[-300:]]) + "\n")
    spec = MarketSpec(symbols=["XYZ"], source="csv", path="data", sectors={"XYZ": "Industrials"})
    md = load_market(spec, base_dir=tmp_path)  # a relative path is anchored at base_dir
    assert len(md.bars("XYZ")) == 300 and md.bars("XYZ").close[-1] == float(lines[-1].split(",")[4])
    snap = md.asof("XYZ", md.latest_time("XYZ")).snapshot()
    assert snap["news"] == [] and snap["news_count_30d"] == 0 and snap["fundamentals"] is None
    assert snap["sector"] == "Industrials" and md.sectors(["XYZ", "ABC"]) == {"XYZ": "Industrials"}
    with pytest.raises(DataError, match="no 1d bars for ABC"):
        load_market(MarketSpec(symbols=["ABC"], source="csv", path="data"), base_dir=tmp_path)
    with pytest.raises(DataError, match="market.path is required"):
        load_market(MarketSpec(symbols=["XYZ"], source="csv"))


def test_sample_user_overrides_builtin_sector() -> None:
    md = load_market(MarketSpec(symbols=["AAPL"], benchmark="SPY", sectors={"AAPL": "Hardware"}))
    assert md.sectors(["AAPL", "SPY"]) == {"AAPL": "Hardware", "SPY": "ETF"}
    assert md.asof("AAPL", md.latest_time("AAPL")).snapshot()["sector"] == "Hardware"


@pytest.mark.parametrize(("row", "message"), [
    ("2024-01-06,1,2,0.5,1.5,100", "weekend"),
    ("2024-01-04,1,2,0.5,,100", "unreadable"),
    ("2024-01-04,1,2,-0.5,1.5,100", "non-positive"),
    ("2024-01-02,1,2,0.5,1.5,100", "out of order"),
])
def test_csv_source_rejects_bad_bars(tmp_path: Path, row: str, message: str) -> None:
    good = "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,100\n2024-01-03,1,2,0.5,1.5,100\n"
    (tmp_path / "ohlcv").mkdir()
    (tmp_path / "ohlcv" / "XYZ.csv").write_text(good + row + "\n")
    with pytest.raises(DataError, match=message):
        load_market(MarketSpec(symbols=["XYZ"], source="csv", path=str(tmp_path)))


def test_hourly_csv_with_timestamps(tmp_path: Path) -> None:
    write_csv(tmp_path / "ohlcv" / "SOL-USDT_1h.csv", ["timestamp", "open", "high", "low", "close", "volume"],
              [[f"2024-03-01T{h:02d}:00:00Z", "100", "101", "99", "100.5", "10"] for h in range(24)])
    md = load_market(MarketSpec(symbols=["SOL-USDT"], source="csv", path=str(tmp_path), timeframe="1h"))
    assert md.latest_time("SOL-USDT") == T("2024-03-02T00:00:00")
    assert md.periods_per_year("SOL-USDT") == 365 * 24 and md.sectors(["SOL-USDT"]) == {"SOL-USDT": "Crypto"}
    assert md.asof("SOL-USDT", T("2024-03-01T05:30:00")).history(3)["time"] == [
        "2024-03-01T02:00:00Z", "2024-03-01T03:00:00Z", "2024-03-01T04:00:00Z"]


def test_import_is_lazy() -> None:
    code = ("import sys, flowkit.market; "
            "print([m for m in ('pandas', 'duckdb', 'ccxt') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(("symbol", "t", "every"), [
    ("AAPL", "2024-02-29T21:00:00", "1d"), ("BTC-USDT", "2024-02-29T00:00:00", "1d"),
    ("ETH-USDT", "2024-02-29T12:00:00", "1h")])
def test_a_snapshot_has_exactly_the_typed_fields(symbol: str, t: str, every: str) -> None:
    from typing import get_type_hints

    from flowkit.domain.market import Fundamentals, MarketSnapshot

    md = load_market(MarketSpec(symbols=[symbol], source="sample", timeframe=every))
    snap = md.asof(symbol, T(t)).snapshot()
    assert set(snap) == set(get_type_hints(MarketSnapshot)) and snap["symbol"] == symbol
    if symbol == "AAPL":  # a stock with earnings; coins have none
        assert set(snap["fundamentals"]) == set(get_type_hints(Fundamentals))
    else:
        assert snap["fundamentals"] is None

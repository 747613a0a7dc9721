"""THE look-ahead test: what an agent sees at t must not depend on anything published after t.

For each t, the shipped sample is copied with every row that is not yet visible at t either
rewritten with garbage or deleted (bars, news, earnings). "Not yet visible" is worked out here
from the CSV rows with plain datetime code, independently of flowkit's clock module. The
snapshot and the history at t must be identical to those of the untouched data."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from flowkit.market import MarketData, load_market
from flowkit.market.sources import SAMPLE_DIR
from flowkit.spec.models import MarketSpec

UTC, NY = dt.timezone.utc, ZoneInfo("America/New_York")

CASES = [  # symbol, timeframe, t (UTC)
    ("AAPL", "1d", "2023-06-09T20:00:00"),   # dense news, some dated the same day
    ("AAPL", "1d", "2024-02-02T21:00:00"),   # the day after an earnings report
    ("AAPL", "1d", "2024-01-08T15:00:00"),   # mid-session: Monday's bar is still open
    ("AAPL", "1d", "2024-01-08T20:59:59"),   # one second before the close
    ("AAPL", "1d", "2024-01-08T21:00:00"),   # timestamped items around the close
    ("MSFT", "1d", "2020-06-15T20:00:00"),   # dense news summaries
    ("GOOGL", "1d", "2024-01-30T21:00:00"),  # report dated a day early
    ("BTC-USDT", "1d", "2023-05-01T00:00:00"),
    ("BTC-USDT", "1d", "2023-05-01T13:37:11"),
    ("BTC-USDT", "1h", "2023-03-24T14:00:00"),  # the Binance halt
    ("ETH-USDT", "1h", "2023-07-01T00:00:00"),
]
_rng = np.random.default_rng(7)
CASES += [("AAPL", "1d", str(np.datetime64("2022-01-03T00:00:00") + np.timedelta64(int(s), "s")))
          for s in _rng.integers(0, 3 * 365 * 86400, 4)]


def read(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([header, *rows])


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "")).replace(tzinfo=UTC)


def bar_close(label: str, symbol: str, timeframe: str) -> dt.datetime:
    if timeframe == "1h":
        return utc(label) + dt.timedelta(hours=1)
    day = dt.date.fromisoformat(label)
    if "-USDT" in symbol:
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), UTC)
    return dt.datetime.combine(day, dt.time(16), NY).astimezone(UTC)


def future_copy(root: Path, symbol: str, timeframe: str, t: dt.datetime, mode: str) -> dict[str, int]:
    """Copy the sample for `symbol` into root, rewriting (mode=mutate) or deleting (mode=delete)
    every row not visible at t. Returns how many rows of each kind were touched."""
    touched = {"bars": 0, "news": 0, "earnings": 0}

    def apply(kind: str, rows: list[list[str]], is_future: list[bool], garble) -> list[list[str]]:
        touched[kind] = sum(is_future)
        if mode == "delete":
            return [r for r, f in zip(rows, is_future) if not f]
        return [garble(r) if f else r for r, f in zip(rows, is_future)]

    name = f"{symbol}.csv" if timeframe == "1d" else f"{symbol}_1h.csv"
    header, rows = read(SAMPLE_DIR / "ohlcv" / name)
    closed = [bar_close(r[0], symbol, timeframe) <= t for r in rows]
    last = max(k for k, c in enumerate(closed) if c)
    session = (utc(rows[last][0]).date() if timeframe == "1h" else dt.date.fromisoformat(rows[last][0]))
    previous = dt.date.fromisoformat(rows[last - 1][0][:10])
    write(root / "ohlcv" / name, header,
          apply("bars", rows, [not c for c in closed],
                lambda r: [r[0], *(str(float(v) * 3.0) for v in r[1:5]), str(float(r[5]) * 7 + 1)]))

    news = SAMPLE_DIR / "news" / f"{symbol}.csv"
    if news.is_file():
        header, rows = read(news)
        col = {c: k for k, c in enumerate(header)}

        def unseen(r: list[str]) -> bool:
            stamp = r[col["datetime_utc"]]
            return utc(stamp) > t if stamp else dt.date.fromisoformat(r[col["date"]]) >= session

        def garble(r: list[str]) -> list[str]:
            r = list(r)
            for c in ("headline", "source", "text", "dataset"):
                r[col[c]] = "FUTURE " + r[col[c]][::-1]
            return r

        write(root / "news" / news.name, header, apply("news", rows, [unseen(r) for r in rows], garble))

    earnings = SAMPLE_DIR / "fundamentals" / f"{symbol}_earnings.csv"
    if earnings.is_file():
        header, rows = read(earnings)
        col = {c: k for k, c in enumerate(header)}
        # Visible only to sessions after the session following the report: with p the session
        # before t's, a report dated on or after p is still unseen.
        write(root / "fundamentals" / earnings.name, header,
              apply("earnings", rows, [dt.date.fromisoformat(r[col["reported_date"]]) >= previous for r in rows],
                    lambda r: [*r[:3], *(str(float(v or 0) * 10 + 1) for v in r[3:])]))
    return touched


@pytest.fixture(scope="module")
def originals() -> dict[str, MarketData]:
    return {tf: load_market(MarketSpec(symbols=["AAPL", "MSFT", "GOOGL", "BTC-USDT", "ETH-USDT"] if tf == "1d"
                                       else ["BTC-USDT", "ETH-USDT"], timeframe=tf))
            for tf in ("1d", "1h")}


@pytest.mark.parametrize("mode", ["mutate", "delete"])
@pytest.mark.parametrize(("symbol", "timeframe", "when"), CASES)
def test_snapshot_ignores_the_future(tmp_path: Path, originals: dict[str, MarketData], symbol: str,
                                     timeframe: str, when: str, mode: str) -> None:
    t = np.datetime64(when, "s")
    touched = future_copy(tmp_path, symbol, timeframe, utc(when), mode)
    changed = load_market(MarketSpec(symbols=[symbol], source="csv", path=str(tmp_path), timeframe=timeframe))
    original = originals[timeframe]

    assert touched["bars"] > 0  # the test must have something to hide
    assert changed.asof(symbol, t).snapshot() == original.asof(symbol, t).snapshot()
    assert changed.asof(symbol, t).history(10_000) == original.asof(symbol, t).history(10_000)
    # ... while the altered future is really there to be seen later.
    later = original.latest_time(symbol) if mode == "mutate" else changed.latest_time(symbol)
    assert (changed.asof(symbol, later).snapshot()["price"] != original.asof(symbol, later).snapshot()["price"]
            if mode == "mutate" else later < original.latest_time(symbol))


def test_cases_reach_news_and_earnings_boundaries(tmp_path: Path) -> None:
    """The cases above hide news dated on the decision's own session and reports dated the
    session before it: the tightest places a leak could hide."""
    aapl = future_copy(tmp_path / "a", "AAPL", "1d", utc("2023-06-09T20:00:00"), "mutate")
    _, rows = read(tmp_path / "a" / "news" / "AAPL.csv")
    assert sum(r[0] == "2023-06-09" and r[3].startswith("FUTURE") for r in rows) > 0
    future_copy(tmp_path / "b", "GOOGL", "1d", utc("2024-01-30T21:00:00"), "mutate")
    _, rows = read(tmp_path / "b" / "fundamentals" / "GOOGL_earnings.csv")
    assert [r[2] for r in rows if r[3] == str(1.64 * 10 + 1)] == ["2024-01-29"]
    assert aapl["news"] > 0 and aapl["earnings"] > 0

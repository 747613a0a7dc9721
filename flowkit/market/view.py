"""One symbol's data with everything derived from it precomputed, and the as-of view agents see."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np

from flowkit.domain.market import Fundamentals, MarketSnapshot
from flowkit.errors import DataError
from flowkit.market import clock, indicators
from flowkit.market.bars import Bars
from flowkit.market.sources import OHLCV, RawSymbol, utc_text

CHANGES = (("change_1d_pct", 1), ("change_5d_pct", 5), ("change_20d_pct", 20))
_EARNINGS_FIELDS = ("reported_eps", "estimated_eps", "surprise", "surprise_pct")
RECENT_BARS, MAX_NEWS = 10, 20
NEWS_DAYS, NEWS_COUNT_DAYS = np.timedelta64(7, "D"), np.timedelta64(30, "D")


def rounded(x: float, digits: int = 6) -> float | None:
    """`digits` significant digits; NaN and infinities become None (JSON null)."""
    return float(f"{x:.{digits}g}") if math.isfinite(x) else None


def iso(t: np.datetime64) -> str:
    return str(np.datetime_as_string(t, unit="s", timezone="UTC"))


class _Stamped:
    """Rows ordered by the instant they become visible: what is visible at t is a prefix."""

    def __init__(self, visible: np.ndarray, published: np.ndarray, items: list[dict[str, Any]]):
        order = np.argsort(visible, kind="stable")
        self.visible, self.published = visible[order], published[order]
        self.items = [items[k] for k in order]

    def count(self, t: np.datetime64) -> int:
        return int(np.searchsorted(self.visible, t, side="right"))


def _news(rows: list[dict[str, str]], session: np.ndarray, close_time: np.ndarray) -> _Stamped:
    stamped = np.array([utc_text(r["datetime_utc"]) if r.get("datetime_utc") else "NaT"
                        for r in rows], dtype="datetime64[s]")
    day = np.array([r.get("date") or r.get("datetime_utc", "")[:10] for r in rows],
                   dtype="datetime64[D]")
    dated = np.isnat(stamped)
    # Timestamped items are visible when published; date-only ones from the next session's close.
    published = np.where(dated, day.astype("datetime64[s]"), stamped)
    visible = np.where(dated, clock.first_close_after(session, close_time, day), stamped)
    shown = np.datetime_as_string(published, unit="s", timezone="UTC").tolist()
    items = [{"time": r["date"] if d else p, "headline": r.get("headline") or None,
              "source": r.get("source") or None, "text": r.get("text") or None,
              "dataset": r.get("dataset") or None}
             for r, d, p in zip(rows, dated.tolist(), shown)]
    return _Stamped(visible, published, items)


def _earnings(rows: list[dict[str, str]], session: np.ndarray, close_time: np.ndarray) -> _Stamped:
    rows = [r for r in rows if r.get("reported_date")]
    reported = np.array([r["reported_date"][:10] for r in rows], dtype="datetime64[D]")
    # Visible to sessions strictly after the next session after the report date: reports land
    # after the close and some sources date them a day early.
    visible = clock.first_close_after(session, close_time, clock.next_session(session, reported))
    items = [{"fiscal_date_ending": r.get("fiscal_date_ending") or None,
              "reported_date": r["reported_date"][:10],
              **{k: rounded(_number(r.get(k))) for k in _EARNINGS_FIELDS}} for r in rows]
    fiscal = np.array([r.get("fiscal_date_ending") or "NaT" for r in rows], dtype="datetime64[D]")
    order = np.argsort(fiscal, kind="stable")  # among equally visible rows, newest quarter last
    return _Stamped(visible[order], reported[order].astype("datetime64[s]"), [items[k] for k in order])


def _number(text: str | None) -> float:
    try:
        return float(text) if text else math.nan
    except ValueError:
        return math.nan


class SymbolData:
    """Bars, session dates, news and earnings of one symbol, with derived series cached."""

    def __init__(self, symbol: str, timeframe: str, raw: RawSymbol, crypto: bool):
        _check(raw)
        time, close_time, session = clock.stamp(raw.label, timeframe, crypto, raw.origin)
        self.bars = Bars(symbol, timeframe, time, close_time, *(raw.ohlcv[:, k].copy() for k in range(5)))
        self.session = session
        self.crypto = crypto
        self.periods_per_year = clock.periods_per_year(crypto, timeframe)
        self._ohlcv = raw.ohlcv  # row-major copy: recent bars and history are row slices
        try:
            self.news = _news(raw.news, session, close_time) if raw.news else None
            self.earnings = _earnings(raw.earnings, session, close_time) if raw.earnings else None
        except ValueError as e:
            raise DataError(f"{symbol}: unreadable date in news or earnings ({e})") from None

    @cached_property
    def bars_per_session(self) -> int:
        """The usual number of bars in a session: 1 daily, the median count hourly."""
        return max(1, round(float(np.median(np.unique(self.session, return_counts=True)[1]))))

    @cached_property
    def derived(self) -> np.ndarray:
        """One row per bar: the CHANGES columns, then indicators.NAMES."""
        b = self.bars
        series = indicators.compute(b.high, b.low, b.close, b.volume, self.periods_per_year)
        changes = [indicators.pct_change(b.close, k) for _, k in CHANGES]
        return np.column_stack(changes + [series[name] for name in indicators.NAMES])

    def labels(self, lo: int, hi: int) -> list[str]:
        """How bars lo..hi-1 are named to agents: the session date, or the open time if hourly."""
        if self.bars.timeframe == "1d":
            return np.datetime_as_string(self.session[lo:hi]).tolist()
        return np.datetime_as_string(self.bars.time[lo:hi], unit="s", timezone="UTC").tolist()

    def rows(self, lo: int, hi: int) -> list[list[float]]:
        return self._ohlcv[lo:hi].tolist()


def _check(raw: RawSymbol) -> None:
    """Every bar, inside the window or not, is a real bar: finite, positive prices, a range that
    holds its open and close, increasing times. The first bad one is named with its file:line."""
    ohlcv, label = raw.ohlcv, raw.label
    bad = ~np.isfinite(ohlcv).all(axis=1) | (ohlcv[:, :4] <= 0).any(axis=1) | (ohlcv[:, 4] < 0)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"{raw.where(k)}: a missing, non-positive or negative value "
                        f"{ohlcv[k].tolist()}")
    o, h, low, c = ohlcv[:, 0], ohlcv[:, 1], ohlcv[:, 2], ohlcv[:, 3]
    bad = (h < low) | (h < np.maximum(o, c)) | (low > np.minimum(o, c))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(f"{raw.where(k)}: inconsistent bar: open {o[k]:g}, high {h[k]:g}, low "
                        f"{low[k]:g}, close {c[k]:g} (high must be >= open, close and low; low "
                        "<= open and close)")
    if len(label) > 1 and not (np.diff(label) > np.timedelta64(0, "s")).all():
        k = int(np.flatnonzero(np.diff(label) <= np.timedelta64(0, "s"))[0])
        raise DataError(f"{raw.where(k + 1)}: bars out of order or duplicated")


class AsOfView:
    """What is known about one symbol at instant `as_of`: the only market object agents and
    tools see. Nothing it returns depends on data visible only after `as_of`."""

    __slots__ = ("_data", "_i", "_lookback", "_sector", "_snapshot", "as_of", "symbol")

    def __init__(self, data: SymbolData, t: np.datetime64, i: int, lookback: int,
                 sector: str | None):
        self.symbol, self.as_of = data.bars.symbol, t
        self._data, self._i, self._lookback, self._sector = data, i, lookback, sector
        self._snapshot: MarketSnapshot | None = None

    def _visible(self, n: int) -> tuple[int, int]:
        hi = self._i + 1
        return max(0, hi - max(0, min(n, self._lookback))), hi

    def history(self, n: int) -> dict[str, list]:
        """The last n bars (at most `lookback`) as columns."""
        lo, hi = self._visible(n)
        columns = list(zip(*self._data.rows(lo, hi))) or [()] * len(OHLCV)
        return {"time": self._data.labels(lo, hi), **{name: list(col) for name, col in zip(OHLCV, columns)}}

    def snapshot(self) -> MarketSnapshot:
        """JSON-able summary for prompts and the offline model; memoised, treat as read-only."""
        if self._snapshot is None:
            self._snapshot = self._build()
        return self._snapshot

    def _build(self) -> MarketSnapshot:
        d, i, t = self._data, self._i, self.as_of
        derived = [rounded(x) for x in d.derived[i].tolist()]
        lo, hi = self._visible(RECENT_BARS)
        news_items, n7, n30 = self._news()
        return {
            "symbol": self.symbol,
            "as_of": iso(t),
            "timeframe": d.bars.timeframe,
            "price": {**dict(zip(OHLCV, d.rows(i, i + 1)[0])),
                      **dict(zip((name for name, _ in CHANGES), derived)),
                      "bars": min(i + 1, self._lookback)},
            "indicators": dict(zip(indicators.NAMES, derived[len(CHANGES):])),
            "recent_bars": [{"time": when, **dict(zip(OHLCV, r))}
                            for when, r in zip(d.labels(lo, hi), d.rows(lo, hi))],
            "news": news_items,
            "news_count_7d": n7,
            "news_count_30d": n30,
            "fundamentals": self._fundamentals(),
            "sector": self._sector,
        }

    def _news(self) -> tuple[list[dict[str, Any]], int, int]:
        news, t = self._data.news, self.as_of
        if news is None:
            return [], 0, 0
        # Publication precedes visibility, so everything published in the counting window and
        # visible now lies between these two bounds.
        lo = int(np.searchsorted(news.visible, t - NEWS_COUNT_DAYS, side="right"))
        published = news.published[lo:news.count(t)]
        recent = np.flatnonzero(published > t - NEWS_DAYS)
        newest = recent[np.argsort(published[recent], kind="stable")][::-1][:MAX_NEWS]
        counted = int(np.count_nonzero(published > t - NEWS_COUNT_DAYS))
        return [dict(news.items[lo + k]) for k in newest.tolist()], len(recent), counted

    def _fundamentals(self) -> Fundamentals | None:
        """The last 8 visible quarters; YoY growth compares the latest with 4 quarters before."""
        earnings = self._data.earnings
        if earnings is None or (k := earnings.count(self.as_of)) == 0:
            return None
        history = [dict(r) for r in earnings.items[max(0, k - 8):k][::-1]]
        eps = [r["reported_eps"] for r in history]
        ttm = sum(eps[:4]) if len(eps) >= 4 and None not in eps[:4] else None
        base = eps[4] if len(eps) >= 5 else None
        growth = (eps[0] - base) / abs(base) * 100 if base and eps[0] is not None else None
        return {"latest": dict(history[0]), "history": history,
                "eps_ttm": rounded(ttm) if ttm is not None else None,
                "eps_growth_yoy_pct": rounded(growth) if growth is not None else None}

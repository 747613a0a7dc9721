"""The clock rules (see the package docstring): when a bar closes, which session it belongs to,
and from which instant a dated headline or earnings report may be shown."""

from __future__ import annotations

import datetime as dt
import re
from functools import cache
from zoneinfo import ZoneInfo

import numpy as np

from flowkit.errors import DataError

NY = ZoneInfo("America/New_York")
NEVER = np.datetime64("9999-12-31T00:00:00", "s")  # visible_from of data that no loaded bar reveals
HOUR = np.timedelta64(3600, "s")
DAY = np.timedelta64(86400, "s")
_EPOCH = dt.date(1970, 1, 1)

# A pair quoted in one of these trades 24/7 (BTC-USDT, ETH/BTC, BTC-USD); BRK-B stays a stock.
_CRYPTO = re.compile(r"^[A-Z0-9]+[-/](USDT|USDC|USD|BUSD|FDUSD|TUSD|DAI|BTC|ETH|BNB|EUR)$")


def is_crypto(symbol: str) -> bool:
    return bool(_CRYPTO.match(symbol))


def seconds(t: np.datetime64 | dt.datetime | str) -> np.datetime64:
    """`t` as datetime64[s] (finer units are floored, which only hides more)."""
    return np.datetime64(t, "s")  # type: ignore[call-overload]  # numpy's stubs miss this overload


def periods_per_year(crypto: bool, timeframe: str) -> int:
    """Bars per year: 252 sessions (7 hourly bars each) for stocks, 365 days (x24) for crypto."""
    if crypto:
        return 365 if timeframe == "1d" else 365 * 24
    return 252 if timeframe == "1d" else 252 * 7


STOCK_SESSIONS, CRYPTO_DAYS, WEEKS = 252, 365, 52


def decisions_per_year(crypto: bool, every: str, bars_per_session: int) -> tuple[int, str]:
    """Decision periods per year, and why: what annualises an equity curve marked once per
    decision. It follows the decision calendar, not the bars: 52 weekly; 252 stock sessions or
    365 crypto days daily; hourly, that times the bars of a session (24 for crypto)."""
    days, market = (CRYPTO_DAYS, "crypto trades every day") if crypto else \
        (STOCK_SESSIONS, "stock sessions")
    if every == "1w":
        return WEEKS, "weekly decisions"
    if every == "1d":
        return days, f"daily decisions, {market}"
    if every == "1h":
        return days * bars_per_session, f"hourly decisions, {bars_per_session} bars a session x {days}"
    raise DataError(f"unknown decision frequency {every!r}; expected 1d, 1w or 1h")


@cache
def _ny_offset(day: int) -> int:
    """UTC offset of New York, in seconds, on day `day` (days since 1970-01-01) at the close."""
    d = _EPOCH + dt.timedelta(days=day)
    offset = dt.datetime(d.year, d.month, d.day, 16, tzinfo=NY).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def _ny_offsets(days: np.ndarray) -> np.ndarray:
    unique, inverse = np.unique(days.astype("datetime64[D]").astype(np.int64), return_inverse=True)
    return np.array([_ny_offset(int(d)) for d in unique], dtype=np.int64)[inverse].astype("timedelta64[s]")


def stamp(label: np.ndarray, timeframe: str, crypto: bool, origin: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(open time, close time, session date) of each bar.

    `label` (datetime64[s]) is what the source gives: the date of a daily bar (00:00) or the UTC
    open time of an hourly bar."""
    if crypto:
        step = DAY if timeframe == "1d" else HOUR
        return label, label + step, label.astype("datetime64[D]")
    if timeframe == "1h":
        session = (label + _ny_offsets(label)).astype("datetime64[D]")
        return label, label + HOUR, session
    day = label.astype("datetime64[D]")
    weekday = (day.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if (weekday >= 5).any():
        bad = day[weekday >= 5][0]
        raise DataError(f"{origin}: stock bars on a weekend ({bad}); a 24/7 market must be named "
                        "BASE-QUOTE (e.g. BTC-USDT) so that its bars close at 00:00 UTC")
    offset = _ny_offsets(day)
    start = day.astype("datetime64[s]")
    return start + np.timedelta64(34200, "s") - offset, start + np.timedelta64(57600, "s") - offset, day


def first_close_after(session: np.ndarray, close_time: np.ndarray, days: np.ndarray) -> np.ndarray:
    """close_time of the first bar whose session date is after each of `days` (NEVER if none)."""
    j = np.searchsorted(session, days.astype("datetime64[D]"), side="right")
    out = np.full(len(days), NEVER)
    found = j < len(session)
    out[found] = close_time[j[found]]
    return out


def next_session(session: np.ndarray, days: np.ndarray) -> np.ndarray:
    """The first session date after each of `days` (NaT if the data ends first)."""
    j = np.searchsorted(session, days.astype("datetime64[D]"), side="right")
    out = np.full(len(days), np.datetime64("NaT"), dtype="datetime64[D]")
    found = j < len(session)
    out[found] = session[j[found]]
    return out


def decision_indices(session: np.ndarray, timeframe: str, every: str) -> np.ndarray:
    """Indices of the bars that end each decision period: every bar (1h), the last bar of each
    session (1d) or of each ISO week (1w, Monday to Sunday)."""
    if every == "1h":
        if timeframe != "1h":
            raise DataError("decisions every 1h need hourly bars (market.timeframe: 1h)")
        return np.arange(len(session))
    if every == "1d":
        key = session.astype(np.int64)
    elif every == "1w":
        day = session.astype(np.int64)
        key = day - (day + 3) % 7  # the Monday of the ISO week
    else:
        raise DataError(f"unknown decision frequency {every!r}; expected 1d, 1w or 1h")
    return np.flatnonzero(np.append(key[1:] != key[:-1], True))

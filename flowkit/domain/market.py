"""What an agent knows about one symbol at one instant: the shape of `AsOfView.snapshot()`.
A TypedDict, not a class, because the snapshot is also prompt context: templates, `when:`
conditions, the response cache's keys and the offline model read it as plain JSON."""

from __future__ import annotations

from typing import Any, TypedDict


class Fundamentals(TypedDict):
    latest: dict[str, Any]              # the last visible quarter's earnings row
    history: list[dict[str, Any]]       # up to 8 visible quarters, newest first
    eps_ttm: float | None
    eps_growth_yoy_pct: float | None


class MarketSnapshot(TypedDict):
    symbol: str
    as_of: str                          # ISO time of the bar close the snapshot is taken at
    timeframe: str
    price: dict[str, float | None]      # OHLCV, change_{1,5,20}d_pct, bars (visible count)
    indicators: dict[str, float | None]  # market.indicators.NAMES
    recent_bars: list[dict[str, Any]]
    news: list[dict[str, Any]]          # newest first, at most MAX_NEWS, visible by as_of
    news_count_7d: int
    news_count_30d: int
    fundamentals: Fundamentals | None   # stocks with earnings; None for crypto
    sector: str | None

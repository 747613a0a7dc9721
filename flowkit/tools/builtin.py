"""flowkit's own tools, registered through the `flowkit.tools` entry points in pyproject.toml.
Each docstring's first line is the description the model reads."""

from __future__ import annotations

from typing import Any


def price_history(view: Any, n: int = 20) -> dict[str, Any]:
    """Last n bars (time, open, high, low, close, volume) up to the decision time."""
    return view.history(max(1, min(int(n), 500)))


def indicators(view: Any) -> dict[str, Any]:
    """Latest technical indicators (RSI, MACD, Bollinger, SMA/EMA, ATR, volatility)."""
    return view.snapshot()["indicators"]


def news(view: Any, limit: int = 10) -> list[dict[str, Any]]:
    """Most recent headlines published by the decision time."""
    return view.snapshot()["news"][: max(1, min(int(limit), 20))]


def fundamentals(view: Any) -> Any:
    """Latest reported quarterly earnings known at the decision time."""
    return view.snapshot()["fundamentals"]

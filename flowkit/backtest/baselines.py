"""Rule-based baselines run under the firm's own data, costs and fill timing.

A baseline is only a fair yardstick if it trades like the firm does, so each one:

- decides at every decision time ``t`` on the *decision bar*, the last bar with
  ``close_time <= t`` (the same as-of rule agents see), using only bars up to it;
- fills at the next bar's open (``fill="next_open"``) or at the decision bar's close
  (``fill="close"``); an order whose next bar does not exist yet is never filled;
- pays ``slippage_bps`` (buys fill higher, sells lower) and ``fee_bps`` of notional on every fill;
- is long-only and all-in / all-out of its cash, in whole units unless ``fractional``;
- gets an equal share of ``initial_cash`` per symbol (one independent sleeve per symbol).

The strategies:

- ``buy_and_hold``: buys at the first decision time and never sells.
- ``sma_crossover``: buys when the fast SMA of closes crosses above the slow SMA, sells when it
  crosses below. A crossover is a change of sign of ``fast - slow`` between the previous
  decision bar (the bar before, for the first decision) and this decision bar.
- ``macd``: the same rule with the MACD line (EMA fast - EMA slow) against its signal line
  (EMA of the line); EMAs are seeded with the first close (``pandas ewm(span, adjust=False)``).
  No signal is read before an indicator has its full window of history.

Equity is marked at each decision time at the decision bar's close, after the fills that
happened up to then; it is the curve `compute_metrics` reads.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from flowkit.backtest.metrics import compute_metrics, round_trips


class BarsLike(Protocol):
    """OHLCV arrays of one symbol, ascending by time (flowkit.market's ``Bars``)."""

    time: np.ndarray  # datetime64, bar open
    close_time: np.ndarray  # datetime64, bar close
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass(frozen=True)
class BaselineResult:
    """One baseline over the whole portfolio."""

    strategy: str
    times: np.ndarray  # datetime64[s], the decision times
    equity: np.ndarray  # portfolio equity at each decision time
    fills: list[dict[str, Any]]  # every execution, fields as in the `fills` table plus as_of
    trades: list[dict[str, Any]]  # closed round trips (metrics.round_trips)
    metrics: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        """The ``metrics`` table payload: the metrics plus ``equity``, [[iso_time, value], ...]."""
        curve = [[_iso(t), float(v)] for t, v in zip(self.times, self.equity, strict=True)]
        return {**self.metrics, "equity": curve}


# A signal says, at decision bar i with reference bar j < i: True = go long, False = go flat,
# None = keep the position.
Signal = Callable[[int, int], bool | None]


def run_baselines(
    bars_by_symbol: Mapping[str, BarsLike],
    decision_times: Sequence[Any],
    *,
    initial_cash: float,
    fee_bps: float,
    slippage_bps: float,
    fill: Literal["next_open", "close"],
    fractional: bool,
    periods_per_year: int,
    risk_free_rate: float = 0.0,
    sma: tuple[int, int] = (20, 50),
    macd: tuple[int, int, int] = (12, 26, 9),
) -> dict[str, BaselineResult]:
    """Run buy-and-hold, SMA crossover and MACD; keys are the ``metrics.strategy`` names."""
    if not bars_by_symbol:
        raise ValueError("run_baselines needs at least one symbol")
    if fill not in ("next_open", "close"):
        raise ValueError(f"fill must be 'next_open' or 'close', got {fill!r}")
    times = np.array([_dt64(t) for t in decision_times], dtype="datetime64[s]")
    if np.any(times[1:] < times[:-1]):
        raise ValueError("decision_times must be in ascending order")
    sleeve_cash = initial_cash / len(bars_by_symbol)
    signals: dict[str, Callable[[np.ndarray], Signal]] = {
        "buy_and_hold": lambda close: lambda i, j: True,
        "sma_crossover": lambda close: _crossover(_sma(close, sma[0]), _sma(close, sma[1])),
        "macd": lambda close: _crossover(*_macd(close, *macd)),
    }
    results = {}
    for name, make_signal in signals.items():
        sleeves = [
            _run_sleeve(symbol, bars, times, make_signal(np.asarray(bars.close, dtype=float)),
                        cash=sleeve_cash, fee=fee_bps / 1e4, slip=slippage_bps / 1e4,
                        fill=fill, fractional=fractional)
            for symbol, bars in bars_by_symbol.items()
        ]
        equity = np.sum([s.equity for s in sleeves], axis=0)
        gross = np.sum([s.gross for s in sleeves], axis=0)
        fills = sorted((f for s in sleeves for f in s.fills), key=lambda f: f["time"])
        with np.errstate(divide="ignore", invalid="ignore"):
            exposure = np.where(equity > 0, gross / equity, np.nan)
        trades = round_trips(fills)
        metrics = compute_metrics(
            equity, periods_per_year=periods_per_year, risk_free_rate=risk_free_rate,
            trades=trades, exposure=exposure,
            turnover_notional=sum(f["quantity"] * f["price"] for f in fills),
        )
        results[name] = BaselineResult(name, times, equity, fills, trades, metrics)
    return results


def excess_return(firm_metrics: Mapping[str, float], bh_metrics: Mapping[str, float]) -> float:
    """Firm's cumulative return minus buy-and-hold's over the same window (a fraction)."""
    return firm_metrics["cumulative_return"] - bh_metrics["cumulative_return"]


# ---------------------------------------------------------------- simulation


@dataclass
class _SleeveRun:
    equity: np.ndarray
    gross: np.ndarray  # |position value| at each decision time
    fills: list[dict[str, Any]]


def _run_sleeve(symbol: str, bars: BarsLike, times: np.ndarray, signal: Signal, *, cash: float,
                fee: float, slip: float, fill: str, fractional: bool) -> _SleeveRun:
    close_time = np.asarray(bars.close_time, dtype="datetime64[s]")
    decision_bar = np.searchsorted(close_time, times, side="right") - 1
    qty = 0.0
    pending: tuple[int, bool, np.datetime64] | None = None  # (fill bar, buy?, as_of)
    fills: list[dict[str, Any]] = []
    equity, gross = np.zeros(len(times)), np.zeros(len(times))
    prev_bar = -1

    def execute(bar: int, buy: bool, as_of: np.datetime64) -> None:
        nonlocal cash, qty
        at_open = fill == "next_open"
        raw = float(bars.open[bar] if at_open else bars.close[bar])
        price = raw * (1 + slip) if buy else raw * (1 - slip)
        if buy:
            size = cash / (price * (1 + fee))
            size = size if fractional else math.floor(size)
        else:
            size = qty
        if size <= 0:
            return
        notional = size * price
        cash += -notional * (1 + fee) if buy else notional * (1 - fee)
        qty += size if buy else -size
        fills.append({
            "symbol": symbol, "time": _iso(bars.time[bar] if at_open else close_time[bar]),
            "as_of": _iso(as_of), "side": "buy" if buy else "sell", "quantity": size,
            "price": price, "fee": notional * fee, "slippage": size * abs(price - raw),
        })

    for k, (t, i) in enumerate(zip(times, decision_bar, strict=True)):
        if pending is not None and pending[0] <= i:
            execute(*pending)
            pending = None
        # One decision per bar: a second decision time on the same bar has nothing new to see.
        if i >= 0 and i != prev_bar:
            want = signal(i, prev_bar if prev_bar >= 0 else i - 1)
            if (want and qty == 0) or (want is False and qty > 0):
                if fill == "close":
                    execute(i, want, t)
                elif i + 1 < len(close_time):
                    pending = (i + 1, want, t)
            prev_bar = i
        price = float(bars.close[i]) if i >= 0 else 0.0
        equity[k], gross[k] = cash + qty * price, abs(qty * price)
    return _SleeveRun(equity, gross, fills)


# ---------------------------------------------------------------- indicators (causal)


def _crossover(line: np.ndarray, reference: np.ndarray) -> Signal:
    side = np.sign(line - reference)  # NaN during warm-up

    def signal(i: int, j: int) -> bool | None:
        if j < 0 or np.isnan(side[i]) or np.isnan(side[j]):
            return None
        if side[j] <= 0 < side[i]:
            return True
        if side[j] >= 0 > side[i]:
            return False
        return None

    return signal


def _sma(x: np.ndarray, n: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = np.lib.stride_tricks.sliding_window_view(x, n).mean(axis=1)
    return out


def _ema(x: np.ndarray, n: int) -> np.ndarray:
    alpha = 2.0 / (n + 1)
    out = np.empty(len(x))
    acc = np.nan
    for k, v in enumerate(x):
        acc = v if np.isnan(acc) else acc + alpha * (v - acc)
        out[k] = acc
    return out


def _macd(close: np.ndarray, fast: int, slow: int, signal: int) -> tuple[np.ndarray, np.ndarray]:
    line = _ema(close, fast) - _ema(close, slow)
    sig = _ema(line, signal)
    warm = min(slow + signal - 2, len(close))  # first index with a full window behind it
    line[:warm] = sig[:warm] = np.nan
    return line, sig


# ---------------------------------------------------------------- time helpers


def _dt64(t: Any) -> np.datetime64:
    if isinstance(t, dt.datetime) and t.tzinfo is not None:
        t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return np.datetime64(t, "s")


def _iso(t: np.datetime64) -> str:
    return str(np.asarray(t, dtype="datetime64[s]"))

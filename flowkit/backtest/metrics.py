"""Performance metrics of an equity curve, with named conventions.

Every return-based metric matches empyrical-reloaded 0.7.1 on the same return series (the tests
check each to 1e-9); the empyrical call is named in brackets.

- **returns**: simple period returns of the equity curve, ``r_t = E_t / E_{t-1} - 1``;
  ``N = len(equity) - 1`` periods (``periods``). ``P = periods_per_year`` (returned too): the
  curve's sampling rate, i.e. decisions per year (`flowkit.backtest.evaluate.periods_per_year`:
  52 weekly, 252 stock sessions or 365 crypto days daily), never the bar frequency.
- **risk-free rate per period**: ``rf = (1 + risk_free_rate) ** (1 / P) - 1`` (annual rate
  compounded down to one period).
- ``cumulative_return``: ``E_N / E_0 - 1``.
- ``annual_return``: geometric (CAGR), ``(E_N / E_0) ** (P / N) - 1`` [``annual_return``].
- ``annual_mean_return``: arithmetic, ``mean(r) * P``.
- ``annual_volatility``: sample std (ddof=1) ``* sqrt(P)`` [``annual_volatility``].
- ``sharpe``: ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(P)`` [``sharpe_ratio(r, risk_free=rf)``].
- ``downside_risk``: ``sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(P)``; the mean runs over all N
  periods, not only the losing ones [``downside_risk(r, required_return=rf)``].
- ``sortino``: ``mean(r - rf) * P / downside_risk`` [``sortino_ratio(r, required_return=rf)``].
- ``max_drawdown``: ``min_t(E_t / max_{s<=t} E_s - 1)``, a negative fraction (0 when equity never
  fell); the starting equity counts as a peak [``max_drawdown``].
- ``calmar``: ``annual_return / |max_drawdown|`` [``calmar_ratio``].
- ``num_trades``, ``win_rate``, ``profit_factor``: over closed round trips (see `round_trips`),
  from realised P&L net of fees; win rate = share with P&L > 0, profit factor = gross profit /
  gross loss.
- ``turnover``: traded notional / mean equity, annualised: ``notional / mean(E) * P / N``
  (1.0 means the book's value traded once a year).
- ``exposure``: mean gross exposure (sum of |position value| / equity) over the snapshots.
- ``final_equity``: ``E_N``.

Edge cases: every value is a finite number or NaN, never inf, so results serialise as JSON.
NaN means "undefined here": fewer than 2 returns (volatility, Sharpe, Sortino), zero dispersion
(flat equity: Sharpe is NaN, where empyrical gives NaN for 0/0 and inf for a constant non-zero
excess return), no downside (Sortino), no drawdown (Calmar, as empyrical), no closed trades (win
rate, profit factor), no losing trade (profit factor), or an input that was not given (trades,
exposure, turnover). One equity point gives cumulative return 0 and max drawdown 0; an empty
curve gives NaN for every curve metric.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SUSPECT_SHARPE = 3.0
MIN_RELIABLE_PERIODS = 30
_FLAT = 1e-9  # |position| below this is flat (fractional quantities carry float noise)

_NAN = float("nan")


def compute_metrics(
    equity: Sequence[float] | np.ndarray,
    *,
    periods_per_year: int,
    risk_free_rate: float = 0.0,
    trades: list[dict] | TradeSummary | None = None,
    exposure: Sequence[float] | np.ndarray | None = None,
    turnover_notional: float | None = None,
) -> dict[str, float]:
    """Metrics of an equity curve sampled once per period; conventions in the module docstring.

    `trades` are closed round trips, each a mapping with a ``pnl`` key (e.g. from `round_trips`),
    or their `TradeSummary`;
    `exposure` is the gross exposure at each snapshot; `turnover_notional` is the summed
    |quantity x price| of every fill.
    """
    if periods_per_year <= 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year}")
    e = np.asarray(equity, dtype=float)
    n = max(len(e) - 1, 0)
    ppy = float(periods_per_year)
    rf = (1.0 + risk_free_rate) ** (1.0 / ppy) - 1.0
    out: dict[str, float] = {"periods": n, "periods_per_year": periods_per_year}

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        r = e[1:] / e[:-1] - 1.0
        excess = r - rf
        growth = e[-1] / e[0] if len(e) else _NAN
        out["cumulative_return"] = growth - 1.0
        out["annual_return"] = growth ** (ppy / n) - 1.0 if n and growth >= 0 else _NAN
        out["annual_mean_return"] = r.mean() * ppy if n else _NAN
        out["annual_volatility"] = r.std(ddof=1) * math.sqrt(ppy) if n >= 2 else _NAN
        flat = n < 2 or excess.max() == excess.min()  # empyrical's zero-dispersion test
        out["sharpe"] = _NAN if flat else excess.mean() / excess.std(ddof=1) * math.sqrt(ppy)
        downside = math.sqrt(np.mean(np.minimum(excess, 0.0) ** 2) * ppy) if n else _NAN
        out["downside_risk"] = downside
        out["sortino"] = excess.mean() * ppy / downside if n >= 2 and downside > 0 else _NAN
        mdd = float((e / np.maximum.accumulate(e) - 1.0).min()) if len(e) else _NAN
        out["max_drawdown"] = mdd
        out["calmar"] = out["annual_return"] / abs(mdd) if mdd < 0 else _NAN
        out["turnover"] = (
            turnover_notional / e.mean() * ppy / n if turnover_notional is not None and n else _NAN
        )
    out["exposure"] = float(np.mean(exposure)) if exposure is not None and len(exposure) else _NAN
    out.update(_trade_stats(trades))
    out["final_equity"] = float(e[-1]) if len(e) else _NAN
    return {k: _finite(v) for k, v in out.items()}


def measured_periods_per_year(times: Sequence[Any]) -> int | None:
    """Periods per 365.25 days between the first and last of `times` (ascending instants), for
    a curve with no single calendar; None with fewer than 3 points or no time between them."""
    if len(times) < 3:
        return None
    span = (np.datetime64(times[-1], "s") - np.datetime64(times[0], "s")) / np.timedelta64(1, "D")
    return max(1, round((len(times) - 1) * 365.25 / span)) if span > 0 else None


def round_trips(fills: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Closed round trips from fills in execution order, per symbol (the rule is `RoundTrips`).
    Trips still open at the end are left out."""
    trips = RoundTrips()
    return [trip for f in fills for trip in trips.add(f)]


class RoundTrips:
    """Round trips built fill by fill, for a run of any length: it holds only the trips still
    open (one per symbol) and the closed trips' `TradeSummary`, so its state is bounded.

    A round trip runs from a flat position to flat again (scaling in or out stays inside it);
    a fill that flips the position closes one trip and opens the next, its quantity and fee
    split pro rata. ``pnl`` is the realised cash flow of the trip net of fees. A fill is a
    mapping with ``symbol``, ``side`` (buy | sell), ``quantity`` (> 0), ``price``, and optional
    ``fee`` and ``time``, as in the ``fills`` table."""

    def __init__(self, state: Mapping[str, Any] | None = None):
        self.open: dict[str, dict[str, Any]] = dict((state or {}).get("open", {}))
        self.closed = TradeSummary(**(state or {}).get("closed", {}))

    def to_state(self) -> dict[str, Any]:
        return {"open": {s: {**t, "opened": _text(t["opened"])} for s, t in self.open.items()},
                "closed": asdict(self.closed)}

    def add(self, f: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Book one fill; the trips it closed."""
        sign = 1.0 if f["side"] == "buy" else -1.0
        qty, price = float(f["quantity"]), float(f["price"])
        fee_per_unit = float(f.get("fee") or 0.0) / qty if qty else 0.0
        symbol = f["symbol"]
        closed = []
        while qty > _FLAT:
            trip = self.open.get(symbol)
            if trip is None:
                trip = self.open[symbol] = {
                    "symbol": symbol, "direction": "long" if sign > 0 else "short",
                    "opened": f.get("time"), "position": 0.0, "cash": 0.0, "fees": 0.0,
                }
            pos = trip["position"]
            # The part of this fill that belongs to the current trip: all of it unless it
            # crosses zero, in which case only what brings the position back to flat.
            part = qty if pos * sign >= 0 else min(qty, abs(pos))
            trip["position"] = pos + sign * part
            trip["cash"] -= sign * part * price + part * fee_per_unit
            trip["fees"] += part * fee_per_unit
            qty -= part
            if abs(trip["position"]) <= _FLAT:
                del self.open[symbol]
                self.closed.add(trip["cash"])
                closed.append({
                    "symbol": symbol, "direction": trip["direction"], "opened": trip["opened"],
                    "closed": f.get("time"), "pnl": trip["cash"], "fees": trip["fees"],
                })
        return closed


@dataclass
class TradeSummary:
    """What the trade metrics need of closed round trips, summed as they close."""

    count: int = 0
    wins: int = 0
    profit: float = 0.0   # gross profit of the winning trips
    loss: float = 0.0     # gross loss of the losing trips, positive

    def add(self, pnl: float) -> None:
        self.count += 1
        self.wins += pnl > 0
        self.profit += max(pnl, 0.0)
        self.loss -= min(pnl, 0.0)

    def stats(self) -> dict[str, float]:
        return {
            "num_trades": self.count,
            "win_rate": self.wins / self.count if self.count else _NAN,
            "profit_factor": self.profit / self.loss if self.loss > 0 else _NAN,
        }


def flag_suspect(metrics: Mapping[str, float], *, baseline: bool = False) -> list[str]:
    """Warnings about results too good or too thin to trust (empty when none apply). A
    `baseline` is flowkit's own rule on past bars, which cannot look ahead: only the thin-data
    flag applies to it (a high Sharpe there is the market's, e.g. buy-and-hold in a rally)."""
    flags = []
    sharpe = metrics.get("sharpe", _NAN)
    if sharpe > SUSPECT_SHARPE and not baseline:
        flags.append(f"Sharpe {sharpe:.2f} > {SUSPECT_SHARPE:g} is suspect: check for look-ahead, "
                     "costs left out or a window too short to mean anything")
    periods = metrics.get("periods", _NAN)
    if periods < MIN_RELIABLE_PERIODS:
        flags.append(f"only {periods:g} periods: annualised figures are unreliable")
    if metrics.get("win_rate", _NAN) == 1.0 and metrics.get("num_trades", 0) >= 5 and not baseline:
        flags.append(f"all {metrics['num_trades']:g} closed trades won: check fill timing")
    return flags


def _trade_stats(trades: list[dict] | TradeSummary | None) -> dict[str, float]:
    if trades is None:
        return {"num_trades": _NAN, "win_rate": _NAN, "profit_factor": _NAN}
    if isinstance(trades, TradeSummary):
        return trades.stats()
    summary = TradeSummary()
    for t in trades:
        summary.add(float(t["pnl"]))
    return summary.stats()


def _text(t: Any) -> Any:
    """A trip's opening time as JSON can hold it."""
    return t.isoformat() if hasattr(t, "isoformat") else t


def _finite(value: float) -> float:
    if isinstance(value, int):
        return value
    value = float(value)
    return value if math.isfinite(value) else _NAN

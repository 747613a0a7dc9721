"""compute_metrics against empyrical-reloaded on real return series, edge cases, round trips."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.backtest.metrics import compute_metrics, flag_suspect, round_trips
from sample_data import OHLCV

empyrical = pytest.importorskip("empyrical")



def closes(symbol: str, year: int) -> np.ndarray:
    df = pd.read_csv(OHLCV / f"{symbol}.csv", parse_dates=["date"])
    return df.loc[df["date"].dt.year == year, "close"].to_numpy(float)


def reference(equity: np.ndarray, ppy: int, rf_annual: float) -> dict[str, float]:
    """The same metrics from empyrical, on returns pandas computes from the curve."""
    r = empyrical.simple_returns(pd.Series(equity)).to_numpy()
    rf = (1 + rf_annual) ** (1 / ppy) - 1
    return {
        "cumulative_return": empyrical.cum_returns_final(r),
        "annual_return": empyrical.annual_return(r, annualization=ppy),
        "annual_mean_return": r.mean() * ppy,
        "annual_volatility": empyrical.annual_volatility(r, annualization=ppy),
        "sharpe": empyrical.sharpe_ratio(r, risk_free=rf, annualization=ppy),
        "downside_risk": empyrical.downside_risk(r, required_return=rf, annualization=ppy),
        "sortino": empyrical.sortino_ratio(r, required_return=rf, annualization=ppy),
        "max_drawdown": empyrical.max_drawdown(r),
        "calmar": empyrical.calmar_ratio(r, annualization=ppy),
    }


def assert_matches(equity: np.ndarray, ppy: int, rf: float) -> None:
    got = compute_metrics(equity, periods_per_year=ppy, risk_free_rate=rf)
    for key, want in reference(equity, ppy, rf).items():
        assert got[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key
    assert got["periods"] == len(equity) - 1
    assert got["final_equity"] == equity[-1]


@pytest.mark.parametrize("symbol,year,ppy", [("AAPL", 2024, 252), ("BTC-USDT", 2023, 365),
                                             ("NVDA", 2022, 252), ("ETH-USDT", 2022, 365)])
@pytest.mark.parametrize("rf", [0.0, 0.045])
def test_matches_empyrical_on_real_returns(symbol: str, year: int, ppy: int, rf: float) -> None:
    px = closes(symbol, year)
    assert len(px) > 200
    assert_matches(100_000 * px / px[0], ppy, rf)


def test_matches_empyrical_on_a_curve_with_flat_stretches() -> None:
    """A strategy curve: in cash (flat) half the time, invested otherwise."""
    px = closes("AAPL", 2024)
    r = np.diff(px) / px[:-1]
    r[(np.arange(len(r)) // 20) % 2 == 0] = 0.0
    assert_matches(np.concatenate([[1e5], 1e5 * np.cumprod(1 + r)]), 252, 0.03)


@settings(max_examples=200, deadline=None)
# Returns in basis-point steps: at 1e-16 both libraries only compare float rounding noise.
@given(st.lists(st.integers(-2000, 2000).map(lambda bp: bp / 1e4), min_size=2, max_size=60),
       st.sampled_from([12, 52, 252, 365]), st.floats(0, 0.1))
def test_matches_empyrical_on_random_curves(r: list[float], ppy: int, rf: float) -> None:
    equity = 1000 * np.cumprod(np.concatenate([[1.0], 1 + np.array(r)]))
    got = compute_metrics(equity, periods_per_year=ppy, risk_free_rate=rf)
    assert all(isinstance(v, int) or not math.isinf(v) for v in got.values())
    for key, want in reference(equity, ppy, rf).items():
        if math.isfinite(want):
            assert got[key] == pytest.approx(want, rel=1e-9, abs=1e-9), key
        else:  # empyrical's inf (constant excess, no downside) is NaN here
            assert math.isnan(got[key]), key


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), max_size=8))
def test_never_crashes_and_never_inf(equity: list[float]) -> None:
    got = compute_metrics(equity, periods_per_year=252, trades=[], exposure=[], turnover_notional=0)
    assert all(not math.isinf(v) for v in got.values())


def test_flat_equity() -> None:
    m = compute_metrics([100.0] * 30, periods_per_year=252, risk_free_rate=0.0)
    assert m["cumulative_return"] == 0 and m["annual_return"] == 0
    assert m["annual_volatility"] == 0 and m["max_drawdown"] == 0
    assert math.isnan(m["sharpe"]) and math.isnan(m["sortino"]) and math.isnan(m["calmar"])
    # Below a positive risk-free rate the excess return is a negative constant: still no
    # dispersion, so Sharpe stays NaN (empyrical: -inf), while Sortino is defined.
    below_rf = compute_metrics([100.0] * 30, periods_per_year=252, risk_free_rate=0.05)
    assert math.isnan(below_rf["sharpe"])
    assert below_rf["sortino"] == pytest.approx(-math.sqrt(252))


def test_one_point_and_empty() -> None:
    one = compute_metrics([100.0], periods_per_year=252)
    assert one["periods"] == 0 and one["cumulative_return"] == 0 and one["max_drawdown"] == 0
    assert math.isnan(one["annual_return"]) and math.isnan(one["sharpe"])
    empty = compute_metrics([], periods_per_year=252)
    assert empty["periods"] == 0 and math.isnan(empty["cumulative_return"])
    with pytest.raises(ValueError):
        compute_metrics([1.0, 2.0], periods_per_year=0)


def test_trade_statistics() -> None:
    equity = [100.0, 101.0, 99.0, 103.0]
    none = compute_metrics(equity, periods_per_year=252)
    assert math.isnan(none["num_trades"]) and math.isnan(none["win_rate"])
    zero = compute_metrics(equity, periods_per_year=252, trades=[])
    assert zero["num_trades"] == 0 and math.isnan(zero["win_rate"])
    assert math.isnan(zero["profit_factor"])
    m = compute_metrics(equity, periods_per_year=252,
                        trades=[{"pnl": 30.0}, {"pnl": -10.0}, {"pnl": 5.0}, {"pnl": -5.0}])
    assert m["num_trades"] == 4 and m["win_rate"] == 0.5 and m["profit_factor"] == 35 / 15
    all_wins = compute_metrics(equity, periods_per_year=252, trades=[{"pnl": 1.0}])
    assert all_wins["win_rate"] == 1 and math.isnan(all_wins["profit_factor"])


def test_turnover_and_exposure() -> None:
    equity = [100.0, 110.0, 90.0, 100.0, 100.0]  # mean 100, 4 periods
    m = compute_metrics(equity, periods_per_year=252, turnover_notional=200.0,
                        exposure=[0.0, 1.0, 1.0, 0.5, 0.0])
    assert m["turnover"] == pytest.approx(200 / 100 * 252 / 4)
    assert m["exposure"] == pytest.approx(0.5)
    assert math.isnan(compute_metrics(equity, periods_per_year=252)["turnover"])


def test_round_trips_flat_to_flat_with_fees_and_flip() -> None:
    fills = [
        {"symbol": "AAPL", "side": "buy", "quantity": 10, "price": 100.0, "fee": 1.0, "time": 1},
        {"symbol": "MSFT", "side": "buy", "quantity": 1, "price": 400.0, "fee": 0.0, "time": 2},
        {"symbol": "AAPL", "side": "buy", "quantity": 10, "price": 110.0, "fee": 1.0, "time": 3},
        {"symbol": "AAPL", "side": "sell", "quantity": 5, "price": 120.0, "fee": 0.5, "time": 4},
        # closes the remaining 15 long and opens 5 short; the fee splits 15:5
        {"symbol": "AAPL", "side": "sell", "quantity": 20, "price": 90.0, "fee": 2.0, "time": 5},
        {"symbol": "AAPL", "side": "buy", "quantity": 5, "price": 80.0, "fee": 0.5, "time": 6},
    ]
    trips = round_trips(fills)
    assert [(t["symbol"], t["direction"], t["opened"], t["closed"]) for t in trips] == [
        ("AAPL", "long", 1, 5), ("AAPL", "short", 5, 6)]
    long_pnl = -1000 - 1100 + 600 + 15 * 90 - (1 + 1 + 0.5 + 1.5)
    assert trips[0]["pnl"] == pytest.approx(long_pnl)
    assert trips[0]["fees"] == pytest.approx(4.0)
    assert trips[1]["pnl"] == pytest.approx(5 * 90 - 5 * 80 - 0.5 - 0.5)


def test_flags() -> None:
    assert flag_suspect({"sharpe": 1.2, "periods": 252, "num_trades": 3, "win_rate": 1.0}) == []
    flags = flag_suspect({"sharpe": 3.4, "periods": 20, "num_trades": 6, "win_rate": 1.0})
    assert len(flags) == 3 and "Sharpe 3.40 > 3" in flags[0]
    assert flag_suspect(compute_metrics([1.0], periods_per_year=252)) == [
        "only 0 periods: annualised figures are unreliable"]

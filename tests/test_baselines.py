"""Baselines on real AAPL/MSFT/BTC data: costs, fill timing, crossovers, no look-ahead."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from flowkit.backtest.baselines import excess_return, run_baselines
from flowkit.backtest.metrics import compute_metrics
from sample_data import OHLCV, Bars

COSTS = {"fee_bps": 1.0, "slippage_bps": 5.0}


def load_bars(symbol: str, start: str, end: str) -> Bars:
    df = pd.read_csv(OHLCV / f"{symbol}.csv", parse_dates=["date"])
    df = df[(df["date"] >= start) & (df["date"] <= end)]
    time = df["date"].to_numpy().astype("datetime64[s]")
    return Bars(time, time + np.timedelta64(1, "D"),
                *(df[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")))


def decisions(bars: Bars, start: str) -> list[np.datetime64]:
    """One decision at the close of every bar from `start` on."""
    return list(bars.close_time[bars.time >= np.datetime64(start)])


@pytest.fixture(scope="module")
def aapl() -> Bars:
    return load_bars("AAPL", "2023-01-01", "2024-12-31")  # 2023 is indicator warm-up


def run(bars_by_symbol: dict[str, Bars], times: list, **kw):
    args = {"initial_cash": 100_000.0, **COSTS, "fill": "next_open", "fractional": False,
            "periods_per_year": 252} | kw
    return run_baselines(bars_by_symbol, times, **args)


def test_buy_and_hold_is_shares_times_close_plus_leftover_cash(aapl: Bars) -> None:
    times = decisions(aapl, "2024-01-01")
    bh = run({"AAPL": aapl}, times)["buy_and_hold"]
    i0 = int(np.searchsorted(aapl.close_time, times[0], side="right")) - 1
    price = aapl.open[i0 + 1] * (1 + 5e-4)  # next bar's open plus slippage
    shares = math.floor(100_000 / (price * (1 + 1e-4)))
    cash = 100_000 - shares * price * (1 + 1e-4)
    assert 0 <= cash < price * (1 + 1e-4)
    expected = np.concatenate([[100_000.0], shares * aapl.close[i0 + 1:i0 + len(times)] + cash])
    np.testing.assert_allclose(bh.equity, expected, rtol=1e-12)
    [fill] = bh.fills
    assert fill["side"] == "buy" and fill["quantity"] == shares
    assert fill["time"] == "2024-01-03T00:00:00" and fill["as_of"] == "2024-01-03T00:00:00"
    assert fill["fee"] == pytest.approx(shares * price * 1e-4)
    assert fill["slippage"] == pytest.approx(shares * aapl.open[i0 + 1] * 5e-4)
    assert bh.trades == [] and bh.metrics["num_trades"] == 0
    assert bh.metrics == compute_metrics(
        bh.equity, periods_per_year=252, trades=[], exposure=[0.0] + [
            shares * c / (shares * c + cash) for c in aapl.close[i0 + 1:i0 + len(times)]],
        turnover_notional=shares * price)


def test_fill_at_close_and_fractional(aapl: Bars) -> None:
    times = decisions(aapl, "2024-01-01")
    bh = run({"AAPL": aapl}, times, fill="close", fractional=True)["buy_and_hold"]
    i0 = int(np.searchsorted(aapl.close_time, times[0], side="right")) - 1
    price = aapl.close[i0] * (1 + 5e-4)
    shares = 100_000 / (price * (1 + 1e-4))
    expected = shares * aapl.close[i0:i0 + len(times)]
    np.testing.assert_allclose(bh.equity, expected, rtol=1e-12)
    assert bh.fills[0]["time"] == str(aapl.close_time[i0])
    # Paying costs on the fill puts the first mark below the starting cash.
    assert bh.equity[0] == pytest.approx(100_000 / (1 + 5e-4) / (1 + 1e-4))


def test_costs_are_charged_on_every_fill(aapl: Bars) -> None:
    times = decisions(aapl, "2024-01-01")
    free = run({"AAPL": aapl}, times, fee_bps=0.0, slippage_bps=0.0)
    paid = run({"AAPL": aapl}, times)
    for name in free:
        assert paid[name].fills, name
        assert len(paid[name].fills) == len(free[name].fills)
        assert paid[name].equity[-1] < free[name].equity[-1]
        for f, g in zip(paid[name].fills, free[name].fills, strict=True):
            assert f["fee"] == pytest.approx(f["quantity"] * f["price"] * 1e-4)
            sign = 1 if f["side"] == "buy" else -1
            assert f["price"] == pytest.approx(g["price"] * (1 + sign * 5e-4))


def expected_crossings(bars: Bars, line: pd.Series, ref: pd.Series, times: list) -> list:
    """(as_of, side) of every trade the crossover rule should make, from pandas indicators."""
    side = np.sign(line - ref).to_numpy()
    out, long, prev = [], False, None
    for t in times:
        i = int(np.searchsorted(bars.close_time, t, side="right")) - 1
        j = i - 1 if prev is None else prev
        prev = i
        if np.isnan(side[i]) or np.isnan(side[j]):
            continue
        if side[j] <= 0 < side[i] and not long:
            out.append((str(t), "buy"))
            long = True
        elif side[j] >= 0 > side[i] and long:
            out.append((str(t), "sell"))
            long = False
    return out


def test_sma_and_macd_trade_only_on_crossovers(aapl: Bars) -> None:
    times = decisions(aapl, "2024-01-01")
    res = run({"AAPL": aapl}, times)
    close = pd.Series(aapl.close)
    sma = close.rolling(20).mean(), close.rolling(50).mean()
    line = close.ewm(span=12, adjust=False).mean() - close.ewm(span=26, adjust=False).mean()
    sig = line.ewm(span=9, adjust=False).mean()
    for name, (a, b) in {"sma_crossover": sma, "macd": (line, sig)}.items():
        want = expected_crossings(aapl, a, b, times)
        assert len(want) >= 4, name
        assert [(f["as_of"], f["side"]) for f in res[name].fills] == want, name
        # each fill is at the open of the bar after its decision bar
        for f in res[name].fills:
            i = int(np.searchsorted(aapl.time, np.datetime64(f["time"])))
            assert aapl.close_time[i - 1] == np.datetime64(f["as_of"])
    assert res["sma_crossover"].metrics["num_trades"] == len(res["sma_crossover"].trades) > 0


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_no_look_ahead(aapl: Bars, fill: str) -> None:
    """Rewriting every bar after t leaves each baseline's equity and fills up to t unchanged."""
    times = decisions(aapl, "2024-01-01")
    base = run({"AAPL": aapl}, times, fill=fill)
    rng = np.random.default_rng(7)
    for cut in (30, 100, 180):
        t = times[cut]
        after = aapl.time >= t  # bars opening at or after the decision time: not yet visible
        shock = np.where(after, rng.uniform(0.7, 1.3, len(aapl.time)), 1.0)
        future = dataclasses.replace(aapl, **{c: getattr(aapl, c) * shock
                                              for c in ("open", "high", "low", "close")})
        moved = run({"AAPL": future}, times, fill=fill)
        for name in base:
            np.testing.assert_array_equal(moved[name].equity[:cut + 1], base[name].equity[:cut + 1])
            upto = [f for f in base[name].fills if f["as_of"] <= str(t) and f["time"] <= str(t)]
            assert [f for f in moved[name].fills if f["as_of"] <= str(t)
                    and f["time"] <= str(t)] == upto
        assert not np.array_equal(moved["buy_and_hold"].equity, base["buy_and_hold"].equity)


def test_capital_split_equally_across_symbols(aapl: Bars) -> None:
    msft = load_bars("MSFT", "2023-01-01", "2024-12-31")
    times = decisions(aapl, "2024-01-01")
    both = run({"AAPL": aapl, "MSFT": msft}, times)
    alone = [run({s: b}, times, initial_cash=50_000.0) for s, b in (("AAPL", aapl), ("MSFT", msft))]
    for name, res in both.items():
        np.testing.assert_allclose(res.equity, alone[0][name].equity + alone[1][name].equity)
        assert {f["symbol"] for f in res.fills} == {"AAPL", "MSFT"}
        assert [f["time"] for f in res.fills] == sorted(f["time"] for f in res.fills)


def test_crypto_fractional_and_json() -> None:
    btc = load_bars("BTC-USDT", "2022-06-01", "2023-12-31")
    times = decisions(btc, "2023-01-01")
    res = run({"BTC-USDT": btc}, times, fractional=True, periods_per_year=365,
              risk_free_rate=0.04)
    bh = res["buy_and_hold"]
    assert bh.fills[0]["quantity"] % 1 != 0
    assert bh.metrics["cumulative_return"] > 1.0  # BTC rose ~150% in 2023
    payload = bh.to_json()
    assert payload["equity"][0] == ["2023-01-02T00:00:00", 100_000.0]
    assert len(payload["equity"]) == len(times) == bh.metrics["periods"] + 1
    firm = compute_metrics(np.linspace(1e5, 2e5, len(times)), periods_per_year=365)
    assert excess_return(firm, bh.metrics) == pytest.approx(
        1.0 - bh.metrics["cumulative_return"])


def test_decisions_before_data_and_on_the_same_bar(aapl: Bars) -> None:
    early = [np.datetime64("2022-06-01")]  # no bar has closed yet
    times = early + decisions(aapl, "2024-01-01")[:5]
    times = [*times[:3], times[2], *times[3:]]  # a repeated decision time
    bh = run({"AAPL": aapl}, times)["buy_and_hold"]
    assert bh.equity[0] == bh.equity[1] == 100_000.0
    assert len(bh.fills) == 1 and bh.fills[0]["as_of"] == str(times[1])
    with pytest.raises(ValueError):
        run({"AAPL": aapl}, times[::-1])

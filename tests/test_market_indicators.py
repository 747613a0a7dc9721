"""Indicators against the `ta` library and pandas on real AAPL data, and their causality."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import ta
from hypothesis import given, settings
from hypothesis import strategies as st

from flowkit.market import indicators
from flowkit.market.sources import SAMPLE_DIR

WARM_UP = 300  # recursive indicators (EMA, Wilder) forget their seed well before this


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return pd.read_csv(SAMPLE_DIR / "ohlcv" / "AAPL.csv")


@pytest.fixture(scope="module")
def ours(aapl: pd.DataFrame) -> dict[str, np.ndarray]:
    cols = (aapl[c].to_numpy(np.float64) for c in ("high", "low", "close", "volume"))
    return indicators.compute(*cols, periods_per_year=252)


def reference(df: pd.DataFrame) -> dict[str, pd.Series]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ta trips pandas deprecation warnings
        macd = ta.trend.MACD(df.close, window_slow=26, window_fast=12, window_sign=9)
        bb = ta.volatility.BollingerBands(df.close, window=20, window_dev=2)
        return {
            "rsi_14": ta.momentum.RSIIndicator(df.close, window=14).rsi(),
            "macd": macd.macd(), "macd_signal": macd.macd_signal(), "macd_hist": macd.macd_diff(),
            "sma_20": ta.trend.SMAIndicator(df.close, 20).sma_indicator(),
            "sma_50": ta.trend.SMAIndicator(df.close, 50).sma_indicator(),
            "sma_200": ta.trend.SMAIndicator(df.close, 200).sma_indicator(),
            "ema_12": ta.trend.EMAIndicator(df.close, 12).ema_indicator(),
            "ema_26": ta.trend.EMAIndicator(df.close, 26).ema_indicator(),
            "bb_upper": bb.bollinger_hband(), "bb_middle": bb.bollinger_mavg(), "bb_lower": bb.bollinger_lband(),
            "bb_pct_b": bb.bollinger_pband(),
            "atr_14": ta.volatility.AverageTrueRange(df.high, df.low, df.close, window=14).average_true_range(),
            # `ta` has none of these: pandas rolling windows are the reference.
            "volatility_20d": np.log(df.close).diff().rolling(20).std() * np.sqrt(252),
            "volume_ratio_20d": df.volume / df.volume.rolling(20).mean(),
            "high_52w": df.high.rolling(252).max(),
            "low_52w": df.low.rolling(252).min(),
            "range_52w_pct": (df.close - df.low.rolling(252).min())
            / (df.high.rolling(252).max() - df.low.rolling(252).min()) * 100,
        }


def test_reference_covers_every_indicator(aapl: pd.DataFrame) -> None:
    assert set(reference(aapl)) == set(indicators.NAMES)


@pytest.mark.parametrize("name", indicators.NAMES)
def test_matches_reference_after_warm_up(aapl: pd.DataFrame, ours: dict[str, np.ndarray], name: str) -> None:
    got, ref = ours[name][WARM_UP:], reference(aapl)[name].to_numpy(np.float64)[WARM_UP:]
    if name.startswith("macd"):  # crosses zero, so measure the error against the price level
        np.testing.assert_array_less(np.abs(got - ref), 1e-8 * aapl.close.to_numpy()[WARM_UP:])
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-7, atol=0)


@pytest.mark.parametrize(("name", "first"), [
    ("sma_20", 19), ("sma_200", 199), ("ema_12", 11), ("ema_26", 25), ("rsi_14", 14), ("atr_14", 13),
    ("bb_upper", 19), ("volatility_20d", 20), ("high_52w", 251), ("macd_signal", 33),
])
def test_nan_until_the_window_is_full(ours: dict[str, np.ndarray], name: str, first: int) -> None:
    valid = np.flatnonzero(~np.isnan(ours[name]))
    assert valid[0] == first and len(valid) == len(ours[name]) - first


def test_wilder_atr_is_exact_from_the_first_value(aapl: pd.DataFrame, ours: dict[str, np.ndarray]) -> None:
    ref = reference(aapl)["atr_14"].to_numpy()
    np.testing.assert_allclose(ours["atr_14"][13:], ref[13:], rtol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1000.0), min_size=2, max_size=400), st.integers(1, 30))
def test_rolling_extremes_match_naive_windows(values: list[float], n: int) -> None:
    x = np.array(values)
    expect_max = [max(values[i - n + 1:i + 1]) if i >= n - 1 else np.nan for i in range(len(values))]
    expect_min = [min(values[i - n + 1:i + 1]) if i >= n - 1 else np.nan for i in range(len(values))]
    np.testing.assert_array_equal(indicators.rolling_max(x, n), expect_max)
    np.testing.assert_array_equal(indicators.rolling_min(x, n), expect_min)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 1500), st.floats(0.2, 5.0))
def test_indicators_are_causal(aapl: pd.DataFrame, cut: int, factor: float) -> None:
    """Computed on bars[:cut] plus a rewritten future, every value before `cut` is bit-identical."""
    base = aapl.iloc[3000:4500][["high", "low", "close", "volume"]].to_numpy(np.float64)
    altered = base.copy()
    altered[cut:] *= factor
    full = indicators.compute(*base.T, periods_per_year=252)
    other = indicators.compute(*altered.T, periods_per_year=252)
    truncated = indicators.compute(*base[:cut].T, periods_per_year=252)
    for name in indicators.NAMES:
        np.testing.assert_array_equal(other[name][:cut], full[name][:cut], err_msg=name)
        np.testing.assert_array_equal(truncated[name], full[name][:cut], err_msg=name)

"""Technical indicators, numpy only. Every function is causal: the value at bar i uses bars <= i
only, so a series is computed once over its whole history and views slice it. Values are NaN
until the window is full."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NAMES = ("rsi_14", "macd", "macd_signal", "macd_hist", "sma_20", "sma_50", "sma_200", "ema_12",
         "ema_26", "bb_upper", "bb_middle", "bb_lower", "bb_pct_b", "atr_14", "volatility_20d",
         "volume_ratio_20d", "high_52w", "low_52w", "range_52w_pct")


def _ewm(x: np.ndarray, alpha: float, n: int) -> np.ndarray:
    """y = alpha*x + (1-alpha)*y[-1], seeded with the mean of the first n values (after any
    leading NaNs), as Wilder and TA-Lib do. A plain loop: numpy has no recursive filter."""
    out = np.full(len(x), np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if len(valid) == 0 or len(x) - valid[0] < n:
        return out
    s = int(valid[0]) + n
    y = float(np.mean(x[s - n:s]))
    out[s - 1] = y
    rest = []
    keep = 1.0 - alpha
    for v in x[s:].tolist():
        y = alpha * v + keep * y
        rest.append(y)
    out[s:] = rest
    return out


def ema(x: np.ndarray, n: int) -> np.ndarray:
    return _ewm(x, 2.0 / (n + 1), n)


def wilder(x: np.ndarray, n: int) -> np.ndarray:
    return _ewm(x, 1.0 / n, n)


def _rolling(x: np.ndarray, n: int, reduce: str, **kwargs: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = getattr(sliding_window_view(x, n), reduce)(axis=1, **kwargs)
    return out


def sma(x: np.ndarray, n: int) -> np.ndarray:
    return _rolling(x, n, "mean")


def rolling_std(x: np.ndarray, n: int, ddof: int = 0) -> np.ndarray:
    return _rolling(x, n, "std", ddof=ddof)


def _rolling_extreme(x: np.ndarray, n: int, ufunc: np.ufunc) -> np.ndarray:
    """Sliding max/min in O(len) (van Herk / Gil-Werman): windows of a year of hourly bars would
    cost O(len * n) with a sliding view. Each output only reads values inside its window."""
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    blocks = np.append(x, np.full(-len(x) % n, x[-1])).reshape(-1, n)
    head = ufunc.accumulate(blocks, axis=1).ravel()                    # block start .. i
    tail = ufunc.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()  # i .. block end
    out[n - 1:] = ufunc(tail[:len(x) - n + 1], head[n - 1:len(x)])
    return out


def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    return _rolling_extreme(x, n, np.maximum)


def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    return _rolling_extreme(x, n, np.minimum)


def pct_change(x: np.ndarray, k: int) -> np.ndarray:
    out = np.full(len(x), np.nan)
    out[k:] = (x[k:] / x[:-k] - 1.0) * 100.0
    return out


def rsi(close: np.ndarray, n: int = 14) -> np.ndarray:
    diff = np.diff(close, prepend=np.nan)
    up = wilder(np.where(diff > 0, diff, np.where(np.isnan(diff), np.nan, 0.0)), n)
    down = wilder(np.where(diff < 0, -diff, np.where(np.isnan(diff), np.nan, 0.0)), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(down == 0, 100.0, 100.0 - 100.0 / (1.0 + up / down))


def true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    prev = np.concatenate(([np.nan], close[:-1]))
    return np.fmax(high - low, np.fmax(np.abs(high - prev), np.abs(low - prev)))


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b != 0, a / b, np.nan)


def compute(high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray,
            periods_per_year: int) -> dict[str, np.ndarray]:
    """Every indicator in NAMES over the whole series. `periods_per_year` annualises the
    volatility and is the 52-week window in bars."""
    ema_12, ema_26 = ema(close, 12), ema(close, 26)
    macd = ema_12 - ema_26
    signal = ema(macd, 9)
    mid, sd = sma(close, 20), rolling_std(close, 20)
    upper, lower = mid + 2 * sd, mid - 2 * sd
    high_52w, low_52w = rolling_max(high, periods_per_year), rolling_min(low, periods_per_year)
    log_ret = np.diff(np.log(close), prepend=np.nan)
    return {
        "rsi_14": rsi(close, 14),
        "macd": macd,
        "macd_signal": signal,
        "macd_hist": macd - signal,
        "sma_20": mid,
        "sma_50": sma(close, 50),
        "sma_200": sma(close, 200),
        "ema_12": ema_12,
        "ema_26": ema_26,
        "bb_upper": upper,
        "bb_middle": mid,
        "bb_lower": lower,
        "bb_pct_b": _ratio(close - lower, upper - lower),
        "atr_14": wilder(true_range(high, low, close), 14),
        "volatility_20d": rolling_std(log_ret, 20, ddof=1) * np.sqrt(periods_per_year),
        "volume_ratio_20d": _ratio(volume, sma(volume, 20)),
        "high_52w": high_52w,
        "low_52w": low_52w,
        "range_52w_pct": _ratio(close - low_52w, high_52w - low_52w) * 100.0,
    }

"""Statistics for comparing firm variants across the cells of a sweep (numpy and the standard
library only, so a report needs no scipy).

- `summarize`: mean, standard error and a percentile-bootstrap 95% CI of a metric across cells.
- `paired`: the same for per-cell differences (a variant against buy-and-hold, or against another
  variant on the same symbols, window and seed), which removes what the cells share.
- `deflated_sharpe`: the probability that a Sharpe ratio is above zero once the best of
  `n_trials` variants is expected to look good by luck (Bailey & López de Prado, 2014).

Bootstraps use a fixed seed, so a report shows the same intervals every time it is written."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

EULER_GAMMA = 0.5772156649015329
BOOTSTRAP_SEED = 20140701       # fixed: the same cells always give the same interval
RESAMPLES = 4000
MIN_REPLICATES = 5              # fewer seeds or windows than this: say the conclusion is thin
_N = NormalDist()


@dataclass(frozen=True)
class Estimate:
    """A metric (or a paired difference) across cells; NaN where it cannot be computed."""

    n: int
    mean: float
    stderr: float
    low: float                  # the 95% bootstrap interval of the mean
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.n > 1 and (self.low > 0 or self.high < 0)


def _clean(values: Sequence[float | None]) -> np.ndarray:
    a = np.array([np.nan if v is None else v for v in values], dtype=float)
    return a[np.isfinite(a)]


def bootstrap_ci(values: Sequence[float], *, level: float = 0.95, resamples: int = RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample the cells with replacement
    `resamples` times and take the (1-level)/2 and (1+level)/2 quantiles of the means."""
    a = np.asarray(values, dtype=float)
    if len(a) == 0:
        return math.nan, math.nan
    if len(a) == 1:
        return float(a[0]), float(a[0])
    rng = np.random.default_rng(seed)
    means = a[rng.integers(0, len(a), size=(resamples, len(a)))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def summarize(values: Sequence[float | None]) -> Estimate:
    """Mean, standard error (sample sd / sqrt n) and bootstrap CI; missing values are left out."""
    a = _clean(values)
    if len(a) == 0:
        return Estimate(0, math.nan, math.nan, math.nan, math.nan)
    stderr = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan
    low, high = bootstrap_ci(a)
    return Estimate(len(a), float(a.mean()), stderr, low, high)


def paired(a: Sequence[float | None], b: Sequence[float | None]) -> Estimate:
    """The mean of a - b over the cells where both are known (same position = same cell)."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length: {len(a)} and {len(b)}")
    x = np.array([np.nan if v is None else v for v in a], dtype=float)
    y = np.array([np.nan if v is None else v for v in b], dtype=float)
    return summarize(list(x - y))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """E[max] of `n_trials` independent Sharpe estimates with zero true Sharpe and the given
    variance across trials (the False Strategy theorem; paper eq. for SR_0)."""
    if n_trials < 1:
        raise ValueError("n_trials must be at least 1")
    if n_trials == 1:
        return 0.0
    return math.sqrt(variance) * ((1.0 - EULER_GAMMA) * _N.inv_cdf(1.0 - 1.0 / n_trials)
                                  + EULER_GAMMA * _N.inv_cdf(1.0 - 1.0 / (n_trials * math.e)))


def probabilistic_sharpe(sharpe: float, benchmark: float, n_obs: int, skew: float = 0.0,
                         kurtosis: float = 3.0) -> float:
    """P(true Sharpe > benchmark) given an estimate from `n_obs` returns with that skewness and
    (non-excess) kurtosis; all Sharpe ratios per period, not annualised."""
    if n_obs < 2:
        return math.nan
    spread = 1.0 - skew * sharpe + (kurtosis - 1.0) / 4.0 * sharpe ** 2
    if spread <= 0:
        return math.nan
    return _N.cdf((sharpe - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(spread))


def deflated_sharpe(sharpe: float, n_obs: int, n_trials: int, trial_variance: float,
                    skew: float = 0.0, kurtosis: float = 3.0) -> float:
    """The deflated Sharpe ratio: the probabilistic Sharpe ratio against the Sharpe the best of
    `n_trials` would show by luck alone. Per-period Sharpe ratios and their variance."""
    return probabilistic_sharpe(sharpe, expected_max_sharpe(n_trials, trial_variance), n_obs,
                                skew, kurtosis)


@dataclass(frozen=True)
class SharpeTest:
    sharpe: float       # per period
    n_obs: int
    skew: float
    kurtosis: float
    deflated: float     # P(true Sharpe > 0 | n_trials tried)


def moments(returns: Sequence[float]) -> tuple[float, int, float, float]:
    """Per-period Sharpe (mean / sample sd), count, skewness and non-excess kurtosis."""
    r = _clean(returns)
    if len(r) < 3 or r.std() == 0:
        return math.nan, len(r), math.nan, math.nan
    z = (r - r.mean()) / r.std()
    return float(r.mean() / r.std(ddof=1)), len(r), float((z ** 3).mean()), float((z ** 4).mean())


def deflate(series: dict[str, Sequence[float]]) -> dict[str, SharpeTest]:
    """Deflated Sharpe ratio of each variant's per-period returns (its cells' returns pooled),
    with every variant in `series` counted as a trial and their Sharpe spread as the variance."""
    stats = {name: moments(r) for name, r in series.items()}
    sharpes = [s[0] for s in stats.values() if math.isfinite(s[0])]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else 0.0
    out = {}
    for name, (sr, n, skew, kurt) in stats.items():
        dsr = deflated_sharpe(sr, n, len(series), variance, skew, kurt) \
            if math.isfinite(sr) else math.nan
        out[name] = SharpeTest(sr, n, skew, kurt, dsr)
    return out


def thin_evidence(seeds: int, windows: int) -> str | None:
    """The warning a comparison owes its reader when it rests on few seeds and few windows."""
    if max(seeds, windows) >= MIN_REPLICATES:
        return None
    return (f"conclusions rest on {seeds} seed{'s' * (seeds != 1)} and {windows} "
            f"window{'s' * (windows != 1)} (fewer than {MIN_REPLICATES} of either): treat "
            f"differences as anecdotes")

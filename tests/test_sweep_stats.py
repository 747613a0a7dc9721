"""Sweep statistics against reference computations: the paper's worked example for the
deflated Sharpe ratio, a Monte Carlo of the expected maximum Sharpe, scipy's bootstrap and
moments."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from flowkit.sweep import stats


def test_deflated_sharpe_matches_the_papers_worked_example():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", worked example: annualised
    # SR 2.5 over 5 years of daily returns (T = 1250), N = 100 trials whose annualised Sharpe
    # ratios have variance 0.5, returns skewed -3 with kurtosis 10. Published: SR_0 ≈ 0.1132
    # (per day) and DSR ≈ 0.9004.
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5)
    dsr = stats.deflated_sharpe(2.5 / math.sqrt(250), 1250, 100, 0.5 / 250, skew=-3, kurtosis=10)
    assert dsr == pytest.approx(0.9004, abs=5e-4)


@pytest.mark.parametrize("n_trials,tolerance", [(10, 0.05), (100, 0.02), (1000, 0.015)])
def test_expected_max_sharpe_agrees_with_a_monte_carlo_of_independent_trials(n_trials, tolerance):
    rng = np.random.default_rng(7)
    sd = 0.05
    maxima = rng.normal(0.0, sd, size=(4000, n_trials)).max(axis=1)
    # The closed form is an approximation that tightens as N grows (≈3.5% high at N = 10).
    assert stats.expected_max_sharpe(n_trials, sd ** 2) == pytest.approx(maxima.mean(), rel=tolerance)


def test_one_trial_is_not_deflated_and_more_trials_deflate_more():
    assert stats.expected_max_sharpe(1, 0.01) == 0.0
    sr = 0.1
    one = stats.deflated_sharpe(sr, 500, 1, 0.001)
    assert one == pytest.approx(stats.probabilistic_sharpe(sr, 0.0, 500))
    assert one > stats.deflated_sharpe(sr, 500, 10, 0.001) > stats.deflated_sharpe(sr, 500, 200, 0.001)


def test_probabilistic_sharpe_of_normal_returns_is_the_normal_cdf():
    # Normal returns: skew 0, kurtosis 3 → z = SR sqrt(T-1) / sqrt(1 + SR²/2).
    sr, t = 0.08, 400
    z = sr * math.sqrt(t - 1) / math.sqrt(1 + sr ** 2 / 2)
    assert stats.probabilistic_sharpe(sr, 0.0, t) == pytest.approx(sps.norm.cdf(z), abs=1e-12)


def test_moments_match_scipy():
    r = np.random.default_rng(3).standard_t(4, size=700) * 0.01 + 0.0004
    sr, n, skew, kurt = stats.moments(list(r))
    assert n == 700
    assert sr == pytest.approx(r.mean() / r.std(ddof=1))
    assert skew == pytest.approx(sps.skew(r))
    assert kurt == pytest.approx(sps.kurtosis(r, fisher=False))


def test_bootstrap_interval_agrees_with_scipy_and_is_reproducible():
    x = np.random.default_rng(11).lognormal(0.0, 0.6, size=40)
    ours = stats.bootstrap_ci(list(x), resamples=20000)
    ref = sps.bootstrap((x,), np.mean, n_resamples=20000, method="percentile",
                        confidence_level=0.95, random_state=np.random.default_rng(5)).confidence_interval
    width = ref.high - ref.low
    assert ours[0] == pytest.approx(ref.low, abs=0.03 * width)
    assert ours[1] == pytest.approx(ref.high, abs=0.03 * width)
    assert stats.bootstrap_ci(list(x)) == stats.bootstrap_ci(list(x))  # fixed seed
    # The same computation by hand, with the documented seed.
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    means = x[rng.integers(0, len(x), size=(stats.RESAMPLES, len(x)))].mean(axis=1)
    assert stats.bootstrap_ci(list(x)) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_summarize_drops_missing_values_and_uses_the_sample_standard_error():
    est = stats.summarize([0.1, None, 0.3, float("nan"), 0.2])
    assert est.n == 3
    assert est.mean == pytest.approx(0.2)
    assert est.stderr == pytest.approx(np.std([0.1, 0.3, 0.2], ddof=1) / math.sqrt(3))
    assert est.low <= est.mean <= est.high
    assert stats.summarize([]).n == 0 and math.isnan(stats.summarize([]).mean)


def test_paired_difference_removes_what_the_cells_share():
    # Two variants whose results differ by a constant 0.01 on cells that vary wildly: the paired
    # interval is tight and excludes zero; the unpaired means' intervals overlap.
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 0.2, size=30)
    a, b = base + 0.01 + rng.normal(0, 0.001, 30), base
    diff = stats.paired(list(a), list(b))
    assert diff.mean == pytest.approx(0.01, abs=0.001)
    assert diff.excludes_zero
    sa, sb = stats.summarize(list(a)), stats.summarize(list(b))
    assert sa.low < sb.high and sb.low < sa.high
    # A cell missing on either side is left out of the pairing.
    assert stats.paired([1.0, None, 3.0], [0.5, 2.0, None]).n == 1
    with pytest.raises(ValueError):
        stats.paired([1.0], [1.0, 2.0])


def test_deflate_counts_every_variant_as_a_trial():
    rng = np.random.default_rng(9)
    series = {f"v{i}": list(rng.normal(0.0005 * i, 0.01, size=500)) for i in range(5)}
    tests = stats.deflate(series)
    assert set(tests) == set(series)
    sharpes = [tests[k].sharpe for k in series]
    variance = np.var(sharpes, ddof=1)
    best = max(series, key=lambda k: tests[k].sharpe)
    t = tests[best]
    assert t.deflated == pytest.approx(stats.deflated_sharpe(t.sharpe, 500, 5, variance, t.skew, t.kurtosis))
    assert t.deflated < stats.probabilistic_sharpe(t.sharpe, 0.0, 500, t.skew, t.kurtosis)
    assert math.isnan(stats.deflate({"flat": [0.0] * 10})["flat"].deflated)


@pytest.mark.parametrize("seeds,windows,warned", [(1, 1, True), (3, 4, True), (1, 5, False),
                                                  (5, 1, False), (10, 10, False)])
def test_thin_evidence_warning(seeds, windows, warned):
    message = stats.thin_evidence(seeds, windows)
    assert (message is not None) == warned
    if warned:
        assert "fewer than 5" in message


def test_cells_side_by_side_count_once_in_the_deflated_sharpe():
    """Five symbols over the same dates are one observation a date for the variant, not five:
    five copies of a cell give the deflated Sharpe ratio one copy gives, over as many days."""
    from flowkit.sweep.compare import compare

    days = [f"2024-02-{d:02}" for d in range(1, 29)]
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.002, 0.01, len(days)), rng.normal(0.0, 0.01, len(days))

    def record(variant: str, symbol: str, returns: np.ndarray) -> dict:
        return {"cell": {"id": variant + symbol, "variant": variant, "symbols": [symbol],
                         "start": days[0], "end": days[-1], "seed": 0},
                "status": "completed", "metrics": {"sharpe": 1.0}, "buy_and_hold": {"sharpe": 0.5},
                "returns": [[t, float(r)] for t, r in zip(days, returns)]}

    one = compare([record("a", "AAPL", a), record("b", "AAPL", b)], ["sharpe"])
    five = compare([record(v, s, r) for s in ("AAPL", "MSFT", "GOOGL", "AMZN", "NVDA")
                    for v, r in (("a", a), ("b", b))], ["sharpe"])
    for x, y in zip(one.variants, five.variants, strict=True):
        assert y.sharpe_test.n_obs == x.sharpe_test.n_obs == len(days)
        assert y.sharpe_test.deflated == pytest.approx(x.sharpe_test.deflated)

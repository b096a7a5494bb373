"""Order-statistic bounds and the budget decision, against exact binomial sums."""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import accumulate

import numpy as np
import pytest

from pytest_infercheck.core.jsonsafe import json_safe
from pytest_infercheck.measure.budget import Decision, decide_budget
from pytest_infercheck.config.options import parse_budget
from pytest_infercheck.measure.stats import (binomial_cdf, interval, mean_interval, min_samples_for_claim, normal_quantile,
                                     order_statistic_ranks, percentile_interval, quantile_side_confidence)


def exact_cdf(n: int, p: Fraction) -> list[Fraction]:
    """P(X <= k) for k = 0..n, exactly: running sums of C(n, k) a^k (b - a)^(n - k) over b^n for p = a/b,
    in integers (summing each prefix of Fraction terms again took 6 s at n = 700)."""
    a, b = p.numerator, p.denominator
    return [Fraction(total, b**n) for total in accumulate(math.comb(n, k) * a**k * (b - a) ** (n - k)
                                                          for k in range(n + 1))]


@pytest.mark.parametrize("n,p", [(1, Fraction(1, 2)), (20, Fraction(9, 10)), (50, Fraction(99, 100)), (37, Fraction(1, 3))])
def test_binomial_cdf_matches_exact_sums(n: int, p: Fraction) -> None:
    assert binomial_cdf(n, float(p)) == pytest.approx([float(v) for v in exact_cdf(n, p)], abs=1e-12)


def test_binomial_cdf_large_n_ends_at_one_and_is_monotone() -> None:
    cdf = binomial_cdf(100_000, 0.99)
    assert cdf[-1] == pytest.approx(1.0)
    assert np.all(np.diff(cdf) >= 0)


def test_binomial_cdf_against_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    for n, p in ((700, 0.99), (5000, 0.5), (64, 0.9)):
        assert binomial_cdf(n, p) == pytest.approx(stats.binom.cdf(np.arange(n + 1), n, p), abs=1e-10)


@pytest.mark.parametrize("n,q,c", [(100, 0.5, 0.95), (700, 0.99, 0.95), (300, 0.9, 0.99), (64, 0.9, 0.95)])
def test_ranks_are_the_tightest_with_the_confidence(n: int, q: float, c: float) -> None:
    cdf = exact_cdf(n, Fraction(q).limit_denominator(1000))
    low, high = order_statistic_ranks(n, q, c)
    assert high is not None and low is not None
    assert cdf[high] >= c and (high == 0 or cdf[high - 1] < c)  # P(X_(high+1) >= quantile) >= c, one rank less not
    assert 1 - cdf[low] >= c and 1 - cdf[low + 1] < c  # P(X_(low+1) <= quantile) >= c, one rank more not


def test_no_bound_where_the_samples_cannot_give_one() -> None:
    # 10 samples cannot bound a p99 from above: even the largest is above it with probability 1 - 0.99**10
    assert order_statistic_ranks(10, 0.99, 0.95) == (None, None) or order_statistic_ranks(10, 0.99, 0.95)[1] is None
    verdict = decide_budget([1.0] * 10, parse_budget("p99:30ms"))
    assert verdict.decision is Decision.UNDECIDED and verdict.upper_ms is None
    assert verdict.passed and verdict.estimate_within  # not decided over, and the estimate is within
    assert "undecided at n=10" in verdict.describe()


def test_mlperf_minimum_samples() -> None:
    # MLPerf LoadGen's early stopping at 99% confidence, one query over the bound tolerated
    assert min_samples_for_claim(0.90, 0.99, overs=1) == 64
    assert min_samples_for_claim(0.99, 0.99, overs=1) == 662
    assert min_samples_for_claim(0.90, 0.95) == 29  # 0.9**29 < 0.05 <= 0.9**28


def test_upper_bound_covers_the_true_quantile() -> None:
    rng = np.random.default_rng(1)
    true_p90 = math.log(10.0)  # exponential(1)
    covered = sum(percentile_interval(rng.exponential(size=200), "p90").upper >= true_p90 for _ in range(400))
    lower_ok = sum(percentile_interval(rng.exponential(size=200), "p90").lower <= true_p90 for _ in range(400))
    assert covered / 400 >= 0.92 and lower_ok / 400 >= 0.92  # 95% nominal; exact coverage is at least that


def test_normal_quantile_and_mean_interval() -> None:
    assert normal_quantile(0.975) == pytest.approx(1.959963984540054, abs=1e-9)
    assert normal_quantile(0.5) == pytest.approx(0.0, abs=1e-12)
    samples = np.random.default_rng(2).normal(10.0, 2.0, size=400)
    bounds = mean_interval(samples, 0.95)
    margin = 1.6448536269514722 * samples.std(ddof=1) / 20.0
    assert bounds.lower == pytest.approx(samples.mean() - margin) and bounds.upper == pytest.approx(samples.mean() + margin)
    with pytest.raises(ValueError, match="unknown statistic 'p95'"):
        interval(samples, "p95")


def test_decisions_and_messages() -> None:
    samples = np.random.default_rng(0).gamma(4.0, 5.0, size=700)
    p99 = float(np.percentile(samples, 99))
    assert 40 < p99 < 60
    passed = decide_budget(samples, parse_budget("p99:80ms"))
    assert passed.decision is Decision.PASS and passed.passed and passed.upper_ms <= passed.limit_ms
    assert passed.describe().startswith("p99 <= 80 ms with 95% confidence (n=700")
    failed = decide_budget(samples, parse_budget("p99:30ms"))
    assert failed.decision is Decision.FAIL and not failed.passed and failed.lower_ms > failed.limit_ms
    assert failed.describe().startswith("p99 > 30 ms with 95% confidence (n=700")
    close = decide_budget(samples, parse_budget(f"p99:{p99 * 1.01:.3f}ms"))
    assert close.decision is Decision.UNDECIDED and close.passed
    assert 0.0 < close.achieved_confidence < 0.95  # near the line: far from sure either way
    assert "undecided at n=700: point estimate p99" in close.describe()
    assert json_safe(close)["decision"] == "undecided" and close.passed is True


def test_side_confidence_is_exact() -> None:
    samples = list(range(1, 101))  # 100 samples; 95 of them <= 95.5
    within, over = quantile_side_confidence(samples, 0.9, 95.5)
    cdf = exact_cdf(100, Fraction(9, 10))
    assert within == pytest.approx(float(cdf[94])) and over == pytest.approx(float(1 - cdf[95]))


def test_mean_budget() -> None:
    samples = np.random.default_rng(3).normal(10.0, 1.0, size=500)
    assert decide_budget(samples, parse_budget("mean:11ms")).decision is Decision.PASS
    assert decide_budget(samples, parse_budget("mean:9ms")).decision is Decision.FAIL
    with pytest.raises(ValueError, match="confidence"):
        decide_budget(samples, parse_budget("mean:9ms"), confidence=1.5)


def test_a_percentile_too_few_samples_can_bound_says_how_many_it_takes() -> None:
    """--infer-max-iters=4 --infer-budget=p99:50ms on a 0.06 ms engine read "point estimate p99 0.05852 ms <= 50
    ms (that side holds with 3.9% confidence)": as doubt about a figure 850x inside the budget (a newcomer
    trial). A 95% bound on a p99 needs 299 samples; the message says that and which options give more."""
    assert (min_samples_for_claim(0.99, 0.95), min_samples_for_claim(0.90, 0.95)) == (299, 29)
    few = decide_budget([0.058, 0.059, 0.057, 0.06], parse_budget("p99:50ms"))
    assert few.decision is Decision.UNDECIDED
    assert few.describe() == ("undecided at n=4: a 95% bound on the p99 needs at least 299 samples; point estimate "
                              "p99 0.05997 ms <= 50 ms; run more iterations (--infer-max-iters, --infer-min-time) "
                              "or budget a lower percentile")

"""Is the engine slower or less accurate than its baseline?  Statistics only: no pytest, no files.

Latency: two sample sets, the baseline's and this run's.  A slowdown fails only when it is both
*significant* (a one-sided Mann-Whitney U test, so no assumption about the shape of the latency
distribution, which is skewed and has outliers) and *larger than allowed* (the ratio of medians
exceeds ``1 + max_regression``).  The significance test alone would flag a 0.3% shift once
thousands of samples are taken; the effect size alone would flag one noisy run.  A bootstrap
confidence interval of the median ratio is reported beside it so a reader sees how sure the
figure is.  Improvements are judged the same way, mirrored.

Accuracy: an error figure (max and mean absolute error per output) fails when it grew by more
than ``factor`` times the baseline's *and* is above an absolute ``floor``, so that 1e-7 -> 3e-7
(noise at the bottom of float32) is not a regression while 1e-4 -> 5e-4 is.

docs/gate.md explains the choices and the parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

if TYPE_CHECKING:  # numpy is imported where it computes: results.py reads the dataclasses at plugin import
    import numpy as np

ALPHA = 0.01  # one-sided significance level of the Mann-Whitney test
CONFIDENCE = 1 - 2 * ALPHA  # two-sided bootstrap interval whose one-sided tails match ALPHA: 98%
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same samples always give the same interval and verdict
MIN_SAMPLES = 5  # fewer than this on either side: no latency verdict
ACCURACY_METRICS = ("max_abs", "mean_abs")


@dataclass(frozen=True)
class MannWhitney:
    """U of the first sample set, and one-sided p-values for "first is slower" / "first is faster"."""

    u: float
    p_greater: float
    p_less: float


def average_ranks(values: "np.ndarray") -> tuple["np.ndarray", "np.ndarray"]:
    """Ranks from 1 with ties given the mean of their positions, and the sizes of the tie groups."""
    import numpy as np

    unique, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    group_rank = ends - (counts - 1) / 2.0  # mean of positions end-count+1 .. end
    return group_rank[inverse], counts


def mann_whitney_u(first: "Sequence[float] | np.ndarray", second: "Sequence[float] | np.ndarray") -> MannWhitney:
    """Mann-Whitney U with the normal approximation, tie correction and continuity correction.

    The normal approximation is accurate from about 8 samples a side; the gate needs far more
    than that for a useful verdict anyway (and refuses below ``MIN_SAMPLES``).
    """
    import numpy as np

    a = np.asarray(first, dtype=np.float64)
    b = np.asarray(second, dtype=np.float64)
    n1, n2 = a.size, b.size
    ranks, ties = average_ranks(np.concatenate([a, b]))
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    total = n1 + n2
    tie_term = float((ties.astype(np.float64) ** 3 - ties).sum()) / (total * (total - 1)) if total > 1 else 0.0
    variance = n1 * n2 / 12.0 * ((total + 1) - tie_term)
    if variance <= 0:  # every value equal: no evidence either way
        return MannWhitney(u, 1.0, 1.0)
    mean, sd = n1 * n2 / 2.0, math.sqrt(variance)
    z_greater = (u - mean - 0.5) / sd
    z_less = (u - mean + 0.5) / sd
    return MannWhitney(u, _normal_sf(z_greater), _normal_sf(-z_less))


def _normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def median_ratio_interval(current: "Sequence[float] | np.ndarray", baseline: "Sequence[float] | np.ndarray", *, confidence: float = CONFIDENCE,
                          resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile bootstrap interval of median(current) / median(baseline), resampling each side."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = np.asarray(current, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    medians_a = np.median(a[rng.integers(0, a.size, size=(resamples, a.size))], axis=1)
    medians_b = np.median(b[rng.integers(0, b.size, size=(resamples, b.size))], axis=1)
    ratios = medians_a / medians_b
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class LatencyComparison:
    """This run's latency against the baseline's, and the verdict."""

    verdict: str  # regression | improvement | within (the allowance, or not significant) | insufficient
    baseline_p50_ms: float
    current_p50_ms: float
    ratio: float  # median(current) / median(baseline)
    ci_low: float
    ci_high: float
    p_slower: float
    p_faster: float
    n_current: int
    n_baseline: int
    max_regression: float
    alpha: float = ALPHA

    @property
    def change(self) -> float:
        return self.ratio - 1.0

    @property
    def undecided(self) -> bool:
        """The figures cannot tell a regression from noise (too few samples, or noisier than allowed)."""
        return self.verdict in ("insufficient", "undecided")

    def describe(self) -> str:
        head = f"p50 {self.baseline_p50_ms:.4g} ms -> {self.current_p50_ms:.4g} ms"
        if self.verdict == "insufficient":
            return f"{head}: too few samples for a verdict ({self.n_baseline} vs {self.n_current}, need {MIN_SAMPLES})"
        p_value = self.p_slower if self.change >= 0 else self.p_faster
        return (f"{head} ({self.change:+.1%}, {CONFIDENCE:.0%} CI {self.ci_low - 1:+.1%}..{self.ci_high - 1:+.1%}; "
                f"allowed +{self.max_regression:.1%}; Mann-Whitney p={p_value:.2g}, "
                f"{self.n_baseline} vs {self.n_current} samples)")

def compare_latency(current: Sequence[float], baseline: Sequence[float], *, max_regression: float,
                    alpha: float = ALPHA) -> LatencyComparison:
    """Regression when significantly slower *and* the median ratio exceeds ``1 + max_regression``.

    Improvement mirrors it: significantly faster and the ratio below ``1 - max_regression``.
    """
    import numpy as np

    cur = np.asarray(current, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    cur_p50 = float(np.median(cur)) if cur.size else math.nan
    base_p50 = float(np.median(base)) if base.size else math.nan
    if cur.size < MIN_SAMPLES or base.size < MIN_SAMPLES or not base_p50 > 0:
        return LatencyComparison("insufficient", base_p50, cur_p50, math.nan, math.nan, math.nan, 1.0, 1.0,
                                 int(cur.size), int(base.size), max_regression, alpha)
    ratio = cur_p50 / base_p50
    test = mann_whitney_u(cur, base)
    low, high = median_ratio_interval(cur, base)
    if test.p_greater < alpha and ratio > 1 + max_regression:
        verdict = "regression"
    elif test.p_less < alpha and ratio < 1 - max_regression:
        verdict = "improvement"
    else:
        verdict = "within"
    return LatencyComparison(verdict, base_p50, cur_p50, ratio, low, high, test.p_greater, test.p_less,
                             int(cur.size), int(base.size), max_regression, alpha)


@dataclass(frozen=True)
class AccuracyChange:
    """One error figure of one output, before and after."""

    output: str
    metric: str
    baseline: float
    current: float
    regressed: bool
    factor: float
    floor: float

    def describe(self) -> str:
        growth = f"x{self.current / self.baseline:.3g}" if self.baseline > 0 else "from zero"
        return (f"{self.output} {self.metric} {self.baseline:.3g} -> {self.current:.3g} ({growth}; "
                f"allowed x{self.factor:g} above a floor of {self.floor:g})")

def is_accuracy_regression(baseline: float, current: float, *, factor: float, floor: float) -> bool:
    """Worse than ``factor`` times the baseline and above the absolute floor (NaN/Inf always counts)."""
    if not math.isfinite(current):
        return math.isfinite(baseline)
    return current > factor * baseline and current > floor


def compare_accuracy(current: Mapping[str, Mapping[str, Optional[float]]],
                     baseline: Mapping[str, Mapping[str, Optional[float]]], *,
                     factor: float, floor: float) -> list[AccuracyChange]:
    """Every error figure present on both sides, per output: ``{output: {metric: value}}``."""
    changes = []
    for output, figures in current.items():
        before = baseline.get(output)
        if before is None:
            continue
        for metric in ACCURACY_METRICS:
            old, new = before.get(metric), figures.get(metric)
            if old is None or new is None:
                continue
            changes.append(AccuracyChange(output, metric, float(old), float(new),
                                          is_accuracy_regression(float(old), float(new), factor=factor, floor=floor),
                                          factor, floor))
    return changes

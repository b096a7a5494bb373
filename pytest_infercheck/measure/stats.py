"""Percentiles of latency samples and how sure they are: distribution-free, numpy only.

A percentile's confidence bounds are order statistics.  Of ``n`` independent samples, the number
at or below the true ``q``-quantile is Binomial(n, q); so the ``k``-th smallest sample (1-based)
is at or above the quantile with probability ``P(Binomial(n, q) <= k - 1)``, whatever the shape of
the distribution (continuous, iid samples assumed).  The upper bound at confidence ``c`` is the
smallest such ``k`` whose probability reaches ``c``; the lower bound mirrors it.  This is the
argument behind MLPerf LoadGen's early-stopping rule (docs/latency.md).

The mean's interval is the normal (central limit) one, ``mean +- z * sd / sqrt(n)``: approximate
for skewed latency at small ``n``; the budget decision therefore prefers percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

if TYPE_CHECKING:  # numpy is imported where it computes: results.py reads budget verdicts at plugin import
    import numpy as np

# The percentiles the plugin computes, reports and accepts in a budget: the one table of them.
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


def binomial_cdf(n: int, p: float) -> "np.ndarray":
    """``cdf[i] = P(Binomial(n, p) <= i)`` for i = 0..n, summed from log-space pmf terms."""
    import numpy as np

    if n < 0 or not 0.0 <= p <= 1.0:
        raise ValueError(f"binomial_cdf needs n >= 0 and 0 <= p <= 1, got n={n}, p={p}")
    if p in (0.0, 1.0):
        cdf = np.ones(n + 1) if p == 0.0 else np.zeros(n + 1)
        cdf[-1] = 1.0
        return cdf
    k = np.arange(n + 1, dtype=np.float64)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1, dtype=np.float64)))])
    log_choose = log_factorial[n] - log_factorial - log_factorial[::-1]
    log_pmf = log_choose + k * math.log(p) + (n - k) * math.log1p(-p)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


@dataclass(frozen=True)
class Interval:
    """A statistic's point estimate and one-sided bounds, each at ``confidence`` (None: no bound at this n)."""

    statistic: str
    estimate: float
    lower: Optional[float]
    upper: Optional[float]
    confidence: float
    n: int

    def relative_half_width(self) -> float:
        """Largest relative distance from the estimate to a bound; inf while a bound is missing."""
        if self.lower is None or self.upper is None or not self.estimate > 0:
            return math.inf
        return max(self.upper / self.estimate - 1.0, 1.0 - self.lower / self.estimate)


def order_statistic_ranks(n: int, q: float, confidence: float) -> tuple[Optional[int], Optional[int]]:
    """0-based ranks in the sorted samples of the lower and upper ``confidence`` bounds of the q-quantile."""
    import numpy as np

    if n == 0:
        return None, None
    cdf = binomial_cdf(n, q)
    upper = int(np.searchsorted(cdf, confidence, side="left"))  # smallest i with P(B <= i) >= c
    below = np.nonzero(cdf[:n] <= 1.0 - confidence)[0]  # P(B >= i + 1) >= c
    return (int(below[-1]) if below.size else None), (upper if upper < n else None)


def percentile_interval(samples_ms: Sequence[float], statistic: str, confidence: float = 0.95) -> Interval:
    """Point estimate (numpy's linear interpolation, as the reports use) and order-statistic bounds."""
    import numpy as np

    q = PERCENTILES[statistic]
    values = np.sort(np.asarray(samples_ms, dtype=np.float64))
    n = int(values.size)
    estimate = float(np.percentile(values, q * 100)) if n else math.nan
    low, high = order_statistic_ranks(n, q, confidence)
    return Interval(statistic, estimate, None if low is None else float(values[low]),
                    None if high is None else float(values[high]), confidence, n)


def normal_quantile(p: float) -> float:
    """z with P(Z <= z) = p, by bisection on erfc (no scipy): accurate to 1e-12."""
    low, high = -40.0, 40.0
    for _ in range(200):
        mid = (low + high) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < p:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def mean_interval(samples_ms: Sequence[float], confidence: float = 0.95) -> Interval:
    """One-sided normal-approximation bounds of the mean: ``mean -+ z_c * sd / sqrt(n)``."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    n = int(values.size)
    if n < 2:
        return Interval("mean", float(values.mean()) if n else math.nan, None, None, confidence, n)
    mean = float(values.mean())
    margin = normal_quantile(confidence) * float(values.std(ddof=1)) / math.sqrt(n)
    return Interval("mean", mean, mean - margin, mean + margin, confidence, n)


def interval(samples_ms: Sequence[float], statistic: str, confidence: float = 0.95) -> Interval:
    if statistic == "mean":
        return mean_interval(samples_ms, confidence)
    if statistic not in PERCENTILES:
        raise ValueError(f"unknown statistic {statistic!r}; known: {', '.join([*PERCENTILES, 'mean'])}")
    return percentile_interval(samples_ms, statistic, confidence)


def quantile_side_confidence(samples_ms: Sequence[float], q: float, limit: float) -> tuple[float, float]:
    """Confidence that the q-quantile is <= limit, and that it is > limit (exact, order statistics).

    With m samples at or below the limit, the m-th smallest is an upper bound of the quantile at
    confidence ``P(Binomial(n, q) <= m - 1)`` and the (m+1)-th a lower bound at ``P(Binomial(n, q) >= m + 1)``.
    """
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    n = int(values.size)
    m = int(np.count_nonzero(values <= limit))
    cdf = binomial_cdf(n, q)
    within = float(cdf[m - 1]) if m else 0.0
    over = float(1.0 - cdf[m]) if m < n else 0.0
    return within, over


def min_samples_for_claim(q: float, confidence: float, overs: int = 0) -> int:
    """Fewest samples for which "q-quantile <= the largest-but-``overs`` sample" holds at ``confidence``.

    With ``overs = 1`` and 99% confidence this is MLPerf LoadGen's early-stopping minimum
    (64 samples for p90, 662 for p99): one sample over the latency bound is tolerated.
    """
    n = overs + 1
    while binomial_cdf(n, q)[n - 1 - overs] < confidence:
        n += 1
    return n


def log_spread(values: Sequence[float]) -> Optional[float]:
    """The sample standard deviation of ln(values), the spread of a ratio-scale figure (None for fewer
    than two positive values): the gate's run-to-run noise and the machine probe's own both use it."""
    logs = [math.log(v) for v in values if v > 0 and math.isfinite(v)]
    if len(logs) < 2:
        return None
    mean = sum(logs) / len(logs)
    return math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))


BLOCKS = 5  # consecutive blocks whose medians show drift within a run
MIN_PER_BLOCK = 4


def block_medians(samples_ms: "Sequence[float] | np.ndarray") -> list[float]:
    """Medians of BLOCKS consecutive blocks of the samples in time order ([] when too few samples): the
    within-run part of the gate's noise (regression.RunNoise), for wall and kernel time alike."""
    import numpy as np

    values = np.asarray(samples_ms, dtype=np.float64)
    if values.size < BLOCKS * MIN_PER_BLOCK:
        return []
    return [float(np.median(block)) for block in np.array_split(values, BLOCKS)]

"""Is a latency budget met, and how sure is that?  A pure function of the samples.

Pass when the statistic's upper confidence bound is within the budget, fail when its lower bound
is over it; in between the samples do not decide it yet (the timer keeps sampling, see
timing.StoppingRule).  When sampling must stop undecided, the verdict is undecided (not a failure, and
listed as undecided in every report) and says which side the point estimate is on and at what
confidence that side holds.  Method and reference: docs/latency.md.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional, Sequence

from ..core import defaults
from .stats import PERCENTILES, interval, min_samples_for_claim, quantile_side_confidence


@dataclass(frozen=True)
class Budget:
    """A latency budget: ``statistic`` of the samples must stay at or under ``limit_ms``."""

    statistic: str
    limit_ms: float

    def __str__(self) -> str:
        return f"{self.statistic}:{self.limit_ms:g}ms"



class Decision(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    UNDECIDED = "undecided"


@dataclass(frozen=True)
class BudgetVerdict:
    """The budget's statistic against its limit: decision, estimate, one-sided bounds, n, confidence."""

    statistic: str
    limit_ms: float
    decision: Decision
    estimate_ms: float
    lower_ms: Optional[float]  # the statistic is above this with `confidence` (None: no bound at this n)
    upper_ms: Optional[float]  # the statistic is at or below this with `confidence`
    n: int
    confidence: float
    # Undecided only: confidence that the side the point estimate is on holds (exact for percentiles).
    achieved_confidence: Optional[float] = None

    @property
    def undecided(self) -> bool:
        """Sampling stopped before the bounds fell on one side: neither a pass nor a failure (the point estimate's
        side is said, and --infer-baseline-strict fails it)."""
        return self.decision is Decision.UNDECIDED

    @property
    def passed(self) -> bool:
        """Not decided over the budget: a decided pass, or undecided on either side of it.  Undecided is never a
        failure (nor a silent pass: it is listed as undecided in every report), whichever side the point estimate
        is on: a p99 at 61% confidence over its budget is a coin toss, not a slowdown.  --infer-baseline-strict
        fails it (judge/verdict.undecided_figures)."""
        return self.decision is not Decision.FAIL

    @property
    def estimate_within(self) -> bool:
        """The point estimate's side of the budget (what an undecided verdict says it leans to)."""
        return self.estimate_ms <= self.limit_ms

    def describe(self) -> str:
        name, limit = self.statistic, f"{self.limit_ms:g} ms"
        if self.decision is Decision.PASS:
            return f"{name} <= {limit} with {self.confidence:.0%} confidence (n={self.n}; estimate {self.estimate_ms:.4g} ms)"
        if self.decision is Decision.FAIL:
            return (f"{name} > {limit} with {self.confidence:.0%} confidence (n={self.n}; estimate "
                    f"{self.estimate_ms:.4g} ms, over by {self.estimate_ms / self.limit_ms - 1:.1%})")
        side = "<=" if self.estimate_within else ">"
        needed = (min_samples_for_claim(PERCENTILES[self.statistic], self.confidence)
                  if self.statistic in PERCENTILES else None)
        if needed is not None and self.n < needed and self.upper_ms is None and self.estimate_within:
            # Too few samples to bound this percentile at all: the figure that helps is how many it takes
            # (a p99 at 95% needs 299), not the side's confidence, which reads as doubt about a point
            # estimate far inside the budget.
            return (f"undecided at n={self.n}: a {self.confidence:.0%} bound on the {name} needs at least {needed} "
                    f"samples; point estimate {name} {self.estimate_ms:.4g} ms {side} {limit}; run more iterations "
                    "(--infer-max-iters, --infer-min-time) or budget a lower percentile")
        sure = f" (that side holds with {self.achieved_confidence:.1%} confidence)" if self.achieved_confidence else ""
        return (f"undecided at n={self.n}: point estimate {name} {self.estimate_ms:.4g} ms {side} {limit}{sure}; "
                f"one-sided {self.confidence:.0%} bounds {_fmt(self.lower_ms)}..{_fmt(self.upper_ms)} ms")


def decide_budget(samples_ms: Sequence[float], budget: Budget, confidence: float = defaults.CONFIDENCE) -> BudgetVerdict:
    """PASS if the upper bound is within the limit, FAIL if the lower bound is over it, else UNDECIDED."""
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence {confidence!r} must be between 0.5 and 1 (e.g. 0.95)")
    bounds = interval(samples_ms, budget.statistic, confidence)
    if bounds.upper is not None and bounds.upper <= budget.limit_ms:
        decision = Decision.PASS
    elif bounds.lower is not None and bounds.lower > budget.limit_ms:
        decision = Decision.FAIL
    else:
        decision = Decision.UNDECIDED
    achieved = None
    if decision is Decision.UNDECIDED and bounds.n:
        achieved = _achieved_confidence(samples_ms, budget, bounds.estimate)
    return BudgetVerdict(budget.statistic, budget.limit_ms, decision, bounds.estimate, bounds.lower, bounds.upper,
                         bounds.n, confidence, achieved)


def _achieved_confidence(samples_ms: Sequence[float], budget: Budget, estimate: float) -> Optional[float]:
    """Confidence of the point estimate's side: exact order-statistic figure for percentiles, normal for the mean."""
    if budget.statistic in PERCENTILES:
        within, over = quantile_side_confidence(samples_ms, PERCENTILES[budget.statistic], budget.limit_ms)
        return within if estimate <= budget.limit_ms else over
    spread = interval(samples_ms, "mean", 0.8413447460685429)  # z = 1: the bound is one standard error away
    if spread.upper is None:
        return None
    standard_error = spread.upper - spread.estimate
    if standard_error <= 0:
        return 1.0
    z = abs(budget.limit_ms - estimate) / standard_error
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _fmt(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.4g}"

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

from .stats import log_spread

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


# How much more than the machine probe a CPU engine slows down under the same load (in ln terms): beside a
# bursty neighbour on the 2-core CPU machine, engines of 0.006-0.4 ms moved 1.7-2.3 times the probe's change
# (probe +22% to +41%, engines +40% to +117%; docs/gate.md): the probe, a short loop, is descheduled less
# than an engine sampled for 0.1-1 s. On the CPU a machine drift explains a change up to this many times its
# own size; on CUDA (a probe of the host's launches; launch-bound engines are judged on kernel time) once.
CONTENTION_AMPLIFICATION = 3.0
NOISE_Z = 3.0  # a change must exceed this many standard deviations of the run-to-run noise (one-sided 0.13%)
MIN_HISTORY = 3  # runs in the baseline's history before their spread is trusted as the between-run noise
HISTORY = 10  # runs an entry keeps (baseline/store.py): enough for the spread, short enough to follow the machine


@dataclass(frozen=True)
class RunNoise:
    """How much one run's p50 moves from the next on this machine, when the code stays the same.

    The samples of one run say how well that run's median is known; they say nothing about how far
    the next process lands (another core, clock, allocator state, neighbour).  So the gate measures
    that spread instead of assuming it (docs/gate.md, "Run-to-run noise"):

    - ``between_runs``: the standard deviation of ln(p50) over the baseline entry's history, once it
      holds MIN_HISTORY runs (each `baseline update` of a passing run adds one);
    - ``within_run``: the spread of ln(block median) over consecutive blocks of each run's samples,
      the larger of the two runs': a lower bound of the between-run spread, known from the first run;
    - ``probe_change``: ln of the machine probe's ratio (timing.machine_probe) between the two runs.
    """

    between_runs: Optional[float] = None
    runs: int = 0
    within_run: float = 0.0
    probe_change: Optional[float] = None
    probe_spread: float = 0.0  # the probe's own spread the drift must stand out of (std of ln over repeats)
    amplification: float = 1.0  # how many times its own size a machine drift explains (CONTENTION_AMPLIFICATION)
    modelled: bool = True  # False: two sample sets judged alone (one process), no noise figure to show

    def machine_drift(self, allowed: float) -> float:
        """ln of how much the machine itself moved: the probe's change when it stands out of the probe's
        own noise and half the allowance, else 0."""
        if self.probe_change is None:
            return 0.0
        threshold = max(allowed / 2, NOISE_Z * math.sqrt(2.0) * self.probe_spread)
        return self.probe_change if abs(self.probe_change) > threshold else 0.0

    @property
    def sigma(self) -> float:
        return max(self.between_runs or 0.0, self.within_run)

    @property
    def margin(self) -> float:
        """ln(ratio) a change must exceed to stand out of the noise of two runs: NOISE_Z * sigma * sqrt(2)."""
        return NOISE_Z * self.sigma * math.sqrt(2.0)


# Two sample sets judged alone (two runs in one process: gate_power.py): no run-to-run noise to add.
SAMPLES_ONLY = RunNoise(between_runs=0.0, runs=MIN_HISTORY, modelled=False)


def run_noise(history_p50_ms: Sequence[float], blocks_current: Sequence[float], blocks_baseline: Sequence[float],
              probe_current: Optional[float], probe_baseline: Optional[float], *, probe_spread: float = 0.0,
              probe_after: Optional[float] = None, amplification: float = 1.0) -> RunNoise:
    """The noise figures of one comparison, from the entry's history, both runs' blocks and probes.

    ``probe_after``: this run's probe again after its samples; the machine's change is the larger of the
    two probes' changes, so load that came or went around the samples is seen by one of them.
    ``probe_spread``: the probe's own noise the drift must stand out of (the steadier run's: comparison.py)."""
    between = log_spread(history_p50_ms) if len(history_p50_ms) >= MIN_HISTORY else None
    within = max(log_spread(blocks_current) or 0.0, log_spread(blocks_baseline) or 0.0)
    changes = [math.log(probe / probe_baseline) for probe in (probe_current, probe_after)
               if probe and probe_baseline and probe > 0 and probe_baseline > 0]
    probe = max(changes, key=abs) if changes else None
    return RunNoise(between, len(history_p50_ms), within, probe, probe_spread, amplification)


@dataclass(frozen=True)
class LatencyComparison:
    """This run's latency against the baseline's, and the verdict."""

    # regression | improvement | within (the allowance, or not significant) | insufficient (too few
    # samples) | undecided (the run-to-run noise or the machine's drift exceeds the allowance)
    verdict: str
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
    noise: RunNoise = SAMPLES_ONLY
    why_undecided: str = ""

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
            short = [side for side, n in (("the baseline's", self.n_baseline), ("this run's", self.n_current))
                     if n < MIN_SAMPLES]
            fix = ("; bless a run with more (--infer-max-iters, --infer-min-time)" if self.n_baseline < MIN_SAMPLES
                   else "; run with more (--infer-max-iters, --infer-min-time)")
            return (f"{head}: too few samples for a verdict ({self.n_baseline} in the baseline vs {self.n_current} "
                    f"in this run; {' and '.join(short)} under the {MIN_SAMPLES} a comparison needs{fix})")
        p_value = self.p_slower if self.change >= 0 else self.p_faster
        noise = f"; {self.noise_text()}" if self.noise.modelled else ""
        text = (f"{head} ({self.change:+.1%}, {CONFIDENCE:.0%} CI {self.ci_low - 1:+.1%}..{self.ci_high - 1:+.1%}; "
                f"allowed +{self.max_regression:.1%}; Mann-Whitney p={p_value:.2g}, "
                f"{self.n_baseline} vs {self.n_current} samples{noise})")
        return f"{text}: {self.why_undecided}" if self.why_undecided else text

    def noise_text(self) -> str:
        """``noise margin +-4.9% (3·√2·σ; σ 1.15% from the p50s of 3 blessed runs)``: the margin a change must
        clear, and where its σ came from (the larger of the history's spread and the runs' own drift)."""
        noise = self.noise
        if noise.between_runs is not None and noise.between_runs >= noise.within_run:
            source = f"the p50s of {noise.runs} blessed runs"
        elif noise.between_runs is not None:
            source = f"the drift between blocks within the runs, above the spread of {noise.runs} blessed runs' p50s"
        else:
            source = (f"the drift between blocks within the runs; {noise.runs} of {MIN_HISTORY} blessed runs in the "
                      "history for the between-run figure")
        return f"noise margin +-{math.exp(noise.margin) - 1:.1%} (3·√2·σ; σ {noise.sigma:.2%} from {source})"

def compare_latency(current: Sequence[float], baseline: Sequence[float], *, max_regression: float,
                    alpha: float = ALPHA, noise: Optional[RunNoise] = None,
                    option: str = "--infer-max-regression") -> LatencyComparison:
    """Regression when significantly slower, *and* the median ratio exceeds ``1 + max_regression``, *and*
    the change stands out of the run-to-run noise (``noise.margin``).

    Improvement mirrors it.  Undecided, rather than a verdict either way, when the machine's probe
    moved by more than half the allowance while the latency moved by more than the allowance (the
    machine changed, not necessarily the code), when the noise alone exceeds the allowance (this
    engine on this machine cannot be held to it), or while the history has not measured the
    between-run noise.  docs/gate.md says why and how.

    ``noise=None`` judges the two sample sets alone, as two runs in one process are (gate_power.py);
    the gate always passes the comparison's RunNoise.  ``option``: the allowance's option, named when
    the noise exceeds it (``--infer-kernel-tolerance`` for a launch-bound engine's kernel time).
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
    noise = SAMPLES_ONLY if noise is None else noise
    allowed, change, why = math.log1p(max_regression), math.log(ratio), ""
    beyond = max(allowed, noise.margin)
    drift = noise.machine_drift(allowed)
    # The part of the change the machine explains: its drift, when it went the same way as the latency.
    explained = (math.copysign(min(noise.amplification * abs(drift), abs(change)), change)
                 if drift * change > 0 else 0.0)
    if abs(change) > beyond and abs(change - explained) <= beyond:
        verdict = "undecided"
        amplified = noise.amplification > 1  # the CPU's reading: both probes, an engine moving more than the probe
        why = (f"the machine's reference workload moved {math.exp(drift) - 1:+.1%} between the runs"
               + (" (timed before and after this run's samples)" if amplified else "")
               + ", which may account for the change"
               + (f" (under load an engine here moves up to {noise.amplification:g}x as much as the probe)"
                  if amplified else ""))
    elif abs(change) > beyond and (test.p_greater if change > 0 else test.p_less) < alpha and noise.between_runs is None:
        # One process's median can land far from the next one's (another core, clock, neighbour) while
        # its samples sit tight: until the history has measured that spread, a change is not a verdict.
        verdict = "undecided"
        why = (f"the between-run noise is not measured yet ({noise.runs} of {MIN_HISTORY} runs in the baseline's "
               "history; each blessed run adds one), so a change between two processes cannot be told from it")
    elif test.p_greater < alpha and change > beyond:
        verdict = "regression"
    elif test.p_less < alpha and change < -beyond:
        verdict = "improvement"
    elif noise.margin > allowed:
        verdict = "undecided"
        why = (f"its noise margin (+-{math.exp(noise.margin) - 1:.1%}) exceeds the allowance "
               f"(+{max_regression:.1%}): raise {option} for it, or steady the machine")
        if noise.between_runs is not None and noise.between_runs >= noise.within_run and noise.runs < HISTORY:
            # A spread from a few runs is rough (one odd run weighs a third of three): more runs say more.
            why += (f"; {noise.runs} of the {HISTORY} runs the baseline keeps measured it, and each blessed "
                    "run measures it better")
    else:
        verdict = "within"
    return LatencyComparison(verdict, base_p50, cur_p50, ratio, low, high, test.p_greater, test.p_less,
                             int(cur.size), int(base.size), max_regression, alpha, noise, why)


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

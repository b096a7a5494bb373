"""Latency measurement: warm-up, per-iteration samples, statistics.

Two timers share one protocol: ``CpuTimer`` (``perf_counter_ns`` around each call, for engines
whose call returns when the work is done) and ``CudaEventTimer`` (a pair of CUDA events around
each call on the engine's stream, so the figure is device time and the host never stalls the
loop).

A ``TimingPlan`` says when to stop.  ``min_iters`` and ``min_time`` are floors, ``max_iters`` a hard
cap and ``max_time`` a cap on measured time per engine: it wins over ``min_iters`` once
``CAPPED_MIN_SAMPLES`` samples exist, so a model at 2 s per call costs seconds, not minutes (its
budget verdict then says how sure it is at that n).  Without a ``StoppingRule`` sampling stops at the floors, as it always
did.  With one it stops, between the floors and the caps, as soon as the rule is satisfied: the
budget is decided (budget.decide_budget) and each watched statistic's 95% interval lies within
``ci_width`` of its estimate.  A CUDA graph's tight distribution satisfies it within milliseconds;
an eager engine's launch-bound one runs to the cap.  docs/latency.md explains the choices.
"""

from __future__ import annotations

import gc
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol, Sequence

import numpy as np

from .results import LatencyStats
from .stats import PERCENTILES, block_medians, log_spread

if TYPE_CHECKING:
    from .budget import Budget

from ..core import defaults


@dataclass(frozen=True)
class StoppingRule:
    """Enough samples when the budget (if any) is decided and every watched interval is narrow.

    ``ci_width`` is the largest relative distance from a statistic's estimate to either end of its
    two-sided ``confidence`` interval (0.01: the statistic is known to +-1%).
    """

    statistics: tuple[str, ...] = ("p50",)
    ci_width: float = defaults.CI_WIDTH
    confidence: float = defaults.CONFIDENCE
    budget: Optional["Budget"] = None

    def watched(self) -> tuple[str, ...]:
        extra = (self.budget.statistic,) if self.budget is not None else ()
        return tuple(dict.fromkeys(self.statistics + extra))

    def unmet(self, samples_ms: Sequence[float]) -> Optional[str]:
        """What is not yet known well enough (None: the rule is satisfied)."""
        from .budget import Decision, decide_budget
        from .stats import interval

        if self.budget is not None and decide_budget(samples_ms, self.budget, self.confidence).decision is Decision.UNDECIDED:
            return f"budget {self.budget} undecided"
        two_sided = (1.0 + self.confidence) / 2.0  # each one-sided bound at 97.5% makes a 95% interval
        for statistic in self.watched():
            width = interval(samples_ms, statistic, two_sided).relative_half_width()
            if width > self.ci_width:
                return f"{statistic} known to +-{width:.1%}, want +-{self.ci_width:.1%}"
        return None


# The fewest samples the time cap leaves an engine with (the gate's rank test needs 5 a side).
CAPPED_MIN_SAMPLES = 5


@dataclass(frozen=True)
class Stop:
    """Why sampling stopped: precision (the rule is met), min (the floors, no rule), max_iters, max_time."""

    reason: str
    count: int
    measured_s: float
    unmet: Optional[str] = None  # at a cap, what the rule still lacked


@dataclass(frozen=True)
class TimingPlan:
    warmup: int = defaults.WARMUP
    min_iters: int = defaults.MIN_ITERS
    max_iters: int = defaults.MAX_ITERS
    min_time: float = defaults.MIN_TIME_S  # seconds of measured time
    max_time: float = defaults.MAX_TIME_S  # seconds of measured time; beats min_iters once CAPPED_MIN_SAMPLES exist
    rule: Optional[StoppingRule] = None

    def stop(self, count: int, measured_s: float, samples_ms: Optional[Sequence[float]] = None) -> Optional[Stop]:
        """A ``Stop`` when sampling should end; the rule is asked only when ``samples_ms`` are given."""
        if count >= self.max_iters:
            return Stop("max_iters", count, measured_s)
        if measured_s >= self.max_time and count >= min(self.min_iters, CAPPED_MIN_SAMPLES):
            return Stop("max_time", count, measured_s)
        if count < self.min_iters:
            return None
        if measured_s < self.min_time:
            return None
        if self.rule is None:
            return Stop("min", count, measured_s)
        if samples_ms is None or self.rule.unmet(samples_ms) is not None:
            return None
        return Stop("precision", count, measured_s)

    def enough(self, count: int, measured_s: float, samples_ms: Optional[Sequence[float]] = None) -> bool:
        return self.stop(count, measured_s, samples_ms) is not None


def plan_from_settings(settings: Any) -> TimingPlan:
    """The plan a check's settings describe; ``ci_width`` 0 turns the stopping rule off (fixed floors)."""
    ci_width = float(getattr(settings, "ci_width", 0.0) or 0.0)
    rule = None
    if ci_width > 0:
        rule = StoppingRule(ci_width=ci_width, confidence=float(getattr(settings, "confidence", defaults.CONFIDENCE)),
                            budget=getattr(settings, "budget", None))
    return TimingPlan(warmup=settings.warmup, min_iters=settings.min_iters, max_iters=max(settings.max_iters, 1),
                      min_time=settings.min_time, max_time=float(getattr(settings, "max_time", math.inf) or math.inf),
                      rule=rule)


def _final(plan: TimingPlan, stop: Stop, samples_ms: Sequence[float]) -> Stop:
    """At a cap, say what the rule still lacked, judged on every sample."""
    if plan.rule is None or stop.reason not in ("max_iters", "max_time"):
        return stop
    return Stop(stop.reason, stop.count, stop.measured_s, plan.rule.unmet(samples_ms))


class _Checkpoints:
    """When to ask the rule: at geometrically spaced counts, so sorting the samples stays a small cost."""

    def __init__(self, plan: TimingPlan) -> None:
        self.plan = plan
        self.next = max(plan.min_iters, 1)

    def due(self, count: int) -> bool:
        if self.plan.rule is None or count < self.next:
            return False
        self.next = count + max(count // 8, 8)
        return True


class Timer(Protocol):
    name: str

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats: ...


def summarize(samples_ms: Sequence[float], *, timer: str, batch_size: int, warmup: int,
              peak_memory_bytes: Optional[int] = None, includes_transfers: bool = False) -> LatencyStats:
    """Statistics of the samples; percentiles by linear interpolation (numpy's default)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    figures: dict[str, Any] = {}
    if values.size:
        figures = dict(min_ms=float(values.min()), mean_ms=float(values.mean()),
                       std_ms=float(values.std(ddof=1)) if values.size > 1 else 0.0,
                       # Every percentile the plugin reports or budgets, from the one table (stats.PERCENTILES):
                       # a new one is a row there, and every report lists it.
                       percentiles_ms={name: float(np.percentile(values, q * 100)) for name, q in PERCENTILES.items()},
                       block_medians_ms=tuple(block_medians(values)))
    return LatencyStats(samples_ms=tuple(float(v) for v in values), timer=timer, batch_size=batch_size,
                        warmup_iterations=warmup, peak_memory_bytes=peak_memory_bytes,
                        includes_transfers=includes_transfers, count=int(values.size), **figures)


PROBE_REPEATS = 7


def machine_probe(device: str) -> tuple[float, float]:
    """Milliseconds a fixed reference workload takes here and now (the median of PROBE_REPEATS), and the
    spread of its repeats (std of ln): how far the probe moves by itself on this machine.

    On the CPU a fixed float32 matrix product loop (CPU speed, contention); on CUDA 200 tiny kernel
    launches and a synchronise (the host's launch speed, what launch-bound engines wait on). The
    same code on the same machine takes the same time: when it does not between two runs, the
    machine moved, and a latency change then says nothing about the code (regression.RunNoise).
    """
    import torch

    if device.startswith("cuda"):
        scratch = torch.zeros(1, device=device)

        def workload() -> None:
            for _ in range(200):
                scratch.add_(1.0)
            torch.cuda.synchronize(device)
    else:
        left = torch.full((64, 64), 0.5)

        def workload() -> None:
            for _ in range(50):
                torch.mm(left, left)
    workload()  # warm: allocator, kernels
    times = []
    for _ in range(PROBE_REPEATS):
        start = time.perf_counter()
        workload()
        times.append((time.perf_counter() - start) * 1000.0)
    times.sort()
    return times[len(times) // 2], log_spread(times) or 0.0


DEVICE_PROBE_MATMULS = 16  # 2048x2048 FP16 products per repeat: an estimated 0.3-0.5 ms on an H100, each
DEVICE_PROBE_SIDE = 2048  # kernel ~25 us, well above a launch, so the probe times the device and not the host
DEVICE_PROBE_COPY_BYTES = 32 << 20  # and one 32 MiB copy (about a tenth of the probe's time)
DEVICE_PROBE_WARMUP_S = 0.1  # of the workload before the repeats: the GPU's clock ramps up under load


def device_probe(device: str) -> tuple[float, float]:  # pragma: no cover - needs CUDA (never run on this machine)
    """Milliseconds a fixed device workload takes on ``device`` (CUDA) here and now, by CUDA events (the
    median of PROBE_REPEATS, after DEVICE_PROBE_WARMUP_S of the same work, so that a clock still ramping
    up from idle is not read as a slow device), and the spread of its repeats (std of ln).  Matrix
    products on seeded random data (constant data draws less power, and would show a power cap less)
    long enough that the GPU, not the host, sets their time, then a copy: a GPU that runs slower between
    two runs (clock, power cap, another process on the device) shows here while the host probe stays put.

    Its tensors (about 80 MiB) go back to the device before the engine is timed (``empty_cache``): cached
    in torch's allocator they would count in the engine's device memory figures, which are read after
    its timing.  The engine's own free cached blocks go with them; its warm-up takes them again."""
    import torch

    side = DEVICE_PROBE_SIDE
    with torch.cuda.device(device):
        generator = torch.Generator(device=device).manual_seed(0)
        left = torch.randn((side, side), generator=generator, device=device, dtype=torch.float16) / side ** 0.5
        product = torch.empty_like(left)
        source = torch.randn(DEVICE_PROBE_COPY_BYTES // 4, generator=generator, device=device)
        target = torch.empty_like(source)

        def workload() -> None:
            for _ in range(DEVICE_PROBE_MATMULS):
                torch.mm(left, left, out=product)
            target.copy_(source)

        warm_until = time.perf_counter() + DEVICE_PROBE_WARMUP_S
        while time.perf_counter() < warm_until:  # also cuBLAS's handle and kernel choice
            workload()
            torch.cuda.synchronize(device)
        times = []
        for _ in range(PROBE_REPEATS):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            workload()
            end.record()
            end.synchronize()
            times.append(float(start.elapsed_time(end)))
        del left, product, source, target
        torch.cuda.empty_cache()
    times.sort()
    return times[len(times) // 2], log_spread(times) or 0.0


@contextmanager
def _no_gc() -> Iterator[None]:
    """Keep the garbage collector out of the samples, as timeit does."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class CpuTimer:
    """Host wall-clock per call: right for engines whose call blocks until the result is ready."""

    name = "cpu-perf_counter"
    last_stop: Optional[Stop] = None

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats:
        for _ in range(plan.warmup):
            run()
        samples: list[float] = []
        measured_ns = 0
        clock = time.perf_counter_ns
        checkpoints = _Checkpoints(plan)
        with _no_gc():
            while True:
                count = len(samples)
                stop = plan.stop(count, measured_ns / 1e9, samples if checkpoints.due(count) else None)
                if stop is not None:
                    break
                start = clock()
                run()
                elapsed = clock() - start
                measured_ns += elapsed
                samples.append(elapsed / 1e6)
        self.last_stop = _final(plan, stop, samples)
        return summarize(samples, timer=self.name, batch_size=batch_size, warmup=plan.warmup,
                         includes_transfers=includes_transfers)


SETTLE_ROUND_S = 0.01  # a CUDA warm-up round's length, in seconds, once the engine's time per call is known


class CudaEventTimer:
    """Device time per call from CUDA events recorded on the engine's stream.

    Events for all iterations are recorded first and read after one synchronisation, so reading
    a timing never stalls the launch queue.  Warm-up runs the engine in rounds for at least ``settle_s``
    seconds (defaults.CUDA_SETTLE_S, wall time), then until the median of a round moves by less than
    2% from the previous round (or ``4 * warmup`` rounds after the settle time).  The fixed time is what
    protects the samples: on the H100 a CUDA graph's time still fell by 2% over the first 300 ms after
    idle, and by 4% over 400-600 ms after the GPU probe, which pulls the SM clock down; the rule alone
    was met within milliseconds of a 0.1 ms graph, and a 2% test between neighbouring rounds cannot see
    a drift that slow (the A/A of 2026-12-07, docs/benchmarks.md: each run's blocks fell 2-4%).
    ``warmup=0`` times from the first call.
    """

    name = "cuda-events"
    last_stop: Optional[Stop] = None

    def __init__(self, stream: Any = None, *, settle_s: float = defaults.CUDA_SETTLE_S) -> None:
        self.stream = stream
        self.settle_s = settle_s

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats:
        import torch

        stream = self.stream or torch.cuda.current_stream()
        self._settle(run, plan, stream)
        torch.cuda.reset_peak_memory_stats()
        samples: list[float] = []
        measured_s = 0.0
        with _no_gc(), torch.cuda.stream(stream):
            # Rounds end where the rule is asked, so no checkpoint is skipped between two of them.
            while (stop := plan.stop(len(samples), measured_s, samples if plan.rule else None)) is None:
                batch = self._timed_round(run, stream, self._round_size(plan, len(samples), measured_s))
                samples.extend(batch)
                measured_s += sum(batch) / 1000.0
        self.last_stop = _final(plan, stop, samples)
        # Peak of torch's allocator while timing, the engine's weights, buffers and graph pools included.
        peak = int(torch.cuda.max_memory_allocated())
        return summarize(samples, timer=self.name, batch_size=batch_size, warmup=plan.warmup,
                         peak_memory_bytes=peak, includes_transfers=includes_transfers)

    @staticmethod
    def _round_size(plan: TimingPlan, count: int, measured_s: float) -> int:
        """Up to the floors first; then, with a rule, a quarter more samples per round (up to the caps)."""
        if count == 0:
            return max(plan.min_iters, 1)
        per_iter = measured_s / count
        wanted = int((plan.min_time - measured_s) / per_iter) + 1 if per_iter > 0 else plan.min_iters
        if plan.rule is not None:
            wanted = max(wanted if measured_s < plan.min_time else 0, count // 4, 8)
            if per_iter > 0 and math.isfinite(plan.max_time):
                wanted = min(wanted, int((plan.max_time - measured_s) / per_iter) + 1)
        return max(1, min(wanted, plan.max_iters - count, 2000))

    @staticmethod
    def _timed_round(run: Callable[[], Any], stream: Any, iterations: int) -> list[float]:
        import torch

        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iterations)]
        for start, end in zip(starts, ends):
            start.record(stream)
            run()
            end.record(stream)
        stream.synchronize()
        return [start.elapsed_time(end) for start, end in zip(starts, ends)]

    def _settle(self, run: Callable[[], Any], plan: TimingPlan, stream: Any) -> None:
        import torch

        if plan.warmup == 0:
            return
        settled_at = time.perf_counter() + self.settle_s
        previous: Optional[float] = None
        rounds_after = 0  # rounds once settle_s has passed: the stability rule's cap counts these alone
        iterations = max(plan.warmup, 5)
        with torch.cuda.stream(stream):
            while True:
                median = float(np.median(self._timed_round(run, stream, iterations)))
                if time.perf_counter() >= settled_at:
                    rounds_after += 1
                    stable = previous is not None and abs(median - previous) <= 0.02 * previous
                    if stable or rounds_after >= 4 * max(plan.warmup, 1):
                        return
                previous = median
                # Rounds of about SETTLE_ROUND_S each while the device settles: few synchronisations.
                iterations = max(plan.warmup, 5, min(int(SETTLE_ROUND_S / max(median / 1000.0, 1e-6)), 2000))


def timer_for(device: str, stream: Any = None) -> Timer:
    return CudaEventTimer(stream) if device.startswith("cuda") else CpuTimer()

"""Latency measurement: warm-up, per-iteration samples, statistics.

Two timers share one protocol: ``CpuTimer`` (``perf_counter_ns`` around each call, for engines
whose call returns when the work is done) and ``CudaEventTimer`` (a pair of CUDA events around
each call on the engine's stream, so the figure is device time and the host never stalls the
loop).  Both sample until ``min_iters`` samples *and* ``min_time`` seconds are reached, or
``max_iters``, so a fast engine gets thousands of samples for a stable p99 and a slow one is not
run for minutes.
"""

from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional, Protocol, Sequence

import numpy as np

from .results import LatencyStats


@dataclass(frozen=True)
class TimingPlan:
    warmup: int = 10
    min_iters: int = 50
    max_iters: int = 5000
    min_time: float = 1.0  # seconds of measured time

    def enough(self, count: int, measured_s: float) -> bool:
        if count >= self.max_iters:
            return True
        return count >= self.min_iters and measured_s >= self.min_time


class Timer(Protocol):
    name: str

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats: ...


def summarize(samples_ms: Sequence[float], *, timer: str, batch_size: int, warmup: int,
              peak_memory_bytes: Optional[int] = None, includes_transfers: bool = False) -> LatencyStats:
    """Statistics of the samples; percentiles by linear interpolation (numpy's default)."""
    values = np.asarray(samples_ms, dtype=np.float64)
    stats = LatencyStats(samples_ms=[float(v) for v in values], timer=timer, batch_size=batch_size,
                         warmup_iterations=warmup, peak_memory_bytes=peak_memory_bytes,
                         includes_transfers=includes_transfers, count=int(values.size))
    if values.size:
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        stats.min_ms, stats.mean_ms = float(values.min()), float(values.mean())
        stats.std_ms = float(values.std(ddof=1)) if values.size > 1 else 0.0
        stats.p50_ms, stats.p90_ms, stats.p99_ms = float(p50), float(p90), float(p99)
    return stats


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

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats:
        for _ in range(plan.warmup):
            run()
        samples: list[float] = []
        measured_ns = 0
        clock = time.perf_counter_ns
        with _no_gc():
            while not plan.enough(len(samples), measured_ns / 1e9):
                start = clock()
                run()
                elapsed = clock() - start
                measured_ns += elapsed
                samples.append(elapsed / 1e6)
        return summarize(samples, timer=self.name, batch_size=batch_size, warmup=plan.warmup,
                         includes_transfers=includes_transfers)


class CudaEventTimer:
    """Device time per call from CUDA events recorded on the engine's stream.

    Events for all iterations are recorded first and read after one synchronisation, so reading
    a timing never stalls the launch queue.  Warm-up runs in rounds until the median of a round
    moves by less than 2% from the previous round (or ``4 * warmup`` rounds), because clocks and
    allocator caches settle over the first few hundred milliseconds.
    """

    name = "cuda-events"

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def measure(self, run: Callable[[], Any], plan: TimingPlan, *, batch_size: int,
                includes_transfers: bool = False) -> LatencyStats:
        import torch

        stream = self.stream or torch.cuda.current_stream()
        self._settle(run, plan, stream)
        torch.cuda.reset_peak_memory_stats()
        samples: list[float] = []
        measured_s = 0.0
        with _no_gc(), torch.cuda.stream(stream):
            while not plan.enough(len(samples), measured_s):
                batch = self._timed_round(run, stream, self._round_size(plan, len(samples), measured_s))
                samples.extend(batch)
                measured_s += sum(batch) / 1000.0
        # Peak of torch's allocator while timing, the engine's weights, buffers and graph pools included.
        peak = int(torch.cuda.max_memory_allocated())
        return summarize(samples, timer=self.name, batch_size=batch_size, warmup=plan.warmup,
                         peak_memory_bytes=peak, includes_transfers=includes_transfers)

    @staticmethod
    def _round_size(plan: TimingPlan, count: int, measured_s: float) -> int:
        if count == 0:
            return max(plan.min_iters, 1)
        per_iter = measured_s / count
        wanted = int((plan.min_time - measured_s) / per_iter) + 1 if per_iter > 0 else plan.min_iters
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
        previous: Optional[float] = None
        with torch.cuda.stream(stream):
            for _ in range(4 * max(plan.warmup, 1)):
                median = float(np.median(self._timed_round(run, stream, max(plan.warmup, 5))))
                if previous is not None and abs(median - previous) <= 0.02 * previous:
                    return
                previous = median


def timer_for(device: str, stream: Any = None) -> Timer:
    return CudaEventTimer(stream) if device.startswith("cuda") else CpuTimer()

"""GPU kernel time per iteration, the device's busy fraction, and the launch-bound label.

The CUDA-event timer measures an engine's *wall* time on the device: the span between two events
on its stream, idle gaps included.  An engine that launches many small kernels without a CUDA
graph keeps the GPU waiting for the host between them; its wall time is then the host's launch
speed, which moves from one process to the next (another core, clock, neighbour: eager GPT-2 read
3.15 ms in one process and 5.77 ms in the next on the H200), while the kernels themselves take the
same time.  So, after the wall-time samples are taken (and left as they are), a short second pass
measures the kernels:

- **Method.** ``torch.profiler`` with CUDA activity (CUPTI: it records the kernels, copies and
  memsets of every library in the process, ONNX Runtime and TensorRT included) over
  ``kernel_iterations(wall p50)`` iterations (25, fewer for a slow engine: about
  KERNEL_PASS_S of wall time, never below 5), each inside a ``record_function`` range that ends
  with a device synchronise, 0.2 ms apart.  Each device interval belongs to the iteration whose
  range it starts in (up to the middle of the gap to the next); an iteration's device-busy time is
  the *union* of its intervals (concurrent streams are counted once; gaps are not counted).  The synchronise makes every iteration's work finish inside
  its own range; it changes when the host waits, not how long a kernel runs.
- **Busy fraction** = p50 of the kernel samples / p50 of the wall samples.  Below
  ``LAUNCH_BOUND_BELOW`` (0.5: the GPU idles more than it works, waiting for launches) the engine
  is **launch-bound**, and the gate judges its regression on kernel time (docs/gate.md).
- **CUDA graphs** replay as one launch: the host is off the per-kernel path, and a dense graph's
  wall time moved < 1% between processes.  A sparse one is another matter: a small MLP's graph kept
  the H100 busy 19% of its wall time (the replay's own launch and the timing events are most of it),
  and its wall p50 moved 1.5-2x between processes on the same cache (benchmarks/gate_aa.py,
  2026-12-07).  So the same threshold labels a graph engine launch-bound (``CUDA graph,
  launch-bound``), and the gate judges it on its kernels, which the replay runs unchanged.
- **CPU engines** have no kernel time: nothing is measured and nothing is labelled.
- **The GPU's own speed** (``device_probe_ms``): the host's machine probe times launches, which a
  CUDA graph and the kernel time do not wait on; so a fixed device workload (timing.device_probe) is
  timed beside them and recorded (reports, the baseline's history).  It is neither judged nor shown
  beside the verdict: on the H100 (2026-12-07) it moved about 5.5% between processes and engines, 8
  times the kernels' own 0.7%, and not with them (docs/gate.md).

Pure logic here (intervals, the label) runs anywhere; ``measure_kernel_time`` needs CUDA and imports
torch inside.  Nothing at module level imports torch or numpy (results.py reads ``KernelTime`` at
plugin import).
"""

from __future__ import annotations

import bisect
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

# The one threshold: below this busy fraction an engine (a CUDA graph too) is launch-bound.
LAUNCH_BOUND_BELOW = 0.5
KERNEL_ITERATIONS = 25  # profiled iterations (5 blocks of 5: the within-run noise of the kernel time)
MIN_KERNEL_ITERATIONS = 5  # the fewest (the gate's rank test needs 5 a side)
KERNEL_PASS_S = 0.5  # about this much wall time, at the engine's p50, decides fewer iterations for a slow engine
ITERATION_RANGE = "infercheck.kernel_time.iteration"  # the record_function range around each iteration
ITERATION_GAP_S = 0.0002  # host idle between ranges: intervals up to 0.1 ms off still land in their own iteration
DEVICE_WORK = ("kernel", "gpu_memcpy", "gpu_memset")  # kineto's activity types that occupy the device
METHOD = ("torch.profiler (CUPTI): union of kernel, memcpy and memset intervals per iteration, "
          "each iteration synchronised, after the wall-time samples")


@dataclass(frozen=True)
class KernelTime:
    """The device-busy time per iteration of a GPU engine, beside its wall time (a fact: immutable).

    ``samples_ms``: the union of device work per profiled iteration, in time order;
    ``wall_p50_ms``: the p50 of the wall samples it is compared with (LatencyStats.p50_ms);
    ``cuda_graph``: the engine replays a CUDA graph (launch-bound too when sparse, see the module docstring);
    ``launch_bound_below``: the threshold it was labelled with (LAUNCH_BOUND_BELOW when measured).
    """

    samples_ms: tuple[float, ...]
    wall_p50_ms: float
    cuda_graph: bool = False
    block_medians_ms: tuple[float, ...] = ()
    launch_bound_below: float = LAUNCH_BOUND_BELOW
    method: str = METHOD
    # A fixed device workload timed by CUDA events just before the engine (timing.device_probe): the
    # GPU's own speed now (clock, power, a neighbour on the device), which the host probe does not see.
    device_probe_ms: Optional[float] = None
    device_probe_spread: float = 0.0  # std of ln over its repeats: how far it moves by itself

    @property
    def p50_ms(self) -> float:
        return float(statistics.median(self.samples_ms)) if self.samples_ms else math.nan

    @property
    def busy_fraction(self) -> float:
        """Kernel p50 over wall p50 (NaN without both)."""
        if not self.samples_ms or not self.wall_p50_ms > 0:
            return math.nan
        return self.p50_ms / self.wall_p50_ms

    @property
    def launch_bound(self) -> bool:
        return self.busy_fraction < self.launch_bound_below

    @property
    def label(self) -> str:
        if self.cuda_graph:
            return "CUDA graph, launch-bound" if self.launch_bound else "CUDA graph"
        return "launch-bound" if self.launch_bound else "device-bound"

    def describe(self) -> str:
        """``launch-bound: kernels 0.41 ms of 3.2 ms wall, 13% busy``."""
        return (f"{self.label}: kernels {self.p50_ms:.3g} ms of {self.wall_p50_ms:.3g} ms wall, "
                f"{self.busy_fraction:.0%} busy")

    def figures(self) -> dict[str, Any]:
        """The derived figures, for readers of the JSON report and JUnit (ignored on reading)."""
        return {"p50_ms": self.p50_ms, "busy_fraction": self.busy_fraction, "launch_bound": self.launch_bound,
                "label": self.label}


def kernel_iterations(wall_p50_ms: float) -> int:
    """How many iterations the kernel pass profiles: KERNEL_ITERATIONS, fewer when that would take
    more than about KERNEL_PASS_S at the engine's wall p50, never below MIN_KERNEL_ITERATIONS."""
    if not wall_p50_ms > 0 or not math.isfinite(wall_p50_ms):
        return KERNEL_ITERATIONS
    fitting = int(KERNEL_PASS_S * 1000.0 / wall_p50_ms)
    return max(MIN_KERNEL_ITERATIONS, min(KERNEL_ITERATIONS, fitting))


def union_ns(intervals: Iterable[tuple[int, int]]) -> int:
    """Total length covered by the intervals (overlaps counted once)."""
    total, end = 0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def busy_per_iteration(ranges: Sequence[tuple[int, int]], work: Iterable[tuple[int, int]]) -> list[float]:
    """Milliseconds of device work per iteration.

    ``ranges``: each iteration's host range (start, end) in ns, in order; ``work``: device intervals
    (start, end) in ns on the profiler's clock.  Iteration ``i`` owns the time from the middle of the gap
    before its range to the middle of the gap after it (the first from the beginning, the last to the
    end), so a device clock a little off the host's (less than half a gap) still puts each interval in
    its own iteration; an interval is cut at its window's edges, and within an iteration the union
    counts concurrent work once.
    """
    ranges = sorted(ranges)
    edges = [(end + next_start) // 2 for (_, end), (next_start, _) in zip(ranges, ranges[1:])]
    per_iteration: list[list[tuple[int, int]]] = [[] for _ in ranges]
    for start, stop in work:
        index = bisect.bisect_right(edges, start)
        if stop <= start or not ranges:
            continue
        low = edges[index - 1] if index > 0 else start
        high = edges[index] if index < len(edges) else stop
        per_iteration[index].append((max(start, low), min(stop, high)))
    return [union_ns(intervals) / 1e6 for intervals in per_iteration]


def profiler_intervals(events: Iterable[Any]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The iteration ranges (CPU user annotations named ITERATION_RANGE) and the device work intervals
    from torch.profiler's kineto events (``prof.profiler.kineto_results.events()``).

    Device work: an event on a CUDA device whose activity type is one of DEVICE_WORK; a torch without
    ``activity_type()`` on its events takes every device event that is not a user annotation (the GPU
    mirror of a ``record_function`` range spans idle gaps: it must not count).
    """
    ranges: list[tuple[int, int]] = []
    work: list[tuple[int, int]] = []
    for event in events:
        interval = (int(event.start_ns()), int(event.end_ns()))
        on_device = _on_device(event)
        if not on_device and event.name() == ITERATION_RANGE:
            ranges.append(interval)
        elif on_device and _device_work(event):
            work.append(interval)
    return ranges, work


def _on_device(event: Any) -> bool:
    return str(event.device_type()).rsplit(".", 1)[-1] == "CUDA"


def _device_work(event: Any) -> bool:
    activity = getattr(event, "activity_type", None)
    if callable(activity):
        return str(activity()) in DEVICE_WORK
    annotation = getattr(event, "is_user_annotation", None)
    return not (callable(annotation) and annotation())


def kernel_time_from(ranges: Sequence[tuple[int, int]], work: Iterable[tuple[int, int]], *, wall_p50_ms: float,
                     cuda_graph: bool) -> KernelTime:
    """The fact from the profiler's intervals; a ValueError when they hold no iteration or no device work
    (a profiler that saw nothing measured nothing: better no figure than a zero)."""
    from .stats import block_medians

    if not ranges:
        raise ValueError(f"the profiler recorded none of the {ITERATION_RANGE!r} ranges")
    samples = busy_per_iteration(ranges, work)
    if not any(sample > 0 for sample in samples):
        raise ValueError(f"the profiler saw no kernel, copy or memset in {len(samples)} iterations "
                         "(is CUPTI available to this process?)")
    return KernelTime(samples_ms=tuple(samples), wall_p50_ms=wall_p50_ms, cuda_graph=cuda_graph,
                      block_medians_ms=tuple(block_medians(samples)))


def measure_kernel_time(run: Callable[[], Any], device: str, stream: Any, *, wall_p50_ms: float,
                        cuda_graph: bool) -> KernelTime:  # pragma: no cover - needs CUDA (never run on this machine)
    """The kernel pass on a warm engine (after its wall-time samples), on its stream; ValueError or the
    profiler's own error when it cannot be measured (the caller notes it and goes on)."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    stream = stream or torch.cuda.current_stream(device)
    iterations = kernel_iterations(wall_p50_ms)
    with torch.cuda.stream(stream):
        torch.cuda.synchronize(device)  # nothing of the timed loop left in flight
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(iterations):
                with record_function(ITERATION_RANGE):
                    run()
                    torch.cuda.synchronize(device)  # every stream: an engine may work on its own
                time.sleep(ITERATION_GAP_S)  # a gap between ranges: the device clock may be a little off the host's
    ranges, work = profiler_intervals(prof.profiler.kineto_results.events())
    return kernel_time_from(ranges, work, wall_p50_ms=wall_p50_ms, cuda_graph=cuda_graph)


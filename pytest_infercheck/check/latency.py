"""The latency stage: the timing plan, the timing lock, the timer, the budget verdict with its
confidence, and what explains or extends it (the per-operator profile, the largest batch within
budget, device memory).

The timers and statistics are timing.py's, stats.py's and budget.py's; this module decides what is
timed, under which lock, and what the budget says about it (docs/latency.md).
"""

from __future__ import annotations

import math
import traceback
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional

from ..measure.results import LatencyStats
from ..core.spec import Stage
from .failure import StageFailure, indent, short

if TYPE_CHECKING:
    from ..backends.base import Engine
    from ..measure.budget import BudgetVerdict
    from ..measure.kernel_time import KernelTime
    from ..model.under_test import ModelUnderTest
    from ..measure.profiling import ProfileTable

Lock = Callable[[str], ContextManager[Any]]


def measure(engine: "Engine", prepared: Any, mut: "ModelUnderTest", device: str, settings: Any,
            lock: Lock, *, kernel_pass: bool = False, cuda_graph: bool = False,
            warnings: Optional[list[str]] = None) -> LatencyStats:
    """Stage LATENCY: the engine timed on prepared inputs (or host to host with time_transfers).

    ``kernel_pass`` (a CUDA engine under check): then, under the same lock, its GPU kernel time and
    the launch-bound label (kernel_time.py); where the profiler cannot tell, a note in ``warnings``.
    """
    from ..measure.timing import device_probe, machine_probe, plan_from_settings, timer_for

    timer = timer_for(device, getattr(engine, "stream", None))
    run: Callable[[], Any] = lambda: engine.run(prepared)  # noqa: E731
    transfers = bool(settings.time_transfers and device.startswith("cuda"))
    if transfers:
        # Host inputs in, host outputs out: what a caller holding CPU tensors waits for.
        run = lambda: engine.to_numpy(engine.run(engine.prepare(mut.inputs)))  # noqa: E731
    with lock(device):
        try:
            probe: Optional[tuple[float, float]] = machine_probe(device)  # the machine's speed now, same lock
        except Exception:  # a probe only qualifies a comparison: without one, the gate goes without
            probe = None
        on_gpu = kernel_pass and device.startswith("cuda")
        gpu_probe: Optional[tuple[float, float]] = None
        if on_gpu:
            try:  # the device's own speed, recorded beside the figures the device sets (kernel time, a CUDA graph)
                gpu_probe = device_probe(device)
            except Exception:
                gpu_probe = None
        try:
            stats = timer.measure(run, plan_from_settings(settings), batch_size=mut.batch_size,
                                  includes_transfers=transfers)
        except Exception as exc:
            # The engine passed its accuracy run: a failure here came in a later call (a forward that raises on
            # its second call, a resource that runs out), which is what the first line says.
            raise StageFailure(Stage.LATENCY, "the engine failed in a timed call, after its first calls passed the "
                               f"accuracy check:\n{indent(short(exc))}", traceback.format_exc()) from None
        try:  # again, after the samples: load that came and went around them shows in one of the two
            after: Optional[float] = machine_probe(device)[0] if probe is not None else None
        except Exception:
            after = None
        if on_gpu:
            kernel = kernel_time(run, device, getattr(engine, "stream", None), stats.p50_ms, cuda_graph,
                                 warnings if warnings is not None else [])
            if kernel is not None and gpu_probe is not None:
                kernel = replace(kernel, device_probe_ms=gpu_probe[0], device_probe_spread=gpu_probe[1])
            stats = replace(stats, kernel=kernel)
    if probe is not None:
        stats = replace(stats, probe_ms=probe[0], probe_spread=probe[1], probe_after_ms=after)
    stop = getattr(timer, "last_stop", None)
    if stop is not None:
        stats = replace(stats, stop_reason=stop.reason, stop_unmet=stop.unmet or "")
    return stats


def kernel_time(run: Callable[[], Any], device: str, stream: Any, wall_p50_ms: float, cuda_graph: bool,
                warnings: list[str]) -> Optional["KernelTime"]:
    """The kernel pass after the wall-time samples (kernel_time.measure_kernel_time); None, with a note,
    where the profiler cannot measure it: the engine is then judged on wall time, as before."""
    from ..measure.kernel_time import measure_kernel_time

    try:
        return measure_kernel_time(run, device, stream, wall_p50_ms=wall_p50_ms, cuda_graph=cuda_graph)
    except Exception as exc:  # the kernel time qualifies the wall time; it must never replace a result
        warnings.append(f"no GPU kernel time (the gate judges wall time): {short(exc)}")
        return None


def budget_verdict(latency: Optional[LatencyStats], settings: Any) -> Optional["BudgetVerdict"]:
    """The budget's statistic against its limit with its confidence (budget.decide_budget); None without one."""
    budget = settings.budget
    if budget is None or latency is None or not latency.samples_ms:
        return None
    from ..measure.budget import decide_budget

    return decide_budget(latency.samples_ms, budget, settings.confidence)


def profile(engine: "Engine", prepared: Any, mut: "ModelUnderTest", device: str, onnx_path: Any,
            warnings: list[str], profiler: str, latency: Optional[LatencyStats] = None) -> Optional["ProfileTable"]:
    """Where the time goes, per operator and PyTorch module, by the backend's profiler, in ms per
    iteration against the stage's p50 (not when that p50 includes host-device copies the profile
    does not run); None (with a note) where it cannot be told."""
    from ..measure.profiling import ProfileUnavailable, profile_engine

    p50 = latency.p50_ms if latency is not None and not latency.includes_transfers else math.nan
    try:
        return profile_engine(engine, prepared, profiler=profiler, device=device, module=mut.module,
                              onnx_path=onnx_path, measured_ms=p50 if math.isfinite(p50) else None)
    except ProfileUnavailable as err:
        warnings.append(f"no profile: {err}")
    except Exception as exc:  # a profile explains a failure; it must never replace it
        warnings.append(f"profiling failed: {short(exc)}")
    return None


def search_max_batch(engine: "Engine", mut: "ModelUnderTest", device: str, settings: Any, lock: Lock) -> Any:
    """The largest batch whose budget holds, on this engine's own batch axis (a dynamic export).

    An engine without one (static export, CUDA graph) cannot take another batch: the search then
    records why in its first trial rather than rebuilding (that needs dynamic_batch=True).
    """
    from ..measure.max_batch import engine_batch_runner, find_max_batch
    from ..measure.timing import plan_from_settings, timer_for

    timer = timer_for(device, getattr(engine, "stream", None))
    runner = engine_batch_runner(lambda batch: engine, mut.inputs, timer, plan_from_settings(settings),
                                 close_each=False)
    with lock(device):
        return find_max_batch(runner, settings.budget, settings.max_batch_search, confidence=settings.confidence)


def device_memory_tracker(device: str) -> Any:
    """Every allocator's device memory around the build and the run (CUDA only; None on the CPU)."""
    from ..measure.memory import DeviceMemoryTracker

    return DeviceMemoryTracker.start(device)


def device_memory(tracker: Any, device: str) -> Any:
    from ..measure.memory import torch_allocator_figures

    peak, reserved = torch_allocator_figures(device)
    return tracker.result(torch_peak_bytes=peak, torch_reserved_bytes=reserved)


def reference_latency(eager: Any, artifacts: Any, device: str, settings: Any, lock: Lock) -> Optional[LatencyStats]:
    """The eager FP32 engine timed under the same plan and lock as every engine, for the speedup column."""
    from ..backends.base import BuildRequest
    from ..backends import reference_spec

    engine = eager.build(BuildRequest(spec=reference_spec(), artifacts=artifacts, device=device))
    try:
        return measure(engine, engine.prepare(artifacts.model.inputs), artifacts.model, device, settings, lock)
    except StageFailure:
        return None  # the speedup column stays empty; the item's own figures stand
    finally:
        engine.close()

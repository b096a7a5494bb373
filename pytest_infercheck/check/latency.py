"""The latency stage: the timing plan from the settings, the timing lock, the timer, the budget verdict.

The timers and the statistics are timing.py's; this module decides what is timed, under which
lock, and what the budget says about it.
"""

from __future__ import annotations

import traceback
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Optional

from ..results import Failure, LatencyStats
from ..spec import Stage
from .failure import StageFailure, short

if TYPE_CHECKING:
    from ..backends.base import Engine
    from ..model import ModelUnderTest


def timing_plan(settings: Any) -> Any:
    from ..timing import TimingPlan

    return TimingPlan(warmup=settings.warmup, min_iters=settings.min_iters,
                      max_iters=max(settings.max_iters, 1), min_time=settings.min_time)


def measure(engine: "Engine", prepared: Any, mut: "ModelUnderTest", device: str, settings: Any,
            lock: Callable[[str], ContextManager[Any]]) -> LatencyStats:
    """Stage LATENCY: the engine timed on prepared inputs (or host to host with time_transfers)."""
    from ..timing import timer_for

    timer = timer_for(device, getattr(engine, "stream", None))
    run: Callable[[], Any] = lambda: engine.run(prepared)  # noqa: E731
    transfers = bool(settings.time_transfers and device.startswith("cuda"))
    if transfers:
        # Host inputs in, host outputs out: what a caller holding CPU tensors waits for.
        run = lambda: engine.to_numpy(engine.run(engine.prepare(mut.inputs)))  # noqa: E731
    with lock(device):
        try:
            return timer.measure(run, timing_plan(settings), batch_size=mut.batch_size, includes_transfers=transfers)
        except Exception as exc:
            raise StageFailure(Stage.LATENCY, f"timing the engine failed: {short(exc)}", traceback.format_exc()) from None


def budget_failures(latency: Optional[LatencyStats], budget: Any) -> list[Failure]:
    """The budget verdict: a failure when the budget's statistic is over its limit."""
    if budget is None or latency is None:
        return []
    value = latency.statistic(budget.statistic)
    if value <= budget.limit_ms:
        return []
    return [Failure(Stage.LATENCY, f"{budget.statistic} {value:.3f} ms > budget {budget.limit_ms:g} ms "
                                   f"(over by {value / budget.limit_ms - 1:.1%}; {latency.describe()})")]


def no_lock(device: str) -> ContextManager[Any]:
    return nullcontext()


def reference_latency(eager: Any, artifacts: Any, device: str, settings: Any,
                      lock: Callable[[str], ContextManager[Any]]) -> Optional[LatencyStats]:
    """The eager FP32 engine timed under the same plan and lock as every engine, for the speedup column."""
    from ..backends.base import BuildRequest
    from .reference import REFERENCE_SPEC

    engine = eager.build(BuildRequest(spec=REFERENCE_SPEC, artifacts=artifacts, device=device))
    try:
        return measure(engine, engine.prepare(artifacts.model.inputs), artifacts.model, device, settings, lock)
    except StageFailure:
        return None  # the speedup column stays empty; the item's own figures stand
    finally:
        engine.close()

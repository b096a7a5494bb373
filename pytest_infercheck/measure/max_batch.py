"""The largest batch whose latency budget still holds: powers of two, then bisection.

``find_max_batch`` is a pure search over a function that times the engine at a batch size and
returns the samples; it assumes latency grows with the batch (true of every engine worth
batching) and judges each batch with the budget's confidence decision (budget.decide_budget).
A batch that raises (out of memory, a shape the engine cannot take) does not hold.

The engine needs a batch axis: a dynamic-batch export (ONNX Runtime, TensorRT with a profile) or
an engine rebuilt per batch (a CUDA graph captures one graph per shape): ``engine_batch_runner``
takes a factory for that.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from ..core import defaults
from .budget import BudgetVerdict, decide_budget
from .budget import Budget


@dataclass(frozen=True)
class BatchTrial:
    batch: int
    verdict: Optional[BudgetVerdict]  # None when the batch could not run
    throughput: float  # items per second at the mean latency
    error: Optional[str] = None

    @property
    def holds(self) -> bool:
        # Undecided counts by its point estimate here: the search needs a side, and says which batches it tried.
        return self.verdict is not None and self.verdict.passed and self.verdict.estimate_within

    def describe(self) -> str:
        if self.verdict is None:
            return f"batch {self.batch}: did not run ({self.error})"
        return f"batch {self.batch}: {self.verdict.describe()}; {self.throughput:.4g} items/s"


@dataclass(frozen=True)
class MaxBatchResult:
    budget: Budget
    limit: int
    batch: Optional[int]  # the largest batch that holds; None when batch 1 does not
    throughput: Optional[float]  # at that batch
    trials: tuple[BatchTrial, ...] = field(default_factory=tuple)

    def describe(self) -> str:
        tried = ", ".join(f"{t.batch}{'' if t.holds else '✗'}" for t in self.trials)
        if self.batch is None and self.trials and self.trials[0].verdict is None:  # not a budget missed: no run
            return f"searched nothing within {self.budget}: {self.trials[0].describe()}"
        if self.batch is None:
            return f"no batch meets {self.budget} (tried {tried}): {self.trials[0].describe() if self.trials else ''}"
        capped = " (the search limit)" if self.batch == self.limit else ""
        return (f"largest batch within {self.budget}: {self.batch}{capped}, {self.throughput:.4g} items/s "
                f"(tried {tried}; ✗ = over budget or failed)")

def find_max_batch(run_at_batch: Callable[[int], Sequence[float]], budget: Budget, limit: int, *,
                   confidence: float = defaults.CONFIDENCE) -> MaxBatchResult:
    """Largest batch in 1..limit whose budget holds: 1, 2, 4, ... until one fails, then bisect."""
    if limit < 1:
        raise ValueError(f"max-batch search limit {limit!r} must be at least 1")
    trials: dict[int, BatchTrial] = {}

    def holds(batch: int) -> bool:
        if batch not in trials:
            trials[batch] = _trial(run_at_batch, batch, budget, confidence)
        return trials[batch].holds

    good, bad = 0, None
    batch = 1
    while True:
        if not holds(batch):
            bad = batch
            break
        good = batch
        if batch >= limit:
            break
        batch = min(batch * 2, limit)
    while bad is not None and bad - good > 1:
        middle = (good + bad) // 2
        if holds(middle):
            good = middle
        else:
            bad = middle
    ordered = tuple(trials[b] for b in trials)
    if good == 0:
        return MaxBatchResult(budget, limit, None, None, ordered)
    return MaxBatchResult(budget, limit, good, trials[good].throughput, ordered)


def _trial(run_at_batch: Callable[[int], Sequence[float]], batch: int, budget: Budget, confidence: float) -> BatchTrial:
    try:
        samples = list(run_at_batch(batch))
    except Exception as exc:  # an OOM or a shape the engine refuses: this batch does not hold
        return BatchTrial(batch, None, math.nan, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    if not samples:
        return BatchTrial(batch, None, math.nan, "no samples")
    mean = float(sum(samples) / len(samples)) if len(samples) else math.nan
    return BatchTrial(batch, decide_budget(samples, budget, confidence), batch * 1000.0 / mean if mean > 0 else math.nan)


def inputs_at_batch(inputs: Sequence[Any], batch: int) -> tuple[Any, ...]:
    """The example inputs resized along dim 0: repeated rows, cut to ``batch``."""
    import torch

    resized = []
    for tensor in inputs:
        if not isinstance(tensor, torch.Tensor) or tensor.dim() == 0:
            resized.append(tensor)
            continue
        repeats = -(-batch // tensor.shape[0])
        resized.append(tensor.repeat(repeats, *([1] * (tensor.dim() - 1)))[:batch].contiguous())
    return tuple(resized)


def engine_batch_runner(make_engine: Callable[[int], Any], inputs: Sequence[Any], timer: Any, plan: Any, *,
                        close_each: bool = True) -> Callable[[int], list[float]]:
    """``run_at_batch`` for find_max_batch: the engine for a batch from ``make_engine`` (a rebuild per
    batch, closed after its timing; or, with ``close_each=False``, one dynamic-batch engine the caller
    closes), timed by ``timer`` under ``plan``."""

    def run_at_batch(batch: int) -> list[float]:
        engine = make_engine(batch)
        try:
            prepared = engine.prepare(inputs_at_batch(inputs, batch))
            engine.run(prepared)  # a shape the engine cannot take fails here, before timing
            return list(timer.measure(lambda: engine.run(prepared), plan, batch_size=batch).samples_ms)
        finally:
            if close_each:
                engine.close()

    return run_at_batch

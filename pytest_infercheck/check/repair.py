"""The mixed-precision repair (``repair_precision``, docs/precision.md): after a reduced-precision
engine failed accuracy, the smallest set of PyTorch modules to keep in FP32 that makes the same
backend's engine pass, verified and timed.

1. The per-module comparison (module_errors.py) ranks the modules where the error starts: forward
   hooks on the eager model at the engine's dtype (FP16/BF16) or on torchao's quantized copy (the
   PyTorch backends' INT8/FP8), or the engine's ONNX model against the FP32 export (ONNX INT8).
2. Greedy: keep the first candidate, rebuild the engine with that keep-list (the normal build path,
   a request whose keep_fp32 is set: the cache keys include it) and check it against the same
   reference; while it fails, compare again with the list kept and add the next module found.
3. Shrink: drop each module whose removal still passes, earliest first.
4. Each passing engine is timed while it is built (the normal timer, a short plan): the answer's
   p50 against the failing engine's under the same plan (timed before it was closed: short_p50).

``repair_time`` caps it: checked before every rebuild after the first (a rebuild that started runs
to its end).  The outcome is a fact (results.RepairResult); the verdict says what it means.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..model.precision import KEEP_FP32_GAP, keep_list
from ..measure.results import AccuracyResult, RepairResult, RepairTrial
from .failure import StageFailure, StageSkip, short

if TYPE_CHECKING:
    from ..model.under_test import ModelUnderTest
    from .context import CheckContext
    from .reference import Reference

PRECISIONS = ("fp16", "bf16", "int8", "fp8")
# Below INT8's own step (1/127): a quantized matrix product adds ~1e-2 to exact inputs, and that is where its
# error starts; the jump is measured against this floor, not against a step that would hide it.
INT8_EPSILON = 1e-3
# FP8 E4M3 (3-bit mantissa, unit roundoff 2^-4) leaves about 3% on one matrix product of exact inputs (the H100's
# ViT-ish stack: 0.025 over six blocks): against INT8's floor every first quantized layer would jump 30-60x and
# rank above a real cause further on.  A jump is measured against one product's own error instead.
FP8_EPSILON = 2.0 ** -5
QUANTIZED_EPSILON = {"int8": INT8_EPSILON, "fp8": FP8_EPSILON}
SHORT_TIMING = {"max_time": 0.5, "min_time": 0.05, "min_iters": 5}  # the passing engine's p50, not a benchmark


def applies(request: Any, failing: AccuracyResult) -> bool:
    """Whether the search runs for this engine's accuracy failure: a reduced precision it covers, outputs
    of the reference's structure (a missing or extra output is no precision to keep)."""
    return request.spec.precision in PRECISIONS and failing.structure_error is None


class NotHonoured(Exception):
    """The backend builds the same engine whatever keep_fp32 says (precision.not_honoured)."""


@dataclasses.dataclass
class Searched:
    """What the search found so far, local to one repair (the record it becomes is frozen): built once
    into a RepairResult by ``result``, also when the search stopped on an exception."""

    trials: list[RepairTrial] = dataclasses.field(default_factory=list)
    candidates: list[str] = dataclasses.field(default_factory=list)
    note: str = ""
    tried: int = 0
    best: Optional[RepairTrial] = None  # the passing keep-list's trial, or the closest one

    def result(self, job: "Repairing", seconds: float) -> RepairResult:
        failing_rel_err, failing_nonfinite = _worst(job.failing)
        best, p50_ms, p50_change = self.best, None, None
        if best is not None and best.passed:
            p50_ms = best.p50_ms
            p50_change = p50_ms / job.failing_p50 - 1 if p50_ms is not None and job.failing_p50 else None
        return RepairResult(job.request.spec.id,
                            best.keep_fp32 if best is not None else tuple(job.settings.keep_fp32),
                            best.passed if best is not None else False,
                            best.rel_err if best is not None else math.nan,
                            best.nonfinite if best is not None else 0,
                            failing_rel_err, failing_nonfinite, p50_ms=p50_ms, p50_change=p50_change,
                            failing_p50_ms=job.failing_p50, tried=self.tried,
                            seconds=seconds, cap_s=job.settings.repair_time, candidates=tuple(self.candidates),
                            trials=tuple(self.trials), note=self.note)


@dataclasses.dataclass
class Repairing:
    """What the search needs from the failed check: the engine's backend, request and reference."""

    context: "CheckContext"
    backend: Any
    request: Any  # the failed engine's BuildRequest: trials copy it with another keep_fp32
    mut: "ModelUnderTest"
    expected: "Reference"
    settings: Any
    tolerances: tuple[Any, Any]  # (base, per output) as the accuracy stage judged
    failing: AccuracyResult
    failing_p50: Optional[float]  # under the short plan its trials are timed with (short_p50)


def repair(job: Repairing) -> RepairResult:
    """The search; a repair that cannot run says why in its note (a diagnosis, never a second failure)."""
    start = time.monotonic()
    found = Searched()
    try:
        _search(job, found, start)
    except NotHonoured as gap:  # every list would build the same engine: nothing to search
        found.note, found.trials = str(gap), []
    except Exception as exc:  # the failure stands as measured; the repair says what stopped it
        found.note = f"the repair failed: {short(exc)}"
    return found.result(job, time.monotonic() - start)


def _search(job: Repairing, found: Searched, start: float) -> None:
    user = list(job.settings.keep_fp32)
    profile = _profiler(job)
    if profile is None:
        found.note = f"no per-module comparison for {job.request.spec.id} (it runs no ONNX model to compare node by node)"
        return
    trials: dict[tuple[str, ...], RepairTrial] = {}

    def within_cap() -> bool:
        return not trials or time.monotonic() - start < job.settings.repair_time

    def trial(names: Sequence[str]) -> RepairTrial:
        keep = keep_list([*user, *names])
        key = tuple(sorted(keep))
        if key not in trials:
            trials[key] = _trial(job, keep)
            found.trials.append(trials[key])
        return trials[key]

    kept: list[str] = []
    passing: Optional[list[str]] = None
    from ..model.onnx_variants import NothingQuantized

    while within_cap():
        try:
            ranked = profile([*user, *kept])
        except NothingQuantized:  # the list covers every quantized operator: what is left is no INT8 engine
            found.note = (f"keeping {', '.join([*user, *kept])} leaves nothing quantized: no keep-list short of "
                          "every quantized module makes it pass (an engine with nothing quantized is no INT8 engine)")
            break
        found.candidates += [candidate.name for candidate in ranked if candidate.name not in found.candidates]
        if not ranked and kept:
            # Keeping the module where the error showed did not make it pass, and nothing else stands out: the
            # rounding of what feeds it, which it amplifies, is left. Keep the modules that computed its inputs.
            feeding = [name for name in _feeding(job, kept) if name not in kept and name not in user]
            if feeding and within_cap() and trial([*kept, *feeding]).passed:
                passing = [*kept, *feeding]
                break
            found.note = (f"the per-module comparison finds no module where the error starts once {', '.join(kept)} "
                          "are kept: what is left reaches them through their inputs" +
                          (f" (computed by {', '.join(feeding)}, kept as well without passing)" if feeding else "") +
                          " or starts in code outside the modules (a softmax, an exp, a large sum written in a "
                          "forward)")
            break
        if not ranked:
            found.note = ("the per-module comparison finds no module where the error starts" +
                          outside_modules(job.mut, job.request.spec.precision) +
                          # The eager FP16/INT8-vs-FP32 comparison cannot see an error of the export itself (a
                          # Qwen2's fully masked rows differed in FP32 ONNX already: newcomer trial 5).
                          (f"; unless {job.request.spec.backend}-fp32 fails alike, in which case the error is the "
                           "export's, not the precision's, and no keep-list mends it"
                           if job.request.spec.backend != "eager" else ""))
            break
        kept.append(ranked[0].name)
        if trial(kept).passed:
            passing = list(kept)
            break
    if passing is not None:
        # The one module added last made it pass, so the others may be redundant; where several were added together
        # (the modules that feed a kept one), any of them may be.
        for name in list(passing if len(passing) > len(kept) else passing[:-1]):
            if not within_cap():
                break
            fewer = [other for other in passing if other != name]
            if trial(fewer).passed:
                passing = fewer
    elif kept and not within_cap():
        found.note = f"stopped at the cap after {len(trials)} rebuild(s)"
    found.tried = len(trials)
    found.best = trials[tuple(sorted(keep_list([*user, *passing])))] if passing is not None else (
        min(trials.values(), key=lambda t: (bool(t.stopped), t.nonfinite, _finite(t.rel_err))) if trials else None)


def _reason_line(text: str) -> str:
    """A stage failure in one line: its first, and the reason under it where the first ends in a colon ("the
    onnxruntime backend could not build onnxruntime-int8:" said nothing alone)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return text
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def _feeding(job: Repairing, kept: Sequence[str]) -> list[str]:
    """The modules that computed the inputs of ``kept`` in an FP32 eager run (module_errors.module_producers);
    [] where the run cannot say (a diagnosis, never a second failure)."""
    from ..model.module_errors import module_producers

    try:
        producers = module_producers(job.mut.module, job.mut.inputs, job.request.device)
    except Exception:
        return []
    return list(dict.fromkeys(name for module in kept for name in producers.get(module, ())))


def outside_modules(mut: "ModelUnderTest", precision: str) -> str:
    """Where an error no submodule starts comes from, and what to do: code outside every submodule (the
    model's own forward, or a parent's forward between its children), which keep_fp32 cannot name. What
    such code is differs: at FP16/BF16 an overflow or a lost digit (an exp, a softmax, a large sum), at
    INT8/FP8 a matrix product written as a call (F.linear, x @ w) that the quantization reached."""
    owner = type(mut.module).__name__
    if precision in ("int8", "fp8"):
        culprit = ("a matrix product written as a call there (F.linear, x @ w, torch.matmul), quantized with the "
                   "modules; move it into a submodule (an nn.Linear) of its own to keep it out of the quantization")
        gauge = "none departs from the unquantized model's output by more than its inputs did"
    else:
        culprit = ("move that code (a softmax, an exp, a large sum) into a submodule of its own to keep it in FP32")
        gauge = "none departs from FP32 by more than its inputs did with an FP32 output the precision can hold"
    return (f": no submodule keep_fp32 could keep starts it ({gauge}), so it starts in code outside them: in "
            f"{owner}.forward itself, or in a parent's forward between its children; keep_fp32 keeps modules only: "
            f"{culprit}")


def _profiler(job: Repairing) -> Optional[Callable[[Sequence[str]], list[Any]]]:
    """keep-list -> the ranked candidates, by forward hooks (FP16/BF16; torchao's INT8/FP8 copy) or the
    engine's ONNX model (INT8 of ONNX Runtime and TensorRT)."""
    from ..backends import torchao_quant
    from ..backends.torch_engine import TorchBackendBase, quantized_copy
    from ..model.module_errors import candidates, onnx_module_errors, torch_module_errors

    precision, mut, device = job.request.spec.precision, job.mut, job.request.device
    if torchao_quant.is_quantized(precision) and isinstance(job.backend, TorchBackendBase):
        import torch

        def quantized(keep: Sequence[str]) -> list[Any]:
            # The engine's own copy before compilation (BF16, keep in FP32, the other nn.Linear layers quantized by
            # the same method: dynamic or static scales, FP8 granularity) as the engine that failed.
            copy = quantized_copy(_with_keep(job.request, keep))
            # A kept module's output is cast back to BF16, whose range is FP32's: no output is too large to keep.
            return candidates(torch_module_errors(mut.module, mut.inputs, torch.bfloat16, device, keep, copy),
                              math.inf, QUANTIZED_EPSILON[precision], keep)

        return quantized
    if precision in ("fp16", "bf16"):
        import torch

        from ..model.under_test import DTYPES

        dtype = DTYPES[precision]
        info = torch.finfo(dtype)
        return lambda keep: candidates(torch_module_errors(mut.module, mut.inputs, dtype, device, keep),
                                       info.max, info.eps, keep)
    if job.backend.onnx_model(job.request) is None:
        return None
    from ..model.divergence import feeds_for

    reference = job.request.artifacts.onnx_path()
    feeds = feeds_for(reference, mut.inputs)

    def ranked(keep: Sequence[str]) -> list[Any]:
        # NothingQuantized (``keep`` covers every quantized operator) goes to the search, which says so.
        model = job.backend.onnx_model(_with_keep(job.request, keep))
        return candidates(onnx_module_errors(reference, model, feeds), math.inf, QUANTIZED_EPSILON[precision], keep)

    return ranked


def _trial(job: Repairing, keep: list[str]) -> RepairTrial:
    """The same backend's engine rebuilt with ``keep`` in FP32, checked against the same reference."""
    from . import accuracy, build

    started = time.monotonic()
    request = _with_keep(job.request, keep)
    try:
        engine = _build(job, request)
    except (StageFailure, StageSkip) as failure:
        return RepairTrial(tuple(keep), False, math.nan, 0, time.monotonic() - started,
                           stopped=_reason_line(str(failure)))
    if request.recipe is not None and request.recipe.not_honoured:
        engine.close()
        raise NotHonoured(f"{KEEP_FP32_GAP} by {request.spec.id}: {request.recipe.not_honoured}")
    try:
        prepared, outputs = build.first_run(engine, request.spec, job.mut.inputs)
        result = accuracy.compare(outputs, job.expected, *job.tolerances)
        seconds = time.monotonic() - started
        rel_err, nonfinite = _worst(result)
        # A passing engine is timed now, while it is built: the answer's p50 needs no rebuild.
        p50 = short_p50(engine, prepared, job.mut, job.request.device, job.settings, job.context.timing_lock) \
            if result.passed else None
    except StageFailure as failure:
        return RepairTrial(tuple(keep), False, math.nan, 0, time.monotonic() - started,
                           stopped=_reason_line(str(failure)))
    finally:
        engine.close()
    return RepairTrial(tuple(keep), result.passed, rel_err, nonfinite, seconds, p50_ms=p50)


def _with_keep(request: Any, keep: Sequence[str]) -> Any:
    """The failed engine's request with another keep-list (its notes and recipe are the new build's own)."""
    return dataclasses.replace(request, keep_fp32=tuple(keep), notes=[], recipe=None)


def _build(job: Repairing, request: Any) -> Any:
    from . import build

    with job.context.build_lock():
        return build.build_engine(job.backend, request, deadline=build.Deadline(job.settings.build_timeout),
                                  progress=job.context.progress, attempt=build.Attempt())


def short_p50(engine: Any, prepared: Any, mut: "ModelUnderTest", device: str, settings: Any,
              timing_lock: Any) -> Optional[float]:
    """An engine's median latency under the repair's short plan (None when it cannot be timed): the
    failing engine's before it is closed, and each passing keep-list's, so the answer's change compares
    the same plan."""
    from . import latency

    short_plan = {name: min(getattr(settings, name), value) for name, value in SHORT_TIMING.items()}
    try:
        return latency.measure(engine, prepared, mut, device, dataclasses.replace(settings, **short_plan),
                               timing_lock).p50_ms
    except StageFailure:
        return None


def _worst(result: AccuracyResult) -> tuple[float, int]:
    """(the largest relative error over the outputs, their NaN/Inf count)."""
    outputs = result.outputs
    return (max((o.rel_l2 for o in outputs), default=math.nan, key=_finite), sum(o.nonfinite for o in outputs))


def _finite(value: float) -> float:
    return value if not math.isnan(value) else math.inf

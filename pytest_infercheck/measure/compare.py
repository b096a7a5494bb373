"""Comparing an engine's outputs with the eager reference: metrics, tolerances, the worst element."""

from __future__ import annotations

from dataclasses import replace
from typing import Mapping, Optional, Sequence

import numpy as np

from .results import AccuracyResult, OutputAccuracy, Tolerance

# Why these numbers.  The verdict rests on the relative error ||out - ref|| / ||ref|| and the
# cosine, which judge the output as a whole; the elementwise allclose rule catches a few elements
# gone far astray, with room for the near-zero elements whose relative error means nothing.
# - FP32: engines differ from eager only by operation order (fused kernels, other GEMM blockings),
#   a few ulps per layer: rel err ~1e-7..1e-6 measured; 1e-4 would flag a TF32 slip (~3e-4).
# - FP16: 10-bit mantissa (unit roundoff 4.9e-4), errors grow with depth.  Measured on the H100:
#   resnet50 rel err 6.7e-4 (eager) and 1.1e-3 (Inductor), BERT-base 1.7e-3, with 1-1.7% of the
#   logits outside atol=rtol=1e-2.  Bounds: rel err 5e-3, 5% of elements.
# - BF16: 7-bit mantissa (3.9e-3), 8x FP16's roundoff: resnet50 5.4e-3 (eager) to 1.1e-2
#   (Inductor) measured.  Bounds: rel err 3e-2.
# - INT8: every activation rounds to one of 255 levels; a well-calibrated CNN lands near 1e-2, a
#   badly calibrated one at 0.3-0.6 (tests/test_plugin.py).  Bounds: rel err 0.1, cosine 0.99.
# - FP8 (E4M3, torchao): a 3-bit mantissa, unit roundoff 2^-4.  Each operand is scaled per row (or
#   per tensor) into E4M3's range and rounds relatively: RMS 2^-4/sqrt(3) ~ 3.6% per element, so one
#   quantized matrix product (FP32 accumulation) lands near 3-5% relative error, like INT8's 1/127
#   step at a typical |x|/amax, and independent layers add in quadrature.  Bounds: INT8's (rel err
#   0.1, cosine 0.99, 5% of elements beyond atol=rtol=0.1); a deep stack sets its own max_rel_l2.
DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, rtol=1e-3, max_mismatch=0.0, min_cosine=0.99999, max_rel_l2=1e-4),
    "fp16": Tolerance(atol=1e-2, rtol=1e-2, max_mismatch=0.05, min_cosine=0.9999, max_rel_l2=5e-3),
    "bf16": Tolerance(atol=5e-2, rtol=5e-2, max_mismatch=0.05, min_cosine=0.999, max_rel_l2=3e-2),
    "int8": Tolerance(atol=1e-1, rtol=1e-1, max_mismatch=0.05, min_cosine=0.99, max_rel_l2=1e-1),
    "fp8": Tolerance(atol=1e-1, rtol=1e-1, max_mismatch=0.05, min_cosine=0.99, max_rel_l2=1e-1),
}


def tolerance_for(
    precision: str,
    *,
    atol: Optional[float] = None,
    rtol: Optional[float] = None,
    max_mismatch: Optional[float] = None,
    min_cosine: Optional[float] = None,
    max_rel_l2: Optional[float] = None,
) -> Tolerance:
    """The precision's default tolerance with any given field replaced."""
    given = dict(atol=atol, rtol=rtol, max_mismatch=max_mismatch, min_cosine=min_cosine, max_rel_l2=max_rel_l2)
    overrides = {k: v for k, v in given.items() if v is not None}
    return replace(DEFAULT_TOLERANCES[precision], **overrides)


def compare_outputs(
    engine_outputs: Sequence[np.ndarray],
    reference: Sequence[tuple[str, np.ndarray]],
    tolerance: Tolerance,
    per_output: Optional[Mapping[str, Tolerance]] = None,
) -> AccuracyResult:
    """Pair outputs by position and measure each; a count, shape or dtype mismatch is a structure error."""
    if len(engine_outputs) != len(reference):
        return AccuracyResult(structure_error=(
            f"the engine returned {len(engine_outputs)} outputs, the reference {len(reference)} "
            f"({', '.join(name for name, _ in reference)})"))
    problems = []
    for (name, ref), out in zip(reference, engine_outputs):
        if tuple(out.shape) != tuple(ref.shape):
            problems.append(f"output {name!r}: engine shape {tuple(out.shape)} vs reference shape {tuple(ref.shape)}")
        elif _kind(out) != _kind(ref):
            problems.append(f"output {name!r}: engine dtype {out.dtype} vs reference dtype {ref.dtype}")
    if problems:
        return AccuracyResult(structure_error="; ".join(problems))
    per_output = per_output or {}
    outputs = tuple(measure_output(name, out, ref, per_output.get(name, tolerance))
                    for (name, ref), out in zip(reference, engine_outputs))
    return AccuracyResult(outputs=outputs)


def _kind(array: np.ndarray) -> str:
    """Floating outputs may change width (an fp16 engine); integer and bool ones must not turn float."""
    return "float" if np.issubdtype(array.dtype, np.floating) else str(array.dtype)


def measure_output(name: str, engine: np.ndarray, reference: np.ndarray, tolerance: Tolerance) -> OutputAccuracy:
    """All metrics of one output against its reference, and the reasons it fails, if any."""
    out = np.asarray(engine, dtype=np.float64).reshape(-1)
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    total = int(ref.size)
    nonfinite = int(np.count_nonzero(~np.isfinite(out) & np.isfinite(ref)))
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.abs(out - ref)
        diff = np.where(np.isnan(diff) & ~(np.isnan(out) & np.isnan(ref)), np.inf, diff)
        diff = np.nan_to_num(diff, nan=0.0, posinf=np.inf)  # NaN where both are NaN counts as equal; Inf stays Inf
        rel = diff / np.maximum(np.abs(ref), np.finfo(np.float32).tiny)
        allowed = tolerance.atol + tolerance.rtol * np.abs(ref)
        excess = diff - allowed
        mean_abs = float(diff.mean()) if total else 0.0  # inf when an element is inf: that is the truth
    exact = not np.issubdtype(np.asarray(reference).dtype, np.floating)
    if exact:  # an integer or bool output: an element is right or wrong, whatever the distance
        excess = (out != ref).astype(np.float64)
    mismatched = int(np.count_nonzero(excess > 0))
    worst_flat = int(np.argmax(excess)) if total else 0
    accuracy = OutputAccuracy(
        name=name,
        shape=tuple(int(n) for n in reference.shape),
        max_abs=float(diff.max()) if total else 0.0,
        max_rel=float(rel.max()) if total else 0.0,
        mean_abs=mean_abs,
        rel_l2=_relative_l2(out, ref),
        cosine=_cosine(out, ref),
        mismatched=mismatched,
        total=total,
        worst_index=tuple(int(i) for i in np.unravel_index(worst_flat, reference.shape)) if total else (),
        worst_value=float(out[worst_flat]) if total else 0.0,
        worst_reference=float(ref[worst_flat]) if total else 0.0,
        nonfinite=nonfinite,
        tolerance=tolerance,
        top1_agreement=_top1_agreement(engine, reference),
        exact=exact,
    )
    return replace(accuracy, failures=tuple(_failures(accuracy)))  # the failures read the figures just made


def _relative_l2(out: np.ndarray, ref: np.ndarray) -> float:
    finite = np.isfinite(out) & np.isfinite(ref)
    if not finite.all():
        return float("inf") if (np.isfinite(ref) & ~np.isfinite(out)).any() else 0.0
    norm = float(np.linalg.norm(ref))
    err = float(np.linalg.norm(out - ref))
    return err / norm if norm > 0 else err


def _cosine(out: np.ndarray, ref: np.ndarray) -> float:
    if not (np.isfinite(out).all() and np.isfinite(ref).all()):
        return float("nan")
    norms = float(np.linalg.norm(out)) * float(np.linalg.norm(ref))
    if norms == 0.0:
        # two all-zero tensors agree perfectly; one zero and one not do not at all
        return 1.0 if not out.any() and not ref.any() else 0.0
    return float(np.dot(out, ref) / norms)


def _top1_agreement(engine: np.ndarray, reference: np.ndarray) -> Optional[float]:
    """For classifier-like outputs (batch x classes, floating): share of rows whose argmax agrees."""
    if reference.ndim != 2 or reference.shape[1] < 2 or not np.issubdtype(reference.dtype, np.floating):
        return None
    return float(np.mean(np.argmax(engine, axis=1) == np.argmax(reference, axis=1)))


def _failures(acc: OutputAccuracy) -> list[str]:
    tol = acc.tolerance
    failures = []
    if acc.exact:
        # Class indices, counts, masks: cosine and relative error of indices say nothing (index 7 for 6 is
        # "closer" than 0 for 6); the share of elements that differ is the figure.
        if acc.mismatch_ratio > tol.max_mismatch:
            failures.append(f"{acc.mismatched}/{acc.total} elements ({acc.mismatch_ratio:.2%}) differ from the "
                            f"reference (an integer output, compared exactly; allowed {tol.max_mismatch:.2%})")
        return failures
    if acc.nonfinite:
        failures.append(f"the engine produced {acc.nonfinite} NaN/Inf element(s) where the reference is finite")
    if acc.mismatch_ratio > tol.max_mismatch:
        failures.append(
            f"{acc.mismatched}/{acc.total} elements ({acc.mismatch_ratio:.2%}) exceed atol={tol.atol:g} + "
            f"rtol={tol.rtol:g}*|ref| (allowed {tol.max_mismatch:.2%}); max abs err {acc.max_abs:.4g}")
    if not acc.rel_l2 <= tol.max_rel_l2:  # written so that NaN fails
        failures.append(f"relative error {acc.rel_l2:.3g} > {tol.max_rel_l2:g}")
    if not acc.cosine >= tol.min_cosine:  # written so that NaN fails
        failures.append(f"cosine similarity {acc.cosine:.6f} < {tol.min_cosine:g}")
    if tol.min_top1 is not None and acc.top1_agreement is not None and acc.top1_agreement < tol.min_top1:
        failures.append(f"top-1 agreement {acc.top1_agreement:.2%} < {tol.min_top1:.2%}")
    return failures

"""The accuracy stage: per-output tolerances, the comparison with the reference, the dynamic-batch
re-check, and (on a failure) the first divergent node.

The comparison itself is compare.py's (pure); this module decides what is compared with what.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, Mapping, Optional

from ..measure.results import AccuracyResult, Divergence, DynamicBatchCheck, Tolerance
from ..config.settings import TOLERANCE_KEYS
from ..core.spec import Stage
from .failure import BATCH_OF_ONE, StageFailure, short
from .reference import Reference, reference_outputs

if TYPE_CHECKING:
    from ..backends.base import Backend, BuildRequest, Engine
    from ..model.under_test import ModelUnderTest


def tolerances(precision: str, settings: Any, output_names: list[str]) -> tuple[Tolerance, dict[str, Tolerance]]:
    """The precision's default with the settings' overrides, and the per-output ones by full output name."""
    from ..measure.compare import tolerance_for
    from ..model.outputs import OutputNameError, resolve_output_name

    base = tolerance_for(precision, **{key: getattr(settings, key) for key in TOLERANCE_KEYS})
    try:  # short names (logits) and full ones (output['logits']) alike
        named = {resolve_output_name(name, output_names): fields for name, fields in settings.tolerances.items()}
    except OutputNameError as err:
        raise StageFailure(Stage.ACCURACY, f"tolerances: {err}") from None
    per_output = {name: tolerance_for(precision, **{**asdict_tolerance(base), **fields})
                  for name, fields in named.items()}
    return base, per_output


def asdict_tolerance(tolerance: Tolerance) -> dict[str, Any]:
    return {key: value for key, value in asdict(tolerance).items() if key in TOLERANCE_KEYS}


def compare(outputs: list[Any], reference: Reference, base: Tolerance,
            per_output: Mapping[str, Tolerance]) -> AccuracyResult:
    from ..measure.compare import compare_outputs

    return compare_outputs(outputs, reference, base, per_output)


def masked_positions_note(outputs: list[Any], reference: Reference, found: AccuracyResult, inputs: Any) -> str:
    """Where every failing output is within tolerance once the positions the example's attention mask masks out
    are left aside, the note that says so ("" otherwise).  Those positions (a left-padded sequence's pad rows)
    hold values no consumer reads, and eager attention and an export fill them differently: a failure there is
    the padding's, not the engine's (newcomer trial 5: a Qwen2 export's whole error lay in three pad rows)."""
    import numpy as np

    from ..measure.compare import measure_output

    masks = [(name, t.detach().cpu().numpy()) for name, t in inputs.named()
             if name.split(".")[-1].endswith("attention_mask") and t.dim() == 2]
    if len(masks) != 1 or found.structure_error is not None:
        return ""
    name, mask = masks[0]
    padded = mask == 0
    if not padded.any():
        return ""
    by_name = dict(reference)
    failing = [(index, output) for index, output in enumerate(found.outputs) if not output.passed]
    if not failing:
        return ""
    for index, output in failing:
        got, expected = np.asarray(outputs[index]), np.asarray(by_name[output.name])
        if got.shape != expected.shape or expected.shape[:2] != mask.shape:
            return ""
        spread = padded.reshape(padded.shape + (1,) * (expected.ndim - 2))
        if measure_output(output.name, np.where(spread, expected, got), expected, output.tolerance).failures:
            return ""
    return (f"every element out of tolerance lies at a position {name} masks out ({int(padded.sum())} of "
            f"{padded.size} positions): padding, whose values nothing reads and which eager attention and the engine "
            "fill differently; the unmasked positions are within tolerance")


def check_doubled_batch(engine: "Engine", mut: "ModelUnderTest", device: str, tf32: bool, base: Tolerance,
                        per_output: Mapping[str, Tolerance]) -> DynamicBatchCheck:
    """A dynamic batch axis must really be dynamic: run at twice the batch and compare again."""
    doubled = mut.doubled()
    batch = doubled.batch_size
    try:
        reference = reference_outputs(doubled, device, tf32)
    except StageFailure as failure:  # the eager model itself cannot take the doubled batch
        return DynamicBatchCheck(batch, False, (f"the eager model fails at batch {batch}: {failure}",))
    try:
        outputs = engine.to_numpy(engine.run(engine.prepare(doubled.inputs)))
    except Exception as exc:
        exported = f"exported at {mut.batch_size}" + (f", likely kept there: {BATCH_OF_ONE}" if mut.batch_size == 1 else "")
        return DynamicBatchCheck(batch, False, (f"the engine rejects batch {batch} ({exported}): {short(exc)}",))
    accuracy = compare(outputs, reference, base, per_output)
    problems = ([f"at batch {batch}: {accuracy.structure_error}"] if accuracy.structure_error is not None else [])
    problems += [f"at batch {batch}: {output.describe()}" for output in accuracy.outputs if not output.passed]
    if problems and mut.batch_size == 1:  # traced from one example: a branch on the batch size took its path
        problems.append(f"exported from a batch of 1, where the trace follows the forward's path for one example "
                        f"(a branch on the batch size, a squeeze of it): {BATCH_OF_ONE}")
    return DynamicBatchCheck(batch, accuracy.passed, tuple(problems))


def locate_divergence(backend: "Backend", request: "BuildRequest", tolerance: Tolerance,
                      warnings: list[str]) -> Optional[Divergence]:
    """On an accuracy failure only: the first node of the engine's ONNX model that leaves tolerance.

    Covers engines that run an ONNX model derived from the FP32 export (the backend's ``onnx_model``);
    the FP32 export run on ONNX Runtime is the reference.
    """
    if request.spec.precision == "fp32":
        return None  # an FP32 engine runs the reference's own ONNX model: no intermediate to compare
    from ..model.divergence import feeds_for
    from ..model.divergence import locate_divergence as locate

    try:
        candidate = backend.onnx_model(request)
        if candidate is None:
            return None
        reference = request.artifacts.onnx_path()
        return locate(reference, candidate, feeds_for(reference, request.artifacts.model.inputs), tolerance)
    except Exception as exc:  # localisation explains a failure; it must never replace it
        warnings.append(f"divergence localisation failed: {short(exc)}")
        return None

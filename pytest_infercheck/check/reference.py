"""The model stage and the reference stage: the user's model and inputs, its eager FP32 outputs,
whether those outputs can judge an engine at all, and the eager reference's timing.

A comparison against an output that is all zero, constant, not finite, or too small for the
precision under test to represent checks nothing (every engine "matches" zeros); such a reference
fails the item here, naming the output, its range and what to do, instead of passing it.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

from ..spec import EngineSpec, Stage
from .failure import StageFailure, short

if TYPE_CHECKING:
    import numpy as np

    from ..model import ModelUnderTest

Reference = list[tuple[str, "np.ndarray"]]  # (output name, eager FP32 values), in the model's output order

REFERENCE_SPEC = EngineSpec("eager", "fp32")  # the engine whose timing the speedup column divides by

# Smallest normal magnitude each precision holds: a reference below it underflows in the engine.
_SMALLEST_NORMAL = {"fp32": 1.1754944e-38, "fp16": 6.1035156e-05, "bf16": 1.1754944e-38, "int8": 1.1754944e-38}


def model_under_test(model: Any, example_inputs: Any, *, dynamic_batch: bool) -> "ModelUnderTest":
    """The user's module and example inputs, checked: a wrong type fails the item at Stage.INPUTS."""
    from ..model import ModelUnderTest

    try:
        return ModelUnderTest.create(model, example_inputs, dynamic_batch=dynamic_batch)
    except TypeError as err:
        raise StageFailure(Stage.INPUTS, str(err)) from None


def reference_outputs(mut: "ModelUnderTest", device: str, tf32: bool) -> Reference:
    """The eager FP32 outputs on ``device``; the eager model failing is the item's failure."""
    from ..model import ModelCopyError, to_numpy
    from ..outputs import OutputError

    try:
        with tf32_setting(device, tf32):
            return [(name, to_numpy(tensor)) for name, tensor in mut.reference_outputs(device)]
    except OutputError as err:  # no tensor at all, a cache object: named with its type
        raise StageFailure(Stage.OUTPUTS, str(err)) from None
    except ModelCopyError as err:
        raise StageFailure(Stage.MODEL, str(err)) from None
    except Exception as exc:
        raise StageFailure(Stage.REFERENCE, f"the eager model itself failed: {short(exc)}",
                           traceback.format_exc()) from None


def judge_reference(reference: Reference, precision: str, exempt: Sequence[str] = ()) -> None:
    """Fail when an output cannot tell a right engine from a wrong one (see the module doc)."""
    from ..outputs import OutputNameError, resolve_output_name

    names = [name for name, _ in reference]
    try:
        exempted = {resolve_output_name(name, names) for name in exempt}
    except OutputNameError as err:
        raise StageFailure(Stage.REFERENCE, f"allow_degenerate: {err}") from None
    # (A model that returns no tensor at all failed earlier, at stage outputs: outputs.flatten_outputs.)
    problems = [f"{name} {problem}" for name, values in reference if name not in exempted
                for problem in [degenerate_reason(values, precision)] if problem]
    if problems:
        raise StageFailure(Stage.REFERENCE, "the eager reference cannot judge an engine:\n" + "\n".join(
            f"      output {problem}" for problem in problems) + "\n      " + _REMEDY)


_REMEDY = ("use trained weights or initialise the layer that produces it (torchvision heads start at zero), "
           "pass other example inputs, or exempt the output on purpose with allow_degenerate=['<output>']")


def degenerate_reason(values: "np.ndarray", precision: str) -> Optional[str]:
    """Why ``values`` cannot judge an engine at ``precision``, or None when they can."""
    import numpy as np

    if not np.issubdtype(values.dtype, np.floating) or values.size == 0:
        return None
    finite = np.isfinite(values)
    if not finite.all():
        bad = int((~finite).sum())
        return (f"has {bad} NaN/Inf value(s) of {values.size} in the eager reference itself: the model "
                "produces them before any engine runs")
    largest = float(np.abs(values).max())
    low, high = float(values.min()), float(values.max())
    if largest == 0.0:
        return f"is all zero ({list(values.shape)}): every engine matches zeros, so comparing checks nothing"
    if values.size > 1 and low == high:
        return f"is constant ({low:.6g} everywhere, {list(values.shape)}): it does not depend on the inputs"
    if largest < _SMALLEST_NORMAL.get(precision, 0.0):
        return (f"spans [{low:.3g}, {high:.3g}], below the smallest normal {precision.upper()} value "
                f"({_SMALLEST_NORMAL[precision]:.3g}): the engine's output underflows to zero")
    return None


@contextmanager
def tf32_setting(device: str, allow: bool) -> Iterator[None]:
    """The CUDA reference is true FP32 unless the user allows TF32: save, set, restore torch's flags."""
    if not device.startswith("cuda"):
        yield
        return
    import torch

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def describe_reference(device: str, tf32: bool) -> str:
    return f"eager FP32 on {device}" + (f", TF32 {'on' if tf32 else 'off'}" if device.startswith("cuda") else "")

"""The model stage and the reference stage: the user's model and inputs, its eager FP32 outputs,
whether those outputs can judge an engine at all, and the eager reference's timing.

A comparison against an output that is empty, all zero, constant, not finite, or too small for the
precision under test to represent checks nothing (every engine "matches" zeros); such a reference
fails the item here, naming the output, its range and what to do, instead of passing it.  So does
a reference that differs between two runs on the same inputs (dropout, random ops): no engine can
match it, and an accuracy failure would blame the engine.
"""

from __future__ import annotations

import traceback
from contextlib import contextmanager
from dataclasses import dataclass
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


@dataclass
class EagerReference:
    outputs: Reference
    notes: list[str]  # for every item compared with it (an input the forward changes in place)


def eager_reference(mut: "ModelUnderTest", device: str, tf32: bool, *, twice: bool) -> EagerReference:
    """The reference, run ``twice`` on fresh copies: outputs that differ judge nothing (random ops)."""
    outputs, changed = eager_run(mut, device, tf32)
    if twice:
        judge_determinism(outputs, eager_run(mut, device, tf32)[0])
    notes = [f"the forward changes its input {name!r} in place: the reference and every engine get their own copy, "
             "but an engine's timed iterations reuse theirs, so later iterations run on changed values"
             for name in changed]
    return EagerReference(outputs, notes)


def reference_outputs(mut: "ModelUnderTest", device: str, tf32: bool) -> Reference:
    """The eager FP32 outputs on ``device``; the eager model failing is the item's failure."""
    return eager_run(mut, device, tf32)[0]


def eager_run(mut: "ModelUnderTest", device: str, tf32: bool) -> tuple[Reference, list[str]]:
    """One eager run on copies: its outputs and the inputs it changed in place (``ModelUnderTest.eager_run``)."""
    from ..model import ModelCopyError, to_numpy
    from ..outputs import OutputError

    try:
        with tf32_setting(device, tf32):
            outputs, changed = mut.eager_run(device)
            return [(name, to_numpy(tensor)) for name, tensor in outputs], changed
    except OutputError as err:  # no tensor at all, a cache object: named with its type
        raise StageFailure(Stage.OUTPUTS, str(err)) from None
    except ModelCopyError as err:
        raise StageFailure(Stage.MODEL, str(err)) from None
    except Exception as exc:
        raise StageFailure(Stage.REFERENCE, f"the eager model itself failed: {short(exc)}",
                           traceback.format_exc()) from None


def judge_determinism(first: Reference, second: Reference) -> None:
    """Fail when two eager runs on the same inputs disagree: an engine cannot match a moving target."""
    problems = [f"output {name} {difference}" for (name, one), (_, two) in zip(first, second)
                for difference in [run_difference(one, two)] if difference]
    if [name for name, _ in first] != [name for name, _ in second]:
        problems.append(f"outputs {[name for name, _ in first]} in one run and {[name for name, _ in second]} in "
                        "the other")
    if problems:
        raise StageFailure(Stage.REFERENCE, "the eager reference is nondeterministic: two runs on the same inputs "
                           "differ:\n" + "\n".join(f"      {problem}" for problem in problems) + "\n      " + _RANDOM)


_RANDOM = ("likely causes: dropout applied regardless of eval() (F.dropout(x, training=True)), random ops in forward "
           "(torch.rand_like, randn, bernoulli, multinomial), a module put back into training mode; make forward "
           "deterministic, or accept it on purpose with allow_nondeterministic=True (--infer-allow-nondeterministic)")


def run_difference(first: "np.ndarray", second: "np.ndarray") -> Optional[str]:
    """How two runs' values of one output differ beyond float noise (CUDA atomics reorder sums), or None."""
    import numpy as np

    if first.shape != second.shape:
        return f"has shape {list(first.shape)} in one run and {list(second.shape)} in the other"
    if not np.issubdtype(first.dtype, np.floating):
        differ = first != second
    else:
        scale = float(np.nanmax(np.abs(first), initial=0.0, where=np.isfinite(first)))
        differ = ~np.isclose(first, second, rtol=1e-4, atol=1e-5 * scale, equal_nan=True)
    if not differ.any():
        return None
    largest = float(np.abs(first[differ].astype(np.float64) - second[differ].astype(np.float64)).max())
    return f"differs in {int(differ.sum())} of {first.size} values (largest difference {largest:.3g})"


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

    if values.size == 0:
        return f"is empty ({list(values.shape)}): there is nothing to compare, so every engine matches it"
    if not np.issubdtype(values.dtype, np.floating):
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

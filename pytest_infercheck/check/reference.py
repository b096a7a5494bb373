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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence

from ..core.spec import Stage
from .failure import StageFailure, indent, short

if TYPE_CHECKING:
    import numpy as np

    from ..model.under_test import ModelUnderTest

Reference = list[tuple[str, "np.ndarray"]]  # (output name, eager FP32 values), in the model's output order


# Smallest normal magnitude each precision holds: a reference below it underflows in the engine.
_SMALLEST_NORMAL = {"fp32": 1.1754944e-38, "fp16": 6.1035156e-05, "bf16": 1.1754944e-38, "int8": 1.1754944e-38,
                    "fp8": 1.1754944e-38}  # INT8/FP8 engines scale into their range and return BF16


def model_under_test(model: Any, example_inputs: Any, *, dynamic_batch: bool, device: str = "cpu",
                     notes: Optional[list[str]] = None) -> "ModelUnderTest":
    """The user's module and example inputs, checked: a wrong type fails the item at Stage.INPUTS.

    An FP16/BF16 model is checked from its FP32 form (ModelUnderTest.create) where that form runs: a forward
    that casts to a dtype itself (``self.linear(x.to(torch.float16))``) fails on FP32 weights, and such a
    model is checked as given, with a note saying why (``notes``)."""
    from ..model.under_test import ModelUnderTest

    try:
        mut = ModelUnderTest.create(model, example_inputs, dynamic_batch=dynamic_batch)
        if not mut.widened:
            return mut
        try:
            mut.eager_run(device)
        except Exception as exc:
            notes = [] if notes is None else notes
            notes.append(f"checked as given, not from the model's FP32 form: widened to float32 "
                         f"({'; '.join(mut.widened)}), its forward failed ({short(exc).splitlines()[-1].strip()}), "
                         "so the reference runs at the model's own dtype and an engine at that dtype is compared "
                         "with itself")
            return ModelUnderTest.create(model, example_inputs, dynamic_batch=dynamic_batch, widen=False)
        return mut
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
    from ..model.under_test import ModelCopyError, to_numpy
    from ..model.outputs import OutputError

    try:
        with tf32_setting(device, tf32):
            outputs, changed = mut.eager_run(device)
            return [(name, to_numpy(tensor)) for name, tensor in outputs], changed
    except OutputError as err:  # no tensor at all, a cache object: named with its type
        raise StageFailure(Stage.OUTPUTS, str(err)) from None
    except ModelCopyError as err:
        raise StageFailure(Stage.MODEL, str(err)) from None
    except Exception as exc:
        raise StageFailure(Stage.REFERENCE, f"the eager model itself failed:\n{indent(short(exc))}",
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


def judge_reference(reference: Reference, precision: str, exempt: Sequence[str] = (),
                    measure: Optional[Callable[[], str]] = None,
                    inputs: Optional[Callable[[], "NonfiniteInputs"]] = None) -> None:
    """Fail when an output cannot tell a right engine from a wrong one (see the module doc).

    ``measure`` (called only then) says where in the model the values were lost: ``activation_trail``;
    ``inputs`` (called only when an output is not finite) names example inputs that hold NaN or Inf
    (``nonfinite_inputs``): a NaN there is the cause (and leaves no trail to measure), an Inf a possible
    one (an additive attention mask holds -Inf on purpose), said beside the trail."""
    import numpy as np

    from ..model.outputs import OutputNameError, resolve_output_name

    names = [name for name, _ in reference]
    try:
        exempted = {resolve_output_name(name, names) for name in exempt}
    except OutputNameError as err:
        raise StageFailure(Stage.REFERENCE, f"allow_degenerate: {err}") from None
    # (A model that returns no tensor at all failed earlier, at stage outputs: outputs.flatten_outputs.)
    judged = [(name, values) for name, values in reference if name not in exempted]
    problems = [f"{name} {problem}" for name, values in judged
                for problem in [degenerate_reason(values, precision)] if problem]
    if problems:
        measured = [f"measured: {describe_spread(name, values)}" for name, values in judged
                    if degenerate_reason(values, precision) and values.size]
        nonfinite = any(np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all()
                        for _, values in judged)
        bad = inputs() if inputs is not None and nonfinite else NonfiniteInputs()
        trail = measure() if measure is not None and not bad.nan else ""
        advice = INPUTS_REMEDY if bad.nan else remedy(named_layer=bool(trail))
        raise StageFailure(Stage.REFERENCE, "the eager reference cannot judge an engine:\n" + "\n".join(
            f"      {line}" for line in [*(f"output {problem}" for problem in problems), *measured, bad.text, trail,
                                     advice]
            if line))


INPUTS_REMEDY = ("pass finite example inputs (torch.nan_to_num, or the data the model is fed in production), or "
                 "exempt the output on purpose with allow_degenerate=['<output>']")


@dataclass(frozen=True)
class NonfiniteInputs:
    """What ``nonfinite_inputs`` found: one line ("" for none), and whether a NaN is among them."""

    text: str = ""
    nan: bool = False


def nonfinite_inputs(mut: "ModelUnderTest") -> NonfiniteInputs:
    """The example inputs that hold NaN or Inf, e.g. ``example input 'x' holds 1 NaN (first at [1, 3])``. A NaN
    is the cause of a reference that is not finite (the model is not the one to blame); an Inf is a possible one
    (an additive attention mask holds -Inf on purpose, and a model that handles it gives finite outputs)."""
    import torch

    found, nan = [], False
    for name, tensor in zip(mut.inputs.names, mut.inputs.tensors):
        if not (isinstance(tensor, torch.Tensor) and (tensor.is_floating_point() or tensor.is_complex())):
            continue
        values = tensor.detach()
        for kind, bad in (("NaN", torch.isnan(values)), ("Inf", torch.isinf(values))):
            if bool(bad.any()):
                first = [int(i) for i in bad.nonzero()[0]]
                found.append(f"'{name}' holds {int(bad.sum())} {kind} of {values.numel()} (first at {first})")
                nan = nan or kind == "NaN"
    if not found:
        return NonfiniteInputs()
    cause = ("the reference is computed from them" if nan else
             "a possible cause, unless the model handles them (an additive attention mask holds -Inf on purpose)")
    return NonfiniteInputs(f"example input {'; '.join(found)}: {cause}", nan)


def remedy(named_layer: bool) -> str:
    """What to do about a degenerate reference; "the layer named above" only when the trail named one."""
    weights = "use trained weights or initialise the layer named above" if named_layer else "use trained weights"
    return f"{weights}, pass other example inputs, or exempt the output on purpose with allow_degenerate=['<output>']"

# An activation this far below the input's scale has vanished: FP16 and the comparison's tolerances lose it.
VANISHED = 1e-3


def describe_spread(name: str, values: "np.ndarray") -> str:
    """``output logits: std 0.012, |x| <= 0.031``: what one output's values measured."""
    import numpy as np

    if not np.issubdtype(values.dtype, np.floating):
        return f"output {name}: {values.dtype} values"
    finite = values[np.isfinite(values)].astype(np.float64)
    if not finite.size:
        return f"output {name}: no finite value"
    return f"output {name}: std {finite.std():.3g}, |x| <= {np.abs(finite).max():.3g}"


def activation_trail(mut: "ModelUnderTest", device: str) -> str:
    """Where the signal is lost, measured: the RMS of each submodule's output (forward hooks on the model's
    children and grandchildren, on a copy) against the input's, e.g. ``activations (RMS) fall from 1 at the
    input to 4.2e-08 after features.16; first below 1e-03 of the input after features.5 (6.1e-04)``.
    Empty when it cannot be measured (no floating input, a forward that fails under hooks)."""
    try:
        return _trail(*_activation_scales(mut, device))
    except Exception:  # a diagnosis, never a second failure
        return ""


def _activation_scales(mut: "ModelUnderTest", device: str) -> tuple[float, list[tuple[str, float, bool]], float]:
    """(input RMS, [(module name, output RMS, all its parameters zero)] in the order they finish, output RMS)."""
    import torch

    from ..model.under_test import model_copy
    from ..model.outputs import flatten_outputs

    module = model_copy(mut.module, dtype=None, device=device)
    inputs = mut.inputs.cast(dtype=None, device=device)
    scales: dict[str, tuple[float, bool]] = {}

    def hook(name: str, layer: Any) -> Any:
        def record(_: Any, __: Any, output: Any) -> None:
            try:  # a layer may return what has no tensors to flatten (torchvision detection's ImageList)
                tensors = [t for _, t in flatten_outputs(output) if t.is_floating_point()] if name not in scales else []
            except Exception:
                return  # that layer is left out of the trail; the others still say where the signal goes
            if tensors:
                params = list(layer.parameters())
                zero = bool(params) and all(not p.any() for p in params)
                scales[name] = (_rms(tensors), zero)
        return record

    handles = [layer.register_forward_hook(hook(name, layer)) for name, layer in module.named_modules()
               if name and name.count(".") <= 1 and (name.count(".") == 1 or not any(True for _ in layer.children()))]
    try:
        with torch.no_grad():
            outputs = inputs.call(module)
    finally:
        for handle in handles:
            handle.remove()
    floats = [t for t in inputs.tensors if t.is_floating_point()]
    if not floats:
        raise ValueError("no floating input to measure against")
    result = [t for _, t in flatten_outputs(outputs) if t.is_floating_point()]
    return _rms(floats), [(name, scale, zero) for name, (scale, zero) in scales.items()], _rms(result)


def _rms(tensors: Sequence[Any]) -> float:
    total = sum(float(t.detach().double().pow(2).sum()) for t in tensors)
    count = sum(t.numel() for t in tensors)
    return (total / count) ** 0.5 if count else 0.0


def _trail(start: float, layers: list[tuple[str, float, bool]], end: float) -> str:
    if not layers or start == 0.0:
        return ""
    lowest = min(layers, key=lambda layer: layer[1])
    first = next((layer for layer in layers if layer[1] < start * VANISHED), None)
    text = f"activations (RMS) measured with forward hooks fall from {start:.3g} at the input to {lowest[1]:.3g} " \
           f"after {lowest[0]}"
    if first is None:
        text = (f"activations (RMS) measured with forward hooks stay within {1 / VANISHED:.0f}x of the input's "
                f"{start:.3g} through every layer (lowest {lowest[1]:.3g} after {lowest[0]})")
        if end < start * VANISHED:
            text += f"; the output's {end:.3g} comes from the forward's own code after the last layer, {layers[-1][0]}"
        return text
    if first is not lowest:
        text += f"; first below {VANISHED:.0e} of the input after {first[0]} ({first[1]:.3g})"
    if first[2]:
        text += f"; every weight of {first[0]} is zero"
    return text


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
        return (f"has {bad} NaN/Inf value(s) of {values.size} in the eager reference itself: they come before any "
                "engine runs")
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

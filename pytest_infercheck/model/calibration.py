"""INT8 calibration data: the user's batches in the model's input form, or generated ones, and a
hint that says what an INT8 engine was calibrated on when its accuracy fails."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

from .inputs import InputsError, ModelInputs, as_model_inputs, forward_parameters

CALIBRATION_BATCHES_GENERATED = 8


@dataclass
class CalibrationSet:
    """The batches an INT8 engine is calibrated on, in the example inputs' layout."""

    batches: list[ModelInputs]
    generated: bool
    notes: list[str] = field(default_factory=list)  # e.g. which keys of dict batches were ignored


def calibration_batches(calibration: Optional[Iterable[Any]], example_inputs: Any,
                        module: Any = None) -> CalibrationSet:
    """The user's batches in the example inputs' layout, or generated ones (and a flag saying so).

    A batch may be a tensor (one-input models), a tuple/list whose first N items are the model's N
    positional inputs (a DataLoader yielding ``(images, labels)`` works as it is), an ``(args, kwargs)``
    pair, or a dict keyed by input name (a Hugging Face dataset's batch): keys the example inputs do
    not have (``labels``) are ignored, and a note says which.
    """
    import torch
    from collections.abc import Mapping

    example = as_model_inputs(example_inputs)
    if calibration is None:
        generator = torch.Generator().manual_seed(0)
        return CalibrationSet([example.with_tensors([_like(t, generator) for t in example])
                               for _ in range(CALIBRATION_BATCHES_GENERATED)], True)
    forms = "an iterable of batches: a list, a generator or a DataLoader"
    if isinstance(calibration, (Mapping, torch.Tensor)):
        # Iterated, a dict gives its keys and a tensor its rows: neither is what one batch given alone meant.
        raise ValueError(f"calibration= is one {type(calibration).__name__}, not {forms} (one batch: "
                         "calibration=[batch])")
    try:
        iterator = iter(calibration)
    except TypeError:
        raise ValueError(f"calibration= is a {type(calibration).__name__}; give {forms}") from None
    batches, ignored = [], set()
    for index, batch in enumerate(iterator):
        converted, dropped = _in_layout(batch, example, index)
        _check_values(converted, example, index)
        batches.append(converted)
        ignored.update(dropped)
    if not batches:
        raise ValueError("calibration= was given but yielded no batches")
    notes = [note for note in [one_value_note(batches, example)] if note]
    if ignored:
        accepted = forward_parameters(module) if module is not None else None
        why = "the forward does not take them" if accepted is not None and not ignored & accepted else \
            "the example inputs do not have them"
        notes.append(f"calibration batches: key(s) {', '.join(sorted(map(repr, ignored)))} ignored ({why}); "
                     f"used: {', '.join(example.names)}")
    return CalibrationSet(batches, False, notes)


def _in_layout(batch: Any, example: ModelInputs, index: int) -> tuple[ModelInputs, set[str]]:
    """One batch as ``example``'s layout, and the dict keys it left out."""
    import torch
    from collections.abc import Mapping

    where = f"calibration batch {index}"
    arguments = example.argument_names  # one per argument: a list input is one value here
    if isinstance(batch, Mapping):
        missing = [name for name in arguments if name not in batch]
        if missing:
            raise ValueError(f"{where} has no {', '.join(map(repr, missing))} (its keys: {', '.join(map(str, batch))}); "
                             f"the example inputs are {example.describe()}")
        values = [batch[name] for name in arguments]
        ignored = {str(key) for key in batch if key not in arguments}
    elif isinstance(batch, torch.Tensor):
        values, ignored = [batch], set()
    elif isinstance(batch, (tuple, list)) and len(batch) == 2 and isinstance(batch[1], Mapping) \
            and isinstance(batch[0], (tuple, list)):
        return _in_layout({**dict(zip(example.arg_names, batch[0])), **batch[1]}, example, index)
    elif isinstance(batch, (tuple, list)):
        values, ignored = list(batch)[: len(arguments)], set()
    else:
        raise ValueError(f"{where} is a {type(batch).__name__}; calibration batches are tensors, tuples, "
                         "(args, kwargs) pairs or dicts keyed by input name")
    tensors = ModelInputs(tuple(values)).tensors  # a list argument's tensors, in order
    bad = [type(t).__name__ for t in tensors if not isinstance(t, torch.Tensor)]
    if bad or len(tensors) != len(example):
        raise ValueError(f"{where} gives {len(tensors)} value(s) ({', '.join(type(t).__name__ for t in tensors)}); "
                         f"the model takes {len(example)} tensor(s): {example.describe()}")
    try:
        return example.with_tensors(tensors), ignored
    except InputsError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_values(batch: ModelInputs, example: ModelInputs, index: int) -> None:
    """A ValueError for a batch no calibration can use: an empty tensor, NaN in it, or Inf where the example
    input holds none (its range would be meaningless; an additive mask's -inf, which the example has too,
    is data)."""
    import torch

    for (name, tensor), reference in zip(batch.named(), example.tensors):
        where = f"calibration batch {index}: {name!r}"
        if tensor.numel() == 0:
            raise ValueError(f"{where} has no element ({list(tensor.shape)}): there is nothing to calibrate on")
        if not tensor.is_floating_point():
            continue
        example_has_inf = reference.is_floating_point() and bool(torch.isinf(reference).any())
        nans = int(torch.isnan(tensor).sum())
        infs = 0 if example_has_inf else int(torch.isinf(tensor).sum())
        if nans or infs:
            raise ValueError(f"{where} holds {nans + infs} NaN/Inf value(s): the ranges calibration measures would "
                             "be meaningless; give finite data")


def one_value_note(batches: Sequence[ModelInputs], example: ModelInputs) -> Optional[str]:
    """A note (the item's warnings) for a floating input that holds one value in every batch while the example
    input varies: placeholders (torch.zeros, torch.ones) give a scale that fits that one value, and the engine
    then clips or crushes every real input (an attacker's session: calibration on zeros passed its build).
    Not a refusal: a padding mask is all ones in full-length batches and varies in the example, and such
    calibration is right (a second attacker's session: refused, it would have passed at cosine 0.9994)."""
    for position, (name, reference) in enumerate(example.named()):
        if not reference.is_floating_point() or reference.numel() < 2:
            continue
        values = [batch.tensors[position] for batch in batches]
        if not all(t.is_floating_point() for t in values):
            continue
        low = min(float(t.min()) for t in values)
        high = max(float(t.max()) for t in values)
        if low == high and float(reference.min()) != float(reference.max()):
            return (f"calibration input {name!r} is {low:g} everywhere in all {len(batches)} batch(es), where the "
                    "example input varies: the ranges calibrated on it fit that one value (right for a mask that "
                    "full-length data leaves at one value; placeholder data otherwise: give batches like the data the "
                    "model will see)")
    return None


def dtype_mismatch(batches: Sequence[ModelInputs], example: ModelInputs) -> Optional[str]:
    """Why ``batches`` cannot calibrate an export of ``example`` (a tensor of another dtype), or None: the
    exported graph takes the example's dtypes, and a batch of others fails inside the quantizer as an
    ONNX Runtime error about the model.  (torchao's static INT8 calibrates the module, which takes any.)"""
    for index, batch in enumerate(batches):
        for (name, tensor), reference in zip(batch.named(), example.tensors):
            if tensor.dtype != reference.dtype:
                return (f"calibration batch {index}: {name!r} is {str(tensor.dtype).replace('torch.', '')}, the "
                        f"example input is {str(reference.dtype).replace('torch.', '')}; the INT8 engine calibrates "
                        "the exported model, which takes the example's dtypes: give batches of the same dtypes")
    return None


def shape_mismatch(batches: Sequence[ModelInputs], example: ModelInputs, dynamic_batch: bool) -> Optional[str]:
    """Why ``batches`` cannot calibrate an exported graph of ``example``'s shapes, or None.

    An ONNX export fixes every dimension of the example inputs (the batch too, unless dynamic_batch), and
    the INT8 calibrator runs that graph on each batch: a batch of another shape would otherwise fail
    inside the quantizer as an ONNX Runtime error about the model."""
    free = 1 if dynamic_batch else 0  # leading dimensions that may differ
    fixed = "every dimension but the batch (dynamic_batch=True)" if dynamic_batch else \
        "every dimension, the batch too (dynamic_batch=False)"
    for index, batch in enumerate(batches):
        for (name, tensor), reference in zip(batch.named(), example.tensors):
            got, want = list(tensor.shape), list(reference.shape)
            if len(got) != len(want) or got[free:] != want[free:]:
                return (f"calibration batch {index}: {name!r} is {got}, the example input is {want}; the INT8 "
                        f"engine calibrates the exported model, which fixes {fixed}: give calibration batches "
                        "shaped like the example inputs")
    return None


def value_range(batches: Sequence[Sequence[Any]]) -> list[float]:
    """[min, max] over the floating tensors of all batches ([] when there are none)."""
    floats = [t for batch in batches for t in batch if t.is_floating_point()]
    if not floats:
        return []
    return [min(float(t.min()) for t in floats), max(float(t.max()) for t in floats)]


def _like(tensor: Any, generator: Any) -> Any:
    """Random data with the example's shape, dtype and (for floats) mean and spread."""
    import torch

    if tensor.is_floating_point():
        spread = float(tensor.float().std()) if tensor.numel() > 1 else 1.0
        noise = torch.randn(tensor.shape, generator=generator) * (spread or 1.0) + float(tensor.float().mean())
        return noise.to(tensor.dtype)
    low, high = int(tensor.min()), int(tensor.max()) + 1
    return torch.randint(low, max(high, low + 1), tensor.shape, generator=generator, dtype=tensor.dtype)

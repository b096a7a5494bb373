"""INT8 calibration data: the user's batches in the model's input form, or generated ones, and a
hint that says what an INT8 engine was calibrated on when its accuracy fails."""

from __future__ import annotations

from typing import Any, Iterable, Optional, Sequence

CALIBRATION_BATCHES_GENERATED = 8


def calibration_batches(calibration: Optional[Iterable[Any]], example_inputs: Sequence[Any]) -> tuple[list[tuple[Any, ...]], bool]:
    """The user's batches as tuples of the model's inputs, or generated ones (and a flag saying so).

    Each batch may be a tensor (one-input models) or a tuple/list whose first N items are the
    model's N inputs, so a DataLoader yielding ``(images, labels)`` works as it is.
    """
    import torch

    if calibration is not None:
        batches = []
        for batch in calibration:
            items = (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)[: len(example_inputs)]
            batches.append(items)
        if not batches:
            raise ValueError("calibration= was given but yielded no batches")
        return batches, False
    generator = torch.Generator().manual_seed(0)
    return [tuple(_like(t, generator) for t in example_inputs) for _ in range(CALIBRATION_BATCHES_GENERATED)], True


def value_range(batches: Sequence[Sequence[Any]]) -> list[float]:
    """[min, max] over the floating tensors of all batches ([] when there are none)."""
    floats = [t for batch in batches for t in batch if t.is_floating_point()]
    if not floats:
        return []
    return [min(float(t.min()) for t in floats), max(float(t.max()) for t in floats)]


def calibration_hint(info: Any) -> str:
    """Say what the INT8 engine was calibrated on (a results.CalibrationInfo), and whether that looks
    like the inputs it got."""
    source = "generated" if info.generated else "given"
    text = f"the INT8 engine was calibrated on {info.batches} {source} batch(es)"
    calib, example = info.range, info.example_range
    if not calib or not example:
        return text
    text += f" spanning [{calib[0]:.3g}, {calib[1]:.3g}]; the example inputs span [{example[0]:.3g}, {example[1]:.3g}]"
    calib_width, example_width = calib[1] - calib[0], example[1] - example[0]
    if example_width > 0 and calib_width > 0 and not 0.25 <= calib_width / example_width <= 4:
        text += (f" -- a {calib_width / example_width:.3g}x different range: the quantization scales fit data "
                 "unlike what the model sees; calibrate on representative inputs")
    return text


def _like(tensor: Any, generator: Any) -> Any:
    """Random data with the example's shape, dtype and (for floats) mean and spread."""
    import torch

    if tensor.is_floating_point():
        spread = float(tensor.float().std()) if tensor.numel() > 1 else 1.0
        noise = torch.randn(tensor.shape, generator=generator) * (spread or 1.0) + float(tensor.float().mean())
        return noise.to(tensor.dtype)
    low, high = int(tensor.min()), int(tensor.max()) + 1
    return torch.randint(low, max(high, low + 1), tensor.shape, generator=generator, dtype=tensor.dtype)

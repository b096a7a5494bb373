"""Tensor helpers below the model and its inputs (both use them; neither imports the other for them)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import torch


def to_numpy(tensor: "torch.Tensor") -> "np.ndarray":
    """Detached CPU numpy copy; bf16/fp16 widen to float32 (numpy has no bfloat16)."""
    import torch

    tensor = tensor.detach()
    if tensor.is_floating_point() and tensor.dtype != torch.float64:
        tensor = tensor.float()
    return tensor.cpu().numpy()

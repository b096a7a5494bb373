"""The engine shape every PyTorch backend shares: a callable on tensors at one dtype and device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..inputs import ModelInputs, as_model_inputs
from ..model import DTYPES, flatten_outputs, to_numpy


@dataclass
class TorchEngine:
    """Runs ``fn`` under ``torch.inference_mode`` on inputs cast to ``dtype`` on ``device``."""

    fn: Callable[..., Any]
    device: str
    dtype: Optional[torch.dtype]
    stream: Any = None
    # The layout (which tensors are keywords) of the last inputs prepared: ``prepare`` returns a
    # flat tuple of tensors, which the CUDA-graph wrapper copies into static buffers and hands back.
    layout: ModelInputs = field(default_factory=ModelInputs)

    def prepare(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        cast = as_model_inputs(inputs).cast(dtype=self.dtype, device=self.device)
        self.layout = cast
        return cast.tensors

    def run(self, prepared: tuple[torch.Tensor, ...]) -> Any:
        with torch.inference_mode():
            # On CUDA this returns once the work is queued: the timer's events bound it, to_numpy syncs.
            if not self.layout.kwargs:  # the common case, without a layout object per timed call
                return self.fn(*prepared)
            return self.layout.with_tensors(prepared).call(self.fn)

    def to_numpy(self, raw_outputs: Any) -> list[np.ndarray]:
        return [to_numpy(tensor) for _, tensor in flatten_outputs(raw_outputs)]

    def close(self) -> None:
        self.fn = _closed


def _closed(*_: Any) -> Any:
    raise RuntimeError("engine is closed")


class TorchBackendBase:
    """What the PyTorch backends (eager, inductor, aoti) share: FP32/FP16/BF16, CUDA when asked."""

    name = "torch"
    precisions: tuple[str, ...] = ("fp32", "fp16", "bf16")
    supports_cuda_graphs = True

    def unavailable_reason(self, spec: Any, device: str) -> Optional[str]:
        from .base import common_unavailable_reason

        return common_unavailable_reason(self, spec, device) or cuda_unavailable_reason(device)


def torch_dtype(precision: str) -> torch.dtype:
    return DTYPES[precision]


def cuda_unavailable_reason(device: str) -> Optional[str]:
    if device.startswith("cuda") and not torch.cuda.is_available():
        return "no CUDA device is visible to torch (install a CUDA build of torch on a GPU machine)"
    return None

"""The engine shape every PyTorch backend shares: a callable on tensors at one dtype and device.

Imported when the registry reads the PyTorch backends' descriptors, so torch is imported inside
the functions that need it, not here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from ..model.inputs import ModelInputs, as_model_inputs
from .base import TORCH

if TYPE_CHECKING:
    import numpy as np
    import torch

TORCH_PRECISIONS = ("fp32", "fp16", "bf16")
INSTALL_TORCH_CUDA = "install a CUDA build of torch on a GPU machine"


@dataclass
class TorchEngine:
    """Runs ``fn`` under ``torch.inference_mode`` (or ``torch.no_grad``) on inputs cast to ``dtype`` on ``device``."""

    fn: Callable[..., Any]
    device: str
    dtype: Optional["torch.dtype"]
    stream: Any = None
    # The layout (which tensors are keywords) of the last inputs prepared: ``prepare`` returns a
    # flat tuple of tensors, which the CUDA-graph wrapper copies into static buffers and hands back.
    layout: ModelInputs = field(default_factory=ModelInputs)
    # A precompiled Inductor function's guards hold only in the grad mode it was traced in, and
    # inference mode changes the dispatch keys Dynamo guards on: it is traced and run under no_grad.
    no_grad: bool = False

    def prepare(self, inputs: Sequence["torch.Tensor"]) -> tuple["torch.Tensor", ...]:
        cast = as_model_inputs(inputs).cast(dtype=self.dtype, device=self.device)
        self.layout = cast
        return cast.tensors

    def run(self, prepared: tuple["torch.Tensor", ...]) -> Any:
        import torch

        with torch.no_grad() if self.no_grad else torch.inference_mode():
            # On CUDA this returns once the work is queued: the timer's events bound it, to_numpy syncs.
            if not self.layout.kwargs and not self.layout.nested:  # the common case: no layout object per call
                return self.fn(*prepared)
            return self.layout.with_tensors(prepared).call(self.fn)

    def to_numpy(self, raw_outputs: Any) -> list["np.ndarray"]:
        from ..model.under_test import flatten_outputs, to_numpy

        return [to_numpy(tensor) for _, tensor in flatten_outputs(raw_outputs)]

    def close(self) -> None:
        self.fn = _closed


def _closed(*_: Any) -> Any:
    raise RuntimeError("engine is closed")


class TorchBackendBase:
    """What the PyTorch backends (eager, inductor, aoti) share: CUDA only when torch sees a GPU."""

    def unavailable_reason(self, spec: Any, device: str) -> Optional[str]:
        from . import torchao_quant

        return torchao_quant.unavailable_reason(spec, device) or cuda_unavailable_reason(device)

    def onnx_model(self, request: Any) -> None:
        return None  # they run the PyTorch module itself, not an ONNX model


def torch_descriptor_facts(libraries: tuple[str, ...] = TORCH, *, quantized: bool = False) -> dict[str, Any]:
    """The descriptor fields the three PyTorch backends share; ``quantized``: torchao's INT8 and FP8
    engines too (compiled backends, on CUDA: torchao_quant.py)."""
    from .torchao_quant import TORCHAO_PRECISIONS

    facts: dict[str, Any] = {"precisions": TORCH_PRECISIONS, "devices": ("cpu", "cuda"), "libraries": libraries,
                             "install": INSTALL_TORCH_CUDA, "profiler": "torch"}
    if quantized:
        facts.update(precisions=TORCH_PRECISIONS + TORCHAO_PRECISIONS, int8_calibration_optional=True)
    return facts


def module_copy(request: Any, dtype: Optional["torch.dtype"]) -> "torch.nn.Module":
    """The engine's copy of the model at ``dtype`` on the request's device, keep_fp32's modules in FP32."""
    from ..model.under_test import model_copy
    from ..model.precision import keep_modules_fp32, torch_recipe

    module = model_copy(request.artifacts.model.module, dtype=dtype, device=request.device)
    if dtype is not None and torch_recipe(request, dtype):
        keep_modules_fp32(module, request.keep_fp32, dtype)
    return module


def quantized_copy(request: Any) -> "torch.nn.Module":
    """A torchao INT8/FP8 engine's model before compilation: the BF16 copy (keep_fp32's modules in FP32)
    quantized by ``request``'s method (torchao_quant.quantize); what inductor-int8/fp8 compile and what the
    repair compares with FP32."""
    import torch

    from . import torchao_quant

    return torchao_quant.quantize(request, module_copy(request, torch.bfloat16), request.fp8_granularity)


def use_inductor_cache(request: Any) -> None:
    """Inductor's and Triton's compiled kernels go into the engine cache (a temporary directory
    removed at the end with the cache off), not into the system temp dir."""
    from ..core.cache_dirs import point_inductor_cache

    point_inductor_cache(request.artifacts.cache.scratch_dir("inductor"))


def torch_dtype(precision: str) -> "torch.dtype":
    from ..model.under_test import DTYPES

    return DTYPES[precision]


def cuda_unavailable_reason(device: str) -> Optional[str]:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        return f"no CUDA device is visible to torch ({INSTALL_TORCH_CUDA})"
    return None

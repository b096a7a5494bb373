"""Eager PyTorch at a given dtype: the reference (FP32) and the simplest engine (FP16/BF16)."""

from __future__ import annotations

from typing import Optional

from ..model import model_copy
from ..spec import EngineSpec
from .base import BuildRequest, common_unavailable_reason
from .torch_engine import TorchEngine, cuda_unavailable_reason, torch_dtype


class EagerBackend:
    name = "eager"
    precisions = ("fp32", "fp16", "bf16")
    supports_cuda_graphs = True

    def unavailable_reason(self, spec: EngineSpec, device: str) -> Optional[str]:
        return common_unavailable_reason(self, spec, device) or cuda_unavailable_reason(device)

    def build(self, request: BuildRequest) -> TorchEngine:
        dtype = torch_dtype(request.spec.precision)
        module = model_copy(request.artifacts.model.module, dtype=dtype, device=request.device)
        return TorchEngine(module, request.device, dtype)

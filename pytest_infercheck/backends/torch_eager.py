"""Eager PyTorch at a given dtype: the reference (FP32) and the simplest engine (FP16/BF16)."""

from __future__ import annotations

from ..model import model_copy
from .base import BuildRequest
from .torch_engine import TorchBackendBase, TorchEngine, torch_dtype


class EagerBackend(TorchBackendBase):
    name = "eager"

    def build(self, request: BuildRequest) -> TorchEngine:
        dtype = torch_dtype(request.spec.precision)
        module = model_copy(request.artifacts.model.module, dtype=dtype, device=request.device)
        return TorchEngine(module, request.device, dtype)

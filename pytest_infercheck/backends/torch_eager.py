"""Eager PyTorch at a given dtype: the reference (FP32) and the simplest engine (FP16/BF16)."""

from __future__ import annotations

from .base import BackendDescriptor, BuildRequest
from .torch_engine import TorchBackendBase, TorchEngine, module_copy, torch_descriptor_facts, torch_dtype

DESCRIPTOR = BackendDescriptor(name="eager", implementation=f"{__name__}:EagerBackend", reference=True,
                               **torch_descriptor_facts())


class EagerBackend(TorchBackendBase):
    descriptor = DESCRIPTOR

    def build(self, request: BuildRequest) -> TorchEngine:
        dtype = torch_dtype(request.spec.precision)
        module = module_copy(request, dtype)
        return TorchEngine(module, request.device, dtype)

"""Backend registry: name -> "module:Class", imported only when a test selects that backend."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend

REGISTRY: dict[str, str] = {
    "eager": "pytest_infercheck.backends.torch_eager:EagerBackend",
    "inductor": "pytest_infercheck.backends.inductor:InductorBackend",
    "aoti": "pytest_infercheck.backends.aoti:AotiBackend",
    "onnxruntime": "pytest_infercheck.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "pytest_infercheck.backends.tensorrt:TensorRTBackend",
}

_instances: dict[str, "Backend"] = {}


def get_backend(name: str) -> "Backend":
    if name not in REGISTRY:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(REGISTRY)}")
    if name not in _instances:
        module_name, _, class_name = REGISTRY[name].partition(":")
        _instances[name] = getattr(importlib.import_module(module_name), class_name)()
    return _instances[name]

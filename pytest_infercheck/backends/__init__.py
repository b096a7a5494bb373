"""The backend registry: the one list everything else reads.

Adding a backend is one module here (its ``DESCRIPTOR`` and its Backend class, importing its engine
library lazily) and one line in ``MODULES``.  Reading the descriptors imports those modules, which
import neither torch nor any engine at module level (tests/test_import.py holds them to it).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Backend, BackendDescriptor

MODULES: tuple[str, ...] = (
    "pytest_infercheck.backends.torch_eager",
    "pytest_infercheck.backends.inductor",
    "pytest_infercheck.backends.aoti",
    "pytest_infercheck.backends.onnxruntime",
    "pytest_infercheck.backends.tensorrt",
    "pytest_infercheck.backends.tensorrt_rtx",
)


@functools.lru_cache(maxsize=1)  # the registry is code: it cannot change while the process runs
def descriptors() -> dict[str, "BackendDescriptor"]:
    """Every backend's descriptor by name, in registry order."""
    found = [importlib.import_module(module).DESCRIPTOR for module in MODULES]
    return {descriptor.name: descriptor for descriptor in found}


def names() -> tuple[str, ...]:
    return tuple(descriptors())


def descriptor_of(name: str) -> "BackendDescriptor":
    try:
        return descriptors()[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(names())}") from None


def create_backend(name: str) -> "Backend":
    """A new instance of the backend ``name`` (the session keeps one per run: session.RunState)."""
    module_name, _, class_name = descriptor_of(name).implementation.partition(":")
    return getattr(importlib.import_module(module_name), class_name)()

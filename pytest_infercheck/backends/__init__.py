"""The backend registry: the one list everything else reads.

Adding a backend is one module here (its ``DESCRIPTOR`` and its Backend class, importing its engine
library lazily) and one line in ``MODULES``.  Reading the descriptors imports those modules, which
import neither torch nor any engine at module level (tests/test_import.py holds them to it).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Optional

from ..spec import PRECISIONS, EngineSpec

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


def engine_spec(spec_id: str) -> EngineSpec:
    """``onnxruntime-fp16-cudagraph`` -> EngineSpec; backend names may hold dashes (``tensorrt-rtx``).

    Here, not in spec.py: an engine id is valid only for a registered backend, and the registry sits
    above the plain data of spec.py."""
    text = spec_id.strip().lower()
    cuda_graphs = text.endswith("-cudagraph")
    if cuda_graphs:
        text = text[: -len("-cudagraph")]
    backend, _, precision = text.rpartition("-")
    if backend not in names() or precision not in PRECISIONS:
        raise ValueError(
            f"{spec_id!r} is not an engine id; expected <backend>-<precision>[-cudagraph] "
            f"with backend in {', '.join(names())} and precision in {', '.join(PRECISIONS)}"
        )
    return EngineSpec(backend, precision, cuda_graphs)


def split_item_id(nodeid: str) -> tuple[str, Optional[EngineSpec]]:
    """An item's node id without its engine id, and that engine's spec.

    ``t.py::test_a[8-inductor-fp16-cudagraph]`` -> (``t.py::test_a[8]``, inductor-fp16-cudagraph): the
    test's own parameters (a model repo's batch sizes) stay, on either side of the engine id, so that
    tables, reports and schedulers tell one parameter set from another. A node id with no engine id
    in it comes back whole, with None."""
    head, bracket, rest = nodeid.partition("[")
    if not bracket or not rest.endswith("]"):
        return nodeid, None
    parts = rest[:-1].split("-")
    for start in range(len(parts)):
        for end in range(len(parts), start, -1):  # longest first: "-cudagraph" belongs to the engine id
            try:
                spec = engine_spec("-".join(parts[start:end]))
            except ValueError:
                continue
            others = "-".join(parts[:start] + parts[end:])
            return f"{head}[{others}]" if others else head, spec
    return nodeid, None

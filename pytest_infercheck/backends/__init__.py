"""The backend registry: the one list everything else reads.

Adding a backend is one module (its ``DESCRIPTOR`` and its Backend class, importing its engine
library lazily): here, with one line in ``MODULES``, or in another package, named under the entry
point group ``pytest_infercheck.backends`` (``mybackend = "mypkg.infer_backend"``, a module with a
``DESCRIPTOR``; docs/backends.md).  Reading the descriptors imports those modules, which import
neither torch nor any engine at module level (tests/test_import.py holds the built-in ones to it).
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Optional

from ..core.spec import PRECISIONS, EngineSpec

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


ENTRY_POINT_GROUP = "pytest_infercheck.backends"


@functools.lru_cache(maxsize=1)  # the registry is code: it cannot change while the process runs
def descriptors() -> dict[str, "BackendDescriptor"]:
    """Every backend's descriptor by name: the built-in ones in registry order, then other packages'."""
    found = {d.name: d for d in (importlib.import_module(module).DESCRIPTOR for module in MODULES)}
    for descriptor in _installed_descriptors(set(found)):
        found[descriptor.name] = descriptor
    return found


def _installed_descriptors(taken: set[str]) -> list["BackendDescriptor"]:
    """Backends other packages register under ENTRY_POINT_GROUP. One that cannot be loaded, names a
    taken backend or claims the reference role is left out with a warning naming the package: a
    broken plugin must not stop the run nor replace a built-in backend."""
    import warnings
    from importlib.metadata import entry_points

    from .base import BackendDescriptor

    loaded = []
    for point in entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value!r} ({ENTRY_POINT_GROUP})"
        try:
            target = point.load()
        except Exception as exc:  # its import failed: say so, run without it
            warnings.warn(f"pytest-infercheck: {where} could not be loaded: {type(exc).__name__}: {exc}", stacklevel=2)
            continue
        descriptor = getattr(target, "DESCRIPTOR", target)
        if not isinstance(descriptor, BackendDescriptor):
            problem = "is neither a BackendDescriptor nor a module with a DESCRIPTOR"
        elif descriptor.name in taken:
            problem = f"names the backend {descriptor.name!r}, which is already registered"
        elif descriptor.reference:
            problem = "claims the reference role, which the built-in eager backend holds"
        else:
            taken.add(descriptor.name)
            loaded.append(descriptor)
            continue
        warnings.warn(f"pytest-infercheck: {where} {problem}; it is left out", stacklevel=2)
    return loaded


def names() -> tuple[str, ...]:
    return tuple(descriptors())


def descriptor_of(name: str) -> "BackendDescriptor":
    try:
        return descriptors()[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; known backends: {', '.join(names())}") from None


def reference_spec() -> EngineSpec:
    """The engine every other is compared with, and whose timing the speedup divides by: the FP32
    engine of the backend whose descriptor holds the reference role."""
    return EngineSpec(next(d.name for d in descriptors().values() if d.reference), "fp32")


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

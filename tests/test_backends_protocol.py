"""Every registered backend keeps the Backend protocol and says plainly why it cannot run."""

from __future__ import annotations

import pytest

from pytest_infercheck.backends import REGISTRY, get_backend
from pytest_infercheck.spec import BACKENDS, PRECISIONS, EngineSpec


def test_registry_names_every_backend() -> None:
    assert tuple(REGISTRY) == BACKENDS


@pytest.mark.parametrize("name", BACKENDS)
def test_backend_protocol(name: str) -> None:
    backend = get_backend(name)
    assert backend.name == name
    assert set(backend.precisions) <= set(PRECISIONS) and backend.precisions
    assert isinstance(backend.supports_cuda_graphs, bool)
    assert callable(backend.build)
    for precision in PRECISIONS:
        reason = backend.unavailable_reason(EngineSpec(name, precision), "cpu")
        if precision not in backend.precisions:
            assert reason and f"no {precision.upper()} engine" in reason
    reason = backend.unavailable_reason(EngineSpec(name, backend.precisions[0], cuda_graphs=True), "cpu")
    assert reason and ("CUDA Graphs" in reason or "not installed" in reason)


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown backend 'trt'; known backends: eager, inductor, aoti, onnxruntime, tensorrt"):
        get_backend("trt")

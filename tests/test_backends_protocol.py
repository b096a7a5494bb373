"""Every registered backend keeps the Backend protocol, has a descriptor the plugin can read without
importing its engine library, and says plainly why it cannot run."""

from __future__ import annotations

import importlib

import pytest

from pytest_infercheck.audit.runner import TARGETS

from pytest_infercheck.backends import MODULES, create_backend, descriptor_of, descriptors, engine_spec, names
from pytest_infercheck.backends.base import BackendDescriptor
from pytest_infercheck.model.onnx_variants import VARIANTS
from pytest_infercheck.core.spec import PRECISIONS, EngineSpec


def test_registry_reads_one_descriptor_per_module() -> None:
    assert len(descriptors()) == len(MODULES)
    for module in MODULES:
        descriptor = importlib.import_module(module).DESCRIPTOR
        assert descriptors()[descriptor.name] is descriptor


@pytest.mark.parametrize("name", names())
def test_backend_protocol(name: str) -> None:
    descriptor = descriptor_of(name)
    assert isinstance(descriptor, BackendDescriptor) and descriptor.name == name
    assert set(descriptor.precisions) <= set(PRECISIONS) and descriptor.precisions
    assert set(descriptor.devices) <= {"cpu", "cuda"} and descriptor.devices
    assert descriptor.libraries and "torch" in descriptor.libraries  # torch runs the reference and exporters
    assert set(descriptor.onnx_variants.values()) <= set(VARIANTS)
    assert set(descriptor.audit_targets) <= {"cpu", "cuda"}
    assert set(descriptor.audit_targets.values()) <= set(TARGETS)  # the audit's one table of targets
    backend = create_backend(name)
    assert backend.descriptor is descriptor
    assert callable(backend.build) and callable(backend.onnx_model) and callable(backend.unavailable_reason)
    for precision in PRECISIONS:
        reason = descriptor.unavailable_reason(EngineSpec(name, precision), "cpu")
        if precision not in descriptor.precisions:
            assert reason and f"no {precision.upper()} engine" in reason
    reason = descriptor.unavailable_reason(EngineSpec(name, descriptor.precisions[0], cuda_graphs=True), "cpu")
    assert reason and ("CUDA Graphs" in reason or "runs on NVIDIA GPUs only" in reason)


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="unknown backend 'trt'; known backends: eager, inductor, aoti, onnxruntime, tensorrt"):
        create_backend("trt")


def test_engine_ids_round_trip() -> None:
    for name in names():
        for precision in PRECISIONS:
            for graphs in (False, True):
                spec = EngineSpec(name, precision, graphs)
                assert engine_spec(spec.id) == spec
    with pytest.raises(ValueError, match="is not an engine id"):
        engine_spec("onnxruntime-fp64")

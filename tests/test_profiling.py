"""Where the time goes: real profiles of the example CNN on eager PyTorch and ONNX Runtime (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from fixtures.models import cnn_inputs, small_cnn
from pytest_infercheck.core.jsonsafe import json_safe
from pytest_infercheck.backends import descriptor_of
from pytest_infercheck.measure.profiling import (ProfileUnavailable, make_table, ort_node_module, profile_engine,
                                         table_from_ort_trace, tensorrt_layer_module)


def build(backend_name: str, tmp_path, batch: int = 2):
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    torch.manual_seed(0)
    model = ModelUnderTest.create(small_cnn(), cnn_inputs(batch))
    request = BuildRequest(spec=EngineSpec(backend_name, "fp32"), device="cpu",
                           artifacts=ModelArtifacts(model, EngineCache(tmp_path)))
    engine = create_backend(backend_name).build(request)
    return engine, engine.prepare(model.inputs)


def test_eager_profile_maps_operators_to_modules(tmp_path) -> None:
    engine, prepared = build("eager", tmp_path)
    table = profile_engine(engine, prepared, profiler=descriptor_of("eager").profiler, iterations=3)
    assert table.method.startswith("torch.profiler") and table.iterations == 3
    convolutions = [row for row in table.rows if "conv" in row.name]
    assert convolutions and {row.module for row in convolutions} >= {"features.0", "features.4"}
    assert any(row.module == "classifier" for row in table.rows)
    assert table.rows == tuple(sorted(table.rows, key=lambda r: -r.total_ms))  # a frozen record holds tuples
    assert sum(row.share for row in table.rows) == pytest.approx(1.0)
    assert all(row.calls >= 1 for row in table.rows)
    assert len(table.top(3)) == 3 and "%" in table.top(1)[0]
    json.dumps(json_safe(table))  # JSON-able for the reports
    # the hooks are gone afterwards
    assert not any(m._forward_pre_hooks or m._forward_hooks for m in engine.fn.modules())


class FakeGraphWrapper:
    """Stands in for backends/cudagraphs' wrapper (CUDA only): an engine whose ``inner`` is the real one."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner


def test_an_engine_inside_a_graph_wrapper_is_profiled_with_a_note_saying_so(tmp_path) -> None:
    engine, prepared = build("eager", tmp_path)
    table = profile_engine(FakeGraphWrapper(engine), prepared, profiler="torch", iterations=2)
    assert table.note.startswith("profiled without its CUDA graph") and table.rows and table.iterations == 2
    assert not profile_engine(engine, prepared, profiler="torch", iterations=2).note  # the engine itself: no note


def test_onnxruntime_profile_maps_nodes_to_modules(tmp_path) -> None:
    engine, prepared = build("onnxruntime", tmp_path)
    table = profile_engine(engine, prepared, profiler=descriptor_of("onnxruntime").profiler, iterations=3)
    assert table.method.startswith("ONNX Runtime profiler (CPUExecutionProvider)")
    assert {row.op_type for row in table.rows} & {"Conv", "FusedConv"}
    modules = {row.module for row in table.rows}
    assert "classifier" in modules, modules
    # a fused Conv+BN+ReLU node is named after one of the nodes it holds: one of that block's modules
    assert all(row.module.startswith("features.") for row in table.rows if row.op_type == "Conv"), table.rows
    assert all(row.calls == 1 for row in table.rows)  # one kernel per node per inference
    assert table.by_module()[0][1] >= table.by_module()[-1][1]


def test_ort_trace_parsing_skips_the_warm_up_run() -> None:
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 100},
        {"cat": "Node", "name": "/a/Conv_kernel_time", "ts": 10, "dur": 999, "args": {"op_name": "Conv"}},
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 100},
        {"cat": "Node", "name": "/a/Conv_kernel_time", "ts": 210, "dur": 3000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "/a/Conv_fence_before", "ts": 209, "dur": 1, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "gemm_kernel_time", "ts": 250, "dur": 1000, "args": {"op_name": "Gemm"}},
    ]
    table = table_from_ort_trace(events, 1, {"/a/Conv": "a"}, "ort")
    assert [(r.name, r.op_type, r.module, r.total_ms) for r in table.rows] == [
        ("/a/Conv", "Conv", "a", 3.0), ("gemm", "Gemm", "", 1.0)]
    assert table.rows[0].share == pytest.approx(0.75)


def test_ort_renamed_nodes_map_back() -> None:
    module_of = {"node_relu_1": "features.6", "node_linear": "classifier"}
    assert ort_node_module("relu_1_nchwc", module_of) == "features.6"
    assert ort_node_module("node_linear", module_of) == "classifier"
    assert ort_node_module("ReorderOutput", module_of) == ""


def test_tensorrt_layer_names_map_through_their_fused_nodes() -> None:
    module_of = {"/layer1/conv/Conv": "layer1.conv", "/layer1/relu/Relu": "layer1.relu"}
    assert tensorrt_layer_module("/layer1/conv/Conv + /layer1/relu/Relu", module_of) == "layer1.conv"
    assert tensorrt_layer_module("PWN(/layer1/relu/Relu)", module_of) == "layer1.relu"
    assert tensorrt_layer_module("17", module_of) == ""


def test_a_backend_without_a_profiler_is_refused_with_its_reason() -> None:
    with pytest.raises(ProfileUnavailable, match="names no profiler for its object engine"):
        profile_engine(object(), None, profiler="")


def test_table_averages_per_inference() -> None:
    table = make_table("m", 2, [("add", "add", "x", 1.0), ("add", "add", "x", 3.0), ("mul", "mul", "", 4.0)])
    assert [(r.name, r.total_ms, r.calls) for r in table.rows] == [("add", 2.0, 1), ("mul", 2.0, 0)]
    assert table.total_ms == 4.0

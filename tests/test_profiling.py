"""Where the time goes: real profiles of the example CNN on eager PyTorch, Inductor and ONNX Runtime
(CPU), whose rows add up to the measured time per iteration.  The CUDA accounting, which cannot run
here, is tests/test_profile_events.py's, on fake events."""

from __future__ import annotations

import json

import pytest
import torch

from fixtures.models import cnn_inputs, small_cnn
from pytest_infercheck.core.jsonsafe import json_safe
from pytest_infercheck.backends import descriptor_of
from pytest_infercheck.measure.profiling import (ProfileUnavailable, make_table, ort_node_module, profile_engine,
                                         table_from_ort_trace, tensorrt_layer_module)


def build(backend_name: str, tmp_path, batch: int = 2, *, device: str = "cpu", precision: str = "fp32",
          cuda_graphs: bool = False):
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.backends.cudagraphs import wrap_for_graphs
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    torch.manual_seed(0)
    model = ModelUnderTest.create(small_cnn(), cnn_inputs(batch))
    request = BuildRequest(spec=EngineSpec(backend_name, precision, cuda_graphs), device=device,
                           artifacts=ModelArtifacts(model, EngineCache(tmp_path)))
    engine = wrap_for_graphs(create_backend(backend_name).build(request), cuda_graphs)
    return engine, engine.prepare(model.inputs)


def test_eager_profile_maps_operators_to_modules(tmp_path) -> None:
    engine, prepared = build("eager", tmp_path)
    table = profile_engine(engine, prepared, profiler=descriptor_of("eager").profiler, iterations=3)
    assert table.method.startswith("torch.profiler") and table.iterations == 3
    convolutions = [row for row in table.rows if "conv" in row.name]
    assert convolutions and {row.module for row in convolutions} >= {"features.0", "features.4"}
    assert any(row.module == "classifier" for row in table.rows)
    assert table.rows == tuple(sorted(table.rows, key=lambda r: -r.total_ms))  # a frozen record holds tuples
    # shares are of the measured time per iteration: with the line for the rest, they make all of it
    assert sum(row.share for row in table.rows) + table.gap_ms / table.measured_ms == pytest.approx(1.0)
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
        {"cat": "Session", "name": "model_run", "ts": 200, "dur": 5000},
        {"cat": "Node", "name": "/a/Conv_kernel_time", "ts": 210, "dur": 3000, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "/a/Conv_fence_before", "ts": 209, "dur": 1, "args": {"op_name": "Conv"}},
        {"cat": "Node", "name": "gemm_kernel_time", "ts": 250, "dur": 1000, "args": {"op_name": "Gemm"}},
    ]
    table = table_from_ort_trace(events, 1, {"/a/Conv": "a"}, "ort")
    assert [(r.name, r.op_type, r.module, r.total_ms) for r in table.rows] == [
        ("/a/Conv", "Conv", "a", 3.0), ("gemm", "Gemm", "", 1.0)]
    assert table.rows[0].share == pytest.approx(0.6)  # of the timed run's 5 ms (model_run), not of the rows
    assert table.totals()[0].startswith("rows 4.0000 ms + 1.0000 ms (20.0%) outside any node")
    assert table.totals()[0].endswith("= 5.0000 ms per iteration measured (ONNX Runtime's model_run, profiled)")


def test_ort_renamed_nodes_map_back() -> None:
    module_of = {"node_relu_1": "features.6", "node_linear": "classifier"}
    assert ort_node_module("relu_1_nchwc", module_of) == "features.6"
    assert ort_node_module("node_linear", module_of) == "classifier"
    assert ort_node_module("fused node_linear", module_of) == "classifier"  # a FusedGemm (newcomer trial 4)
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


def test_eager_cnn_rows_sum_to_the_measured_time_per_iteration(tmp_path) -> None:
    from pytest_infercheck.measure.timing import CpuTimer, TimingPlan

    engine, prepared = build("eager", tmp_path)
    table = profile_engine(engine, prepared, profiler="torch", iterations=10)
    assert table.measured_by == "the profiled loop's wall time" and table.measured_ms == table.wall_ms > 0
    # every host microsecond of the iterations once: no more than the loop's wall time, and nearly all of it
    assert 0.8 * table.wall_ms <= table.total_ms <= table.wall_ms * 1.02
    assert table.total_ms + table.gap_ms == pytest.approx(table.measured_ms)

    p50 = CpuTimer().measure(lambda: engine.run(prepared), TimingPlan(warmup=3, min_iters=30, max_iters=30,
                                                                     min_time=0.0), batch_size=2).p50_ms
    table = profile_engine(engine, prepared, profiler="torch", iterations=10, measured_ms=p50)
    # host times hold the profiler's own cost: they are compared with the profiled loop, the p50 beside it
    assert table.measured_ms == table.wall_ms and table.unprofiled_ms == p50
    totals = table.totals()
    assert totals[0].endswith(" ms per iteration measured (the profiled loop's wall time)")
    assert totals[1].startswith(f"latency p50 without the profiler: {p50:.4f} ms per iteration (")
    assert "ms per iteration over 10 iterations" in table.summary().splitlines()[0]


def test_host_rows_count_nested_operators_once_on_a_real_profile(tmp_path) -> None:
    from torch.profiler import ProfilerActivity, profile, record_function

    from pytest_infercheck.measure.profile_events import ITERATION_RANGE, Attributor, from_function_events, host_entries

    engine, prepared = build("eager", tmp_path)
    engine.run(prepared)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            with record_function(ITERATION_RANGE):
                engine.run(prepared)
    events = from_function_events(prof.events())
    iterations = [e for e in prof.events() if e.name == ITERATION_RANGE]
    assert len(iterations) == 3
    rows = sum(ms for *_, ms in host_entries(events, Attributor(events, "SmallCNN")))
    # aten::conv2d holds aten::convolution holds aten::mkldnn_convolution: self times tile the iterations exactly
    assert rows == pytest.approx(sum(e.cpu_time_total for e in iterations) / 1000.0, rel=1e-6)


@pytest.mark.parametrize("precompiled", [True, False], ids=["precompiled", "torch.compile"])
def test_inductor_cpu_kernels_are_named_and_mapped_to_modules(tmp_path, precompiled: bool) -> None:
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    torch.manual_seed(0)
    model = ModelUnderTest.create(small_cnn(), cnn_inputs(2))
    request = BuildRequest(spec=EngineSpec("inductor", "fp32"), device="cpu",
                           artifacts=ModelArtifacts(model, EngineCache(tmp_path, enabled=precompiled)))
    engine = create_backend("inductor").build(request)
    assert (type(engine.fn).__name__ == "PrecompiledForward") == precompiled
    prepared = engine.prepare(model.inputs)
    table = profile_engine(engine, prepared, profiler="torch", iterations=5, module=model.module)
    where = {(row.op_type, row.module) for row in table.rows}
    # Inductor's C++ kernels are rows of their own (compiled with kernel profiling), mapped through the
    # parameters they read; extern calls through their metadata comments and Dynamo's nn_module_stack
    kernels = {row.module for row in table.rows if row.name.startswith("cpp_fused")}
    assert len(kernels) >= 2 and "" not in kernels, table.rows
    assert {("aten::convolution", "features.0"), ("aten::convolution", "features.4"), ("aten::addmm", "classifier")} \
        <= where, where
    assert table.total_ms <= table.wall_ms * 1.02
    # profiling traced the model again for its graph: the engine still runs its own compiled code
    assert any(row.name == "Inductor wrapper (Python)" for row in table.rows)


def test_onnxruntime_rows_are_per_iteration_against_its_runs(tmp_path) -> None:
    engine, prepared = build("onnxruntime", tmp_path)
    table = profile_engine(engine, prepared, profiler="onnxruntime", iterations=4)
    assert table.iterations == 4 and table.measured_by == "ONNX Runtime's model_run, profiled"
    assert 0 < table.total_ms <= table.measured_ms
    assert "ms per iteration over 4 iterations" in table.summary().splitlines()[0]
    assert table.summary().splitlines()[-1].strip().endswith("per iteration measured (ONNX Runtime's model_run, profiled)")


def test_a_failed_budget_explains_itself_per_iteration_with_modules(run_plugin) -> None:
    source = '''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''
    result = run_plugin(source, "--infer-budget=p50:1us")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "      where the time goes (torch.profiler, host self time of each event; ms per iteration over 20 iterations):",
        "*% * ms  * in features*",  # modules named: the engine's own module copy is hooked, not the user's
        "      rows * ms * = * ms per iteration measured (the profiled loop's wall time)",
        "      latency p50 without the profiler: * ms per iteration (*",
    ])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")
@pytest.mark.parametrize("backend", ["eager", "inductor"])
@pytest.mark.parametrize("cuda_graphs", [False, True], ids=["plain", "cudagraph"])
def test_cuda_rows_are_kernels_counted_once_with_modules(tmp_path, backend: str, cuda_graphs: bool) -> None:
    """(On the GPU machine only: written here, never run on a GPU by its author.)"""
    from pytest_infercheck.measure.timing import TimingPlan, timer_for

    engine, prepared = build(backend, tmp_path, 8, device="cuda", precision="fp16", cuda_graphs=cuda_graphs)
    timer = timer_for("cuda", getattr(engine, "stream", None))
    p50 = timer.measure(lambda: engine.run(prepared), TimingPlan(warmup=10, min_iters=50, max_iters=50, min_time=0.0),
                        batch_size=8).p50_ms
    table = profile_engine(engine, prepared, profiler="torch", device="cuda", iterations=10, measured_ms=p50)
    print("\n" + table.summary(12))
    assert table.device_clock and table.measured_ms == p50 and table.measured_by.startswith("latency p50")
    assert not any(row.name.startswith(("aten::", "infercheck.", "## ")) for row in table.rows), table.rows  # kernels only
    assert table.mapped_share() > 0.5, table.rows
    assert {row.module.split(".")[0] for row in table.rows if row.module} >= {"features"}
    # the kernels run inside the measured time: their sum cannot exceed the profiled loop's
    assert table.total_ms <= table.wall_ms

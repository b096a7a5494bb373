"""The accounting that makes a profile add up, on fake profiler events (the CUDA path cannot run
here), and the reading of Inductor's generated wrappers, on a fake Triton wrapper written in
Inductor's format.  Real profiles on the CPU are tests/test_profiling.py's."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Optional

import pytest

from pytest_infercheck.measure import inductor_origins as origins
from pytest_infercheck.measure.profile_events import (ITERATION_RANGE, MODULE_RANGE, Attribution, Attributor, Event,
                                              compiled_sites, device_entries, from_function_events, host_entries, link)
from pytest_infercheck.measure.profiling import CUDA_GAP, make_table


def fake_events(*specs: tuple[str, Optional[int], float, float, bool, int]) -> list[Event]:
    """Events from (name, parent index, self µs, device µs, on the device, correlation)."""
    return link([Event(i, name, parent, self_us, dur, device, corr)
                 for i, (name, parent, self_us, dur, device, corr) in enumerate(specs)])


def fake_eager_cuda_iteration(*more: tuple[str, Optional[int], float, float, bool, int]) -> list[Event]:
    """One eager iteration on CUDA as torch.profiler records it: a conv whose innermost operator
    launches two kernels, a ReLU launching one, and a copy with no module around it."""
    return fake_events(
        (ITERATION_RANGE, None, 5.0, 0, False, 1),
        (MODULE_RANGE + "Net", 0, 3.0, 0, False, 2),
        (MODULE_RANGE + "features.0", 1, 2.0, 0, False, 3),
        ("aten::conv2d", 2, 1.0, 0, False, 4),
        ("aten::cudnn_convolution", 3, 9.0, 0, False, 5),
        ("cudaLaunchKernel", 4, 4.0, 0, False, 0),
        (MODULE_RANGE + "features.1", 1, 1.0, 0, False, 6),
        ("aten::relu", 6, 2.0, 0, False, 7),
        ("aten::copy_", 0, 1.0, 0, False, 8),
        ("sm90_xmma_fprop_implicit_gemm", None, 0, 300.0, True, 5),
        ("cudnn::nchwToNhwcKernel", None, 0, 20.0, True, 5),
        ("vectorized_elementwise_kernel<relu>", None, 0, 10.0, True, 7),
        ("Memcpy DtoD (Device -> Device)", None, 0, 6.0, True, 8),
        ("ncclKernel_unlaunched", None, 0, 4.0, True, 0),
        *more,
    )


def test_fake_cuda_kernels_are_counted_once_by_the_operator_and_module_that_launched_them() -> None:
    events = fake_eager_cuda_iteration()
    entries = device_entries(events, Attributor(events, "Net"))
    assert entries == [
        ("sm90_xmma_fprop_implicit_gemm", "aten::conv2d", "features.0", 0.3),
        ("cudnn::nchwToNhwcKernel", "aten::conv2d", "features.0", 0.02),
        ("vectorized_elementwise_kernel<relu>", "aten::relu", "features.1", 0.01),
        ("Memcpy DtoD (Device -> Device)", "aten::copy_", "", 0.006),
        ("ncclKernel_unlaunched", "", "", 0.004),
    ]
    # the rows are the device events' durations, once: no operator's own "device time" beside them
    assert sum(ms for *_, ms in entries) == pytest.approx(0.34)


def test_fake_cuda_table_compares_the_kernels_with_the_measured_time() -> None:
    events = fake_eager_cuda_iteration()
    table = make_table("fake", 1, device_entries(events, Attributor(events, "Net")), wall_ms=0.5, gap=CUDA_GAP)
    table = table.measure_against(0.36, "latency p50, without the profiler")
    assert table.total_ms == pytest.approx(0.34) and table.gap_ms == pytest.approx(0.02)
    assert sum(row.share for row in table.rows) + table.gap_ms / table.measured_ms == pytest.approx(1.0)
    assert table.totals() == [
        f"rows 0.3400 ms + 0.0200 ms (5.6%) {CUDA_GAP} = 0.3600 ms per iteration measured "
        "(latency p50, without the profiler)",
        "profiled loop: 0.5000 ms per iteration over 1 iterations (profiler on)",
    ]
    assert table.by_module()[0] == ("features.0", pytest.approx(0.32))


def test_rows_that_exceed_the_measured_time_say_it_is_profiler_overhead() -> None:
    table = make_table("fake", 2, [("a", "a", "m", 1.0), ("a", "a", "m", 1.4)]).measure_against(1.0, "p50")
    assert table.totals()[0] == ("rows 1.2000 ms - 0.2000 ms (20.0%) that the rows exceed it by (profiler overhead "
                                 "inside them) = 1.0000 ms per iteration measured (p50)")


def test_fake_host_time_counts_each_event_once_and_only_inside_the_iterations() -> None:
    events = fake_eager_cuda_iteration(("other thread's op", None, 50.0, 0, False, 99))
    entries = host_entries(events, Attributor(events, "Net"))
    assert sum(ms for *_, ms in entries) == pytest.approx(0.028)  # the iteration's self times; not the other thread's
    assert ("aten::cudnn_convolution", "aten::conv2d", "features.0", 0.009) in entries
    assert ("engine call (Python outside the model)", "engine call (Python outside the model)", "", 0.005) in entries
    assert ("Python in forward (outside operators)", "Python in forward (outside operators)", "Net", 0.003) in entries


@dataclass
class FakeFunctionEvent:
    """The attributes of torch.autograd.profiler_util.FunctionEvent that from_function_events reads."""

    name: str
    start: float
    end: float
    device: str = "CPU"
    id: int = 0
    linked_correlation_id: int = 0
    self_cpu_time_total: float = 0.0
    cpu_parent: Any = None
    is_async: bool = False
    is_user_annotation: bool = False
    time_range: Any = field(init=False)
    device_type: Any = field(init=False)

    def __post_init__(self) -> None:
        self.time_range = SimpleNamespace(start=self.start, end=self.end)
        self.device_type = SimpleNamespace(name=self.device)


def test_fake_function_events_link_kernels_to_operators_not_to_runtime_calls() -> None:
    op = FakeFunctionEvent("aten::mm", 10, 20, id=41, self_cpu_time_total=6.0)
    launch = FakeFunctionEvent("cudaLaunchKernel", 12, 16, id=41, linked_correlation_id=41, self_cpu_time_total=4.0,
                               cpu_parent=op)
    kernel = FakeFunctionEvent("gemm_kernel", 30, 55, device="CUDA", id=900, linked_correlation_id=41)
    # a record_function range drawn on the GPU's timeline spans the kernels: never a row of its own
    annotation = FakeFunctionEvent("infercheck.iteration", 28, 60, device="CUDA", id=901, linked_correlation_id=40,
                                   is_user_annotation=True)
    events = from_function_events([kernel, launch, op, annotation])
    assert [e.name for e in events] == ["aten::mm", "cudaLaunchKernel", "gemm_kernel"]
    assert events[1].parent == 0 and events[1].correlation == 0 and events[0].correlation == 41
    assert device_entries(events, Attributor(events, "M")) == [("gemm_kernel", "aten::mm", "", 0.025)]


def test_without_linked_ids_a_kernel_links_through_its_runtime_call_to_the_operator_and_module() -> None:
    """As on the H100's torch 2.11 (no device event carried a linked id; a FunctionEvent without the field
    reads as 0 too): a kernel's ``id`` is CUPTI's correlation id, which its runtime call (a CPU event under
    the operator) shares."""
    module = FakeFunctionEvent("infercheck.module::features.0", 8, 30, id=7, self_cpu_time_total=1.0)
    op = FakeFunctionEvent("aten::conv2d", 10, 20, id=41, self_cpu_time_total=6.0, cpu_parent=module)
    # the operator's own id may equal another kernel's CUPTI id: only runtime calls are launchers
    clash = FakeFunctionEvent("aten::relu", 21, 29, id=900, self_cpu_time_total=2.0, cpu_parent=module)
    launch = FakeFunctionEvent("cuLaunchKernelEx", 12, 16, id=900, self_cpu_time_total=4.0, cpu_parent=op)
    kernel = FakeFunctionEvent("conv2d_c1_k1_nhwc", 30, 55, device="CUDA", id=900)
    copy = FakeFunctionEvent("Memcpy HtoD", 56, 58, device="CUDA", id=901)  # no runtime call recorded
    events = from_function_events([kernel, launch, op, module, clash, copy])
    assert device_entries(events, Attributor(events, "Net")) == [
        ("conv2d_c1_k1_nhwc", "aten::conv2d", "features.0", 0.025), ("Memcpy HtoD", "", "", 0.002)]


FAKE_TRITON_WRAPPER = '''
# kernel path: /tmp/torchinductor/ab/cab.py
# Topologically Sorted Source Nodes: [layer_norm], Original ATen: [aten.native_layer_norm]
# Source node to ATen node mapping:
#   layer_norm => add, mul, rsqrt, var_mean
triton_per_fused_native_layer_norm_0 = async_compile.triton('triton_per_fused_native_layer_norm_0', \'\'\'
import triton
@triton.jit
def triton_per_fused_native_layer_norm_0(in_ptr0, out_ptr0, xnumel, r0_numel):
    tmp0 = tl.load(in_ptr0)  # aten.mul.Tensor(x) in a comment must not look like a call
\'\'\', device_str='cuda')

triton_poi_fused_add_mul_1 = async_compile.triton('triton_poi_fused_add_mul_1', \'\'\'
def triton_poi_fused_add_mul_1(in_ptr0):
    pass
\'\'\', device_str='cuda')

async_compile.wait(globals())

class Runner:
    def call(self, args):
        primals_1, primals_2, primals_3, primals_4 = args
        with torch.cuda._DeviceGuard(0):
            # Topologically Sorted Source Nodes: [conv2d], Original ATen: [aten.convolution]
            buf0 = extern_kernels.convolution(primals_3, primals_1, primals_2, stride=(4, 4))
            buf1 = empty_strided_cuda((8, 56, 56, 96), (301056, 5376, 96, 1), torch.float16)
            # Topologically Sorted Source Nodes: [permute, layer_norm], Original ATen: [aten.permute, aten.native_layer_norm]
            stream0 = get_raw_stream(0)
            triton_per_fused_native_layer_norm_0.run(buf0, buf1, 25088, 96, stream=stream0)
            buf2 = torch.ops.aten._scaled_dot_product_flash_attention.default(buf1, buf1, buf1)
            triton_poi_fused_add_mul_1.run(buf1, primals_4, stream=stream0)
        return (buf1, )

runner = Runner(partitions=[])
call = runner.call
'''


def test_a_fake_triton_wrapper_reads_as_its_call_sites_in_order() -> None:
    code = origins.parse_wrapper(FAKE_TRITON_WRAPPER, "fake.py")
    assert code.sites == [
        origins.CallSite("", "convolution", ("conv2d",), (2, 0, 1)),
        origins.CallSite("triton_per_fused_native_layer_norm_0", "", ("permute", "layer_norm"), ()),
        origins.CallSite("", "_scaled_dot_product_flash_attention", (), ()),
        origins.CallSite("triton_poi_fused_add_mul_1", "", (), (3,)),
    ]
    assert code.definitions == {"triton_per_fused_native_layer_norm_0": ("layer_norm",)}


def test_call_sites_align_with_the_events_of_one_graph_call() -> None:
    code = origins.parse_wrapper(FAKE_TRITON_WRAPPER)
    children = ["aten::convolution", "aten::empty_strided", "triton_per_fused_native_layer_norm_0",
                "triton_poi_fused_add_mul_1"]
    assert origins.align(children, code.sites) == [0, None, 1, 3]  # the SDPA call recorded nothing: passed over
    assert origins.align(["graph_1_cpp_fused_relu_0"], [origins.CallSite("cpp_fused_relu_0", "", (), ())]) == [0]
    other = origins.WrapperCode("other.py", [origins.CallSite("triton_poi_fused_add_mul_1", "", (), ())])
    assert origins.best_wrapper(children, [code, other]) is code


def test_a_call_site_module_comes_from_its_nodes_or_the_parameters_it_reads() -> None:
    graph = origins.GraphModules(
        nodes={"conv2d": "features.0.0", "permute": "features.1.0.block.1", "layer_norm": "features.1.0.block.2",
               "add": "features.1.0"},
        inputs=["features.0.0", "features.0.0", None, "features.1.0"])
    sites = origins.parse_wrapper(FAKE_TRITON_WRAPPER).sites
    assert origins.site_module(sites[0], graph) == "features.0.0"  # an extern call: its own node
    assert origins.site_module(sites[1], graph) == "features.1.0.block"  # fused: the module holding both
    assert origins.site_module(sites[2], graph) is None  # nothing says
    assert origins.site_module(sites[3], graph) == "features.1.0"  # no metadata: primals_4's owner
    assert origins.best_graph(origins.parse_wrapper(FAKE_TRITON_WRAPPER), [origins.GraphModules(), graph]) is graph


@pytest.mark.parametrize(("entry", "path"), [
    ("L['self'].features.0", "features.0"),
    ("L['self']._modules['features']._modules['0']", "features.0"),
    ("getattr(getattr(L['self'].features, '1'), '0').block", "features.1.0.block"),
    ("L['self'].blocks[2].attn", "blocks.2.attn"),
    ("L['self']", ""),
    ("self.encoder.layers.0", "encoder.layers.0"),
])
def test_dynamo_module_stack_entries_read_as_module_paths(entry: str, path: str) -> None:
    assert origins.module_path(entry) == path


def test_common_module() -> None:
    assert origins.common_module(["features.1", "features.4"]) == "features"
    assert origins.common_module(["features.1", "classifier"]) == ""
    assert origins.common_module(["a.b.c"]) == "a.b.c"


def test_fake_inductor_cuda_profile_maps_kernels_through_the_wrapper_and_the_dynamo_graph() -> None:
    """The whole compiled-code path on fakes: a profile of one call of FAKE_TRITON_WRAPPER's graph on
    CUDA, the wrapper's call sites, the Dynamo graph's modules, and the kernels' rows."""
    events = fake_events(
        (ITERATION_RANGE, None, 5.0, 0, False, 1),
        ("Torch-Compiled Region: 0/0", 0, 2.0, 0, False, 2),
        (origins.GRAPH_CALL + " fkey ##", 1, 3.0, 0, False, 3),
        ("aten::convolution", 2, 1.0, 0, False, 4),
        ("aten::cudnn_convolution", 3, 5.0, 0, False, 5),
        ("aten::empty_strided", 2, 1.0, 0, False, 6),
        ("triton_per_fused_native_layer_norm_0", 2, 2.0, 0, False, 7),
        ("triton_poi_fused_add_mul_1", 2, 2.0, 0, False, 8),
        ("sm90_xmma_fprop_implicit_gemm", None, 0, 40.0, True, 5),
        ("triton_per_fused_native_layer_norm_0", None, 0, 7.0, True, 7),
        ("triton_poi_fused_add_mul_1", None, 0, 3.0, True, 8),
        ("triton_per_fused_native_layer_norm_0", None, 0, 6.0, True, 0),  # replayed in Inductor's own CUDA graph
    )
    graph = origins.GraphModules(
        nodes={"conv2d": "features.0.0", "permute": "features.1.0.block.1", "layer_norm": "features.1.0.block.2"},
        inputs=["features.0.0", "features.0.0", None, "features.1.0"])
    unrelated = origins.parse_wrapper(FAKE_TRITON_WRAPPER.replace("triton_poi_fused_add_mul_1", "triton_poi_other_1"))
    sites, kernels = compiled_sites(events, [graph], [origins.parse_wrapper(FAKE_TRITON_WRAPPER), unrelated], "ConvNeXt")
    assert device_entries(events, Attributor(events, "ConvNeXt", sites), kernels) == [
        ("sm90_xmma_fprop_implicit_gemm", "aten::convolution", "features.0.0", 0.04),
        ("triton_per_fused_native_layer_norm_0", "triton_per_fused_native_layer_norm_0", "features.1.0.block", 0.007),
        ("triton_poi_fused_add_mul_1", "triton_poi_fused_add_mul_1", "features.1.0", 0.003),  # by the parameter it reads
        ("triton_per_fused_native_layer_norm_0", "triton_per_fused_native_layer_norm_0", "features.1.0.block", 0.006),
    ]
    # a kernel no launch event correlates with is found by name (here: its call site; else its definition)
    assert kernels["triton_per_fused_native_layer_norm_0"].module == "features.1.0.block"
    only_definitions = compiled_sites([], [graph], [origins.parse_wrapper(FAKE_TRITON_WRAPPER)], "ConvNeXt")[1]
    assert only_definitions == {"triton_per_fused_native_layer_norm_0": Attribution(
        "triton_per_fused_native_layer_norm_0", "features.1.0.block.2")}

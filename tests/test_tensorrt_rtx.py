"""TensorRT-RTX for real: engines parsed and built on this machine (no GPU needed), then skipped.

Every build here is a real TensorRT-RTX build of a tiny model for an explicit compute capability;
the tensorrt backend's 11.x path is exercised through the same library.  Skipped, with the install
hint, where tensorrt_rtx is not installed.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed: pip install 'pytest-infercheck[tensorrt-rtx]'")

from pytest_infercheck.backends.artifacts import ModelArtifacts  # noqa: E402
from pytest_infercheck.backends import tensorrt as trt_backend  # noqa: E402
from pytest_infercheck.backends import trt_strongly_typed as st  # noqa: E402
from pytest_infercheck.backends.base import BuildRequest, BuiltButCannotRun  # noqa: E402
from pytest_infercheck.backends.tensorrt_config import plan_build  # noqa: E402
from pytest_infercheck.backends.tensorrt_rtx import (DESCRIPTOR, TensorRTRtxBackend, choose_target,  # noqa: E402
                                                     run_blocker)
from pytest_infercheck.model.onnx_variants import float_biases  # noqa: E402
from pytest_infercheck.backends.cache import EngineCache  # noqa: E402
from pytest_infercheck.model.under_test import ModelUnderTest  # noqa: E402
from pytest_infercheck.core.spec import EngineSpec  # noqa: E402


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def request_for(precision: str, cache: Path, *, target: str | None = None, dynamic_batch: bool = False) -> BuildRequest:
    torch.manual_seed(0)
    model = ModelUnderTest.create(TinyMLP().eval(), torch.randn(2, 16), dynamic_batch=dynamic_batch)
    request = BuildRequest(spec=EngineSpec("tensorrt-rtx", precision), artifacts=ModelArtifacts(model, EngineCache(cache)),
                           device="cpu")
    if precision == "int8":
        request.calibration = [(torch.randn(2, 16),) for _ in range(4)]
    if target is not None:
        request.trt_target = target
    return request


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_is_built_for_real_then_the_item_cannot_run_it_here(precision: str, tmp_path: Path) -> None:
    backend = TensorRTRtxBackend()
    assert backend.unavailable_reason(EngineSpec("tensorrt-rtx", precision), "cpu") is None  # the build goes ahead
    request = request_for(precision, tmp_path)
    with pytest.raises(BuiltButCannotRun) as caught:
        backend.build(request)
    figures = caught.value.figures
    assert figures.size > 10_000 and figures.seconds > 0 and figures.target == "sm_89"
    assert figures.library.startswith("TensorRT-RTX 1.")
    message = str(caught.value)
    assert message.startswith(f"built, not run: {figures.library} engine for sm_89: ")
    assert "kB, built in" in message and "needs an NVIDIA GPU of compute capability sm_89" in message
    assert request.artifacts.cache_states["tensorrt-rtx"] == "miss"
    plans = list(tmp_path.rglob(st.PLAN_FILE))
    assert len(plans) == 1 and plans[0].stat().st_size == figures.size
    print(f"{precision}: {figures.describe()}")  # the figures, in CI's log with -s / -rA


def test_engine_cache_is_keyed_by_target_capability(tmp_path: Path) -> None:
    backend = TensorRTRtxBackend()
    with pytest.raises(BuiltButCannotRun):
        backend.build(request_for("fp32", tmp_path))
    again = request_for("fp32", tmp_path)
    with pytest.raises(BuiltButCannotRun) as caught:
        backend.build(again)
    assert again.artifacts.cache_states["tensorrt-rtx"] == "hit"  # the figures come back from build.json
    assert caught.value.figures.target == "sm_89"
    assert str(caught.value).startswith("built earlier (engine cache), not run: TensorRT-RTX")
    other = request_for("fp32", tmp_path, target="SM86")
    with pytest.raises(BuiltButCannotRun, match="engine for sm_86"):
        backend.build(other)
    assert other.artifacts.cache_states["tensorrt-rtx"] == "miss"
    assert len(list(tmp_path.rglob(st.PLAN_FILE))) == 2


def test_dynamic_batch_engine_has_an_optimization_profile(tmp_path: Path) -> None:
    with pytest.raises(BuiltButCannotRun) as caught:
        TensorRTRtxBackend().build(request_for("fp32", tmp_path, dynamic_batch=True))
    assert caught.value.figures.size > 0


def test_target_choice_and_its_errors() -> None:
    assert choose_target(None, "cpu") == "sm_89" and choose_target("auto", "cpu") == "sm_89"
    assert choose_target("8.6", "cpu") == "sm_86"
    with pytest.raises(ValueError, match=r"trt_target='sm_90': TensorRT-RTX .* builds for sm_75, sm_80, sm_86, sm_89"):
        choose_target("sm_90", "cpu")
    with pytest.raises(ValueError, match="'hopper' is not a compute capability; write it as sm_89, SM89 or 8.9"):
        choose_target("hopper", "cpu")
    assert "this run uses the CPU" in run_blocker("cpu", "sm_89")


def test_descriptor_facts_name_the_distributions_that_key_the_cache() -> None:
    from importlib import metadata

    assert TensorRTRtxBackend.descriptor is DESCRIPTOR and DESCRIPTOR.audit_target("cpu") == "tensorrt-rtx"
    assert set(DESCRIPTOR.onnx_variants) == set(DESCRIPTOR.precisions)
    rtx = [lib for lib in DESCRIPTOR.libraries if lib.startswith("tensorrt-rtx")]
    assert metadata.version(rtx[0])  # the first one is installed wherever the module is


def test_unsupported_precision_names_the_offered_ones() -> None:
    reason = DESCRIPTOR.unavailable_reason(EngineSpec("tensorrt-rtx", "bf16"), "cpu")
    assert reason == "the tensorrt-rtx backend has no BF16 engine (it offers fp32, fp16, int8)"


# -- the tensorrt backend's 11.x path, run through TensorRT-RTX --------------------------------------

def export(tmp_path: Path, precision: str) -> Path:
    """The ONNX model a strongly typed build of ``precision`` parses, made as the backends make it."""
    from pytest_infercheck.backends.tensorrt_rtx import TensorRTRtxBackend

    return TensorRTRtxBackend().onnx_model(request_for(precision, tmp_path / "cache"))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_11_write_engine_runs_through_rtx(precision: str, tmp_path: Path) -> None:
    plan = plan_build("11.0.0", precision)
    assert plan.strongly_typed
    directory = tmp_path / "engine"
    directory.mkdir()
    trt_backend.write_engine(plan, export(tmp_path, precision), directory, profiles=None, feeds=None,
                             shared_timing=None, library=st.TENSORRT_RTX, target="sm_89")
    figures = st.read_figures(directory)
    assert (directory / st.PLAN_FILE).stat().st_size == figures.size > 0 and figures.target == "sm_89"


def test_strongly_typed_parse_names_each_failing_node(tmp_path: Path) -> None:
    from fixtures.problem_models import custom_domain_onnx

    parsed = st.parse_onnx(st.TENSORRT_RTX, custom_domain_onnx(tmp_path / "custom.onnx"))
    assert not parsed.ok
    (error,) = parsed.errors
    assert (error.node, error.operator, error.code) == ("fancy", "FancyActivation", "INVALID_NODE")
    assert error.reason.startswith("Plugin not found")
    with pytest.raises(st.NetworkBuildError, match=r"did not parse: fancy \(FancyActivation\): INVALID_NODE"):
        st.build_serialized(parsed, target="sm_89")


def test_capability_check_refuses_hopper_and_names_the_choices(tmp_path: Path) -> None:
    parsed = st.parse_onnx(st.TENSORRT_RTX, export(tmp_path, "fp32"))
    with pytest.raises(st.TargetUnsupported, match=r"cannot build for sm_90 \(it builds for sm_75, .*sm_121\)"):
        st.build_serialized(parsed, target="sm_90")


def test_a_library_without_named_capabilities_builds_for_its_own_gpu_only() -> None:
    fake_tensorrt_11 = SimpleNamespace()  # stands in for a module without ComputeCapability (TensorRT 11)
    assert st.buildable_targets(fake_tensorrt_11) == ()
    assert "builds for the GPU it runs on only" in st.check_target(st.TENSORRT, fake_tensorrt_11, "sm_89")
    assert st.check_target(st.TENSORRT, fake_tensorrt_11, None) is None


@pytest.mark.parametrize("text, target", [("sm_89", "sm_89"), ("SM120", "sm_120"), ("8.9", "sm_89"), ("86", "sm_86")])
def test_normalize_target(text: str, target: str) -> None:
    assert st.normalize_target(text) == target


def test_qdq_biases_become_float_with_the_same_outputs(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    import onnxruntime

    request = request_for("int8", tmp_path)
    from pytest_infercheck.model.onnx_variants import onnx_variant

    qdq = onnx_variant(request, "int8-qdq")
    # Why the int8-qdq-trt variant exists:
    assert st.parse_onnx(st.TENSORRT_RTX, qdq).errors[0].reason.find("input has type Int32") >= 0
    model, removed = float_biases(onnx.load(str(qdq)))
    assert len(removed) == 2 and all(name.endswith("bias_DequantizeLinear") for name in removed)
    onnx.save(model, str(tmp_path / "trt.onnx"))
    feed = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    outputs = [onnxruntime.InferenceSession(str(path)).run(None, {"x": feed})[0] for path in (qdq, tmp_path / "trt.onnx")]
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-6)
    assert st.parse_onnx(st.TENSORRT_RTX, tmp_path / "trt.onnx").ok


RTX_MATRIX = '''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["tensorrt-rtx"], precisions=["fp32", "fp16", "int8", "bf16"], cuda_graphs="both")
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''


def test_tensorrt_rtx_items_build_for_real_then_skip_with_their_figures(run_plugin) -> None:
    result = run_plugin(RTX_MATRIX, "-rs")
    result.assert_outcomes(skipped=8)
    result.stdout.fnmatch_lines_random([
        "SKIPPED*tensorrt-rtx-fp32: built, not run: TensorRT-RTX 1.* engine for sm_89: * kB, built in * s; "
        "running it needs an NVIDIA GPU of compute capability sm_89 (this run uses the CPU)",
        "SKIPPED*tensorrt-rtx-fp16: built, not run: TensorRT-RTX 1.* engine for sm_89: * kB, built in * s;*",
        "SKIPPED*tensorrt-rtx-int8: built, not run: TensorRT-RTX 1.* engine for sm_89: * kB, built in * s;*",
        "SKIPPED*tensorrt-rtx-bf16: the tensorrt-rtx backend has no BF16 engine (it offers fp32, fp16, int8)",
        "SKIPPED*tensorrt-rtx-fp32-cudagraph: CUDA Graphs need a CUDA device*",
    ])
    again = run_plugin(RTX_MATRIX, "-rs", "-k", "fp32 and not cudagraph")
    again.assert_outcomes(skipped=1, deselected=7)
    again.stdout.fnmatch_lines(["*tensorrt-rtx-fp32*skipped*hit*",
                                "SKIPPED*tensorrt-rtx-fp32: built earlier (engine cache), not run:*"])


def test_trt_target_marker_key_picks_the_capability(run_plugin) -> None:
    source = RTX_MATRIX.replace('precisions=["fp32", "fp16", "int8", "bf16"], cuda_graphs="both"',
                                'precisions=["fp32"], trt_target="sm_86"')
    result = run_plugin(source, "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*tensorrt-rtx-fp32: built, not run: TensorRT-RTX 1.* engine for sm_86:*"])


def test_a_model_the_rtx_parser_rejects_fails_before_the_build_naming_the_node(run_plugin) -> None:
    source = '''
import pytest
from fixtures.problem_models import det_model, det_inputs

@pytest.mark.infercheck(backends=["tensorrt-rtx"], precisions=["fp32"])
def test_det(infercheck):
    infercheck(det_model(), det_inputs())
'''
    result = run_plugin(source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*audit: tensorrt-rtx cannot run 1 node(s) of *offending nodes:*",
                                 "*n0 (Det) in head: *TensorRT-RTX 1.* parser*"])

"""ONNX Runtime provider selection and options, checked without a GPU.

The CUDA and TensorRT providers themselves run only on a GPU machine with onnxruntime-gpu
(tests/test_gpu_engines.py, scripts/gpu_check.sh); what is tested here is what the plugin asks them
for.  Where a test needs onnxruntime-gpu's provider list on this CPU build, it replaces
``available_providers`` with that list: a stand-in for the GPU build, named as such.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("onnxruntime")

from pytest_infercheck.backends import onnxruntime as ort_backend  # noqa: E402

GPU_BUILD_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def cuda_options(**kwargs: object) -> dict[str, str]:
    defaults = dict(device="cuda:1", stream=SimpleNamespace(cuda_stream=1234), cuda_graph=False, trt_cache_dir=None)
    return ort_backend.provider_options(["CUDAExecutionProvider"], **{**defaults, **kwargs})[0]


def test_cuda_provider_follows_the_reference_tf32_setting() -> None:
    assert cuda_options()["use_tf32"] == "0"  # the reference is FP32 with TF32 off
    assert cuda_options(tf32=True)["use_tf32"] == "1"


def test_cuda_provider_runs_on_the_engine_stream_and_device() -> None:
    options = cuda_options()
    assert options["device_id"] == "1"
    assert options["has_user_compute_stream"] == "1" and options["user_compute_stream"] == "1234"
    assert "enable_cuda_graph" not in options
    assert cuda_options(cuda_graph=True)["enable_cuda_graph"] == "1"


def test_tensorrt_provider_keeps_its_engine_and_timing_caches(tmp_path) -> None:
    trt = ort_backend.provider_options(["TensorrtExecutionProvider"], device="cuda", stream=None, cuda_graph=True,
                                       trt_cache_dir=tmp_path)[0]
    assert trt["trt_engine_cache_path"] == trt["trt_timing_cache_path"] == str(tmp_path)
    assert trt["trt_engine_cache_enable"] == trt["trt_timing_cache_enable"] == "True"
    assert trt["trt_cuda_graph_enable"] == "True"


def test_without_tensorrt_libraries_the_reason_says_what_to_install() -> None:
    try:
        import ctypes

        ctypes.CDLL(ort_backend.TENSORRT_LIBRARY)
        pytest.skip("TensorRT's library loads on this machine")
    except OSError:
        pass
    problem = ort_backend.tensorrt_libraries_problem()
    assert problem and ort_backend.TENSORRT_LIBRARY in problem and "pip install tensorrt" in problem


def test_a_listed_tensorrt_provider_without_its_libraries_is_not_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_backend, "available_providers", lambda: list(GPU_BUILD_PROVIDERS))  # GPU build's list
    monkeypatch.setattr(ort_backend, "tensorrt_libraries_problem", lambda: "no libnvinfer")
    assert ort_backend.providers_for("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ort_backend, "tensorrt_libraries_problem", lambda: None)
    assert ort_backend.providers_for("cuda") == GPU_BUILD_PROVIDERS
    assert ort_backend.providers_for("cpu") == ["CPUExecutionProvider"]


def test_cpu_build_cannot_serve_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ort_backend, "available_providers", lambda: ["CPUExecutionProvider"])
    assert ort_backend.providers_for("cuda") is None


def test_audit_placement_for_tensorrt_reports_the_missing_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime

    from pytest_infercheck.audit import ort_placement

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: list(GPU_BUILD_PROVIDERS))  # GPU build's list
    monkeypatch.setattr(ort_backend, "tensorrt_libraries_problem", lambda: "TensorRT's library libnvinfer.so.10 ...")
    assert "libnvinfer" in ort_placement.unavailable_reason(ort_placement.PROVIDERS["onnxruntime-tensorrt"])
    assert ort_placement.unavailable_reason(ort_placement.PROVIDERS["onnxruntime-cuda"]) is None

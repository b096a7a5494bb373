"""The TensorRT backend's logic that needs no TensorRT (which cannot be installed here).

Nothing here imports tensorrt.  Where a TensorRT answer is needed (an installed version, audit
findings) the stand-in is named ``fake_*`` and says what it replaces.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pytest_infercheck.backends import tensorrt as trt_backend
from pytest_infercheck.backends.tensorrt_config import (PROFILE_MAX_BATCH, BuildPlan, UnsupportedBuild,
                                                        calibration_feeds, engine_key_parts, major_version,
                                                        plan_build, profile_shapes, torch_dtype_name)
from pytest_infercheck.core.spec import EngineSpec


@pytest.mark.parametrize("version, major", [("10.13.0.35", 10), ("11.0.0", 11), (" 10 ", 10)])
def test_major_version(version: str, major: int) -> None:
    assert major_version(version) == major


def test_major_version_rejects_what_is_not_a_version() -> None:
    with pytest.raises(ValueError, match="'beta' is not a TensorRT version"):
        major_version("beta")


@pytest.mark.parametrize("precision, flags, variant, calibrate", [
    ("fp32", (), "fp32", False),
    ("fp16", ("fp16",), "fp32", False),
    ("bf16", ("bf16",), "fp32", False),
    ("int8", ("fp16", "int8"), "fp32", True),
])
def test_tensorrt_10_sets_precision_flags_on_the_fp32_network(precision: str, flags: tuple, variant: str,
                                                              calibrate: bool) -> None:
    plan = plan_build("10.13.0", precision)
    assert not plan.strongly_typed
    assert plan.onnx_variant == variant
    assert {name for name in ("fp16", "bf16", "int8") if getattr(plan, name)} == set(flags)
    assert plan.calibrate is calibrate


@pytest.mark.parametrize("precision, variant", [("fp32", "fp32"), ("fp16", "fp16"), ("int8", "int8-qdq")])
def test_tensorrt_11_is_strongly_typed_and_takes_the_precision_from_the_onnx_model(precision: str, variant: str) -> None:
    plan = plan_build("11.0.1", precision)
    assert plan.strongly_typed
    assert plan.onnx_variant == variant
    assert not (plan.fp16 or plan.bf16 or plan.int8 or plan.calibrate)  # no precision flags on 11.x


def test_tensorrt_11_bf16_is_refused_with_the_reason() -> None:
    with pytest.raises(UnsupportedBuild, match="strongly typed.*no BF16 ONNX conversion"):
        plan_build("11.0", "bf16")


def test_unsupported_tensorrt_versions_name_the_supported_ones() -> None:
    with pytest.raises(UnsupportedBuild, match=r"TensorRT 8.6.1 is not supported \(supported: 10.x, 11.x\)"):
        plan_build("8.6.1", "fp16")


def test_tf32_is_carried_into_the_plan() -> None:
    assert plan_build("10.1", "fp32", tf32=True).tf32
    assert "flags tf32" in plan_build("10.1", "fp32", tf32=True).describe()


def test_plan_descriptions_differ_between_paths() -> None:
    descriptions = {plan_build(v, p).describe() for v in ("10.1", "11.0") for p in ("fp32", "fp16", "int8")}
    assert len(descriptions) == 6
    assert plan_build("10.1", "int8").describe() == "TensorRT 10.x, fp32 ONNX, flags fp16+int8, entropy calibrator"


def test_profiles_only_for_a_declared_dynamic_batch() -> None:
    shapes = {"images": (4, 3, 32, 32)}
    assert profile_shapes(shapes, dynamic_batch=False) is None
    low, opt, high = profile_shapes(shapes, dynamic_batch=True)["images"]
    assert low == (1, 3, 32, 32) and opt == (4, 3, 32, 32) and high == (PROFILE_MAX_BATCH, 3, 32, 32)


def test_profile_range_grows_to_cover_a_large_example_batch_and_keeps_scalars() -> None:
    profiles = profile_shapes({"x": (64, 8), "scale": ()}, dynamic_batch=True)
    assert profiles["x"] == ((1, 8), (64, 8), (64, 8))
    assert profiles["scale"] == ((), (), ())


def test_calibration_feeds_are_named_numpy_batches_in_order() -> None:
    batches = [(torch.full((2, 3), float(i)), torch.arange(2)) for i in range(3)]
    feeds = calibration_feeds(batches, ["images", "ids"])
    assert [sorted(feed) for feed in feeds] == [["ids", "images"]] * 3
    assert [float(feed["images"][0, 0]) for feed in feeds] == [0.0, 1.0, 2.0]
    assert feeds[0]["ids"].dtype.kind == "i"


def test_calibration_feeds_refuse_a_batch_with_the_wrong_arity() -> None:
    with pytest.raises(ValueError, match="calibration batch 1 has 1 tensor.*takes 2 \\(images, ids\\)"):
        calibration_feeds([(torch.zeros(1), torch.zeros(1)), (torch.zeros(1),)], ["images", "ids"])
    with pytest.raises(ValueError, match="at least one batch"):
        calibration_feeds([], ["images"])


def test_engine_keys_change_with_gpu_tensorrt_version_and_calibration() -> None:
    plan = plan_build("10.13", "int8")
    base = dict(trt_version="10.13", target="cuda:NVIDIA H100 80GB HBM3:sm_90", profiles=None, calibration="abc")
    key = engine_key_parts(plan, **base)
    assert engine_key_parts(plan, **{**base, "target": "cuda:NVIDIA A100-SXM4-80GB:sm_80"}) != key
    assert engine_key_parts(plan, **{**base, "trt_version": "10.14"}) != key
    assert engine_key_parts(plan, **{**base, "calibration": "def"}) != key
    # An FP16 engine does not depend on calibration data: new batches must not rebuild it.
    fp16 = plan_build("10.13", "fp16")
    assert engine_key_parts(fp16, **base) == engine_key_parts(fp16, **{**base, "calibration": "def"})


@pytest.mark.parametrize("trt_name, torch_name", [("DataType.FLOAT", "float32"), ("HALF", "float16"),
                                                  ("DataType.BF16", "bfloat16"), ("INT64", "int64")])
def test_tensorrt_dtypes_map_to_torch(trt_name: str, torch_name: str) -> None:
    assert torch_dtype_name(trt_name) == torch_name


def test_unknown_tensorrt_dtype_is_named() -> None:
    with pytest.raises(ValueError, match="FP8"):
        torch_dtype_name("DataType.FP8")


def test_backend_skips_on_the_cpu_and_without_tensorrt() -> None:
    backend = trt_backend.TensorRTBackend()
    assert "NVIDIA GPUs only" in backend.descriptor.unavailable_reason(EngineSpec("tensorrt", "fp16"), "cpu")
    reason = backend.unavailable_reason(EngineSpec("tensorrt", "fp16"), "cuda")
    assert reason is not None and "tensorrt is not installed" in reason and "pip install" in reason


def test_backend_reports_an_unsupported_precision_for_the_installed_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """fake_installed: pretends TensorRT 11.0 is installed (metadata and import spec), nothing else."""
    monkeypatch.setattr(trt_backend, "installed_tensorrt_version", lambda: "11.0.0")
    monkeypatch.setattr(trt_backend, "missing_module_reason", lambda module, install: None)
    backend = trt_backend.TensorRTBackend()
    assert "strongly typed" in backend.unavailable_reason(EngineSpec("tensorrt", "bf16"), "cuda")
    assert backend.unavailable_reason(EngineSpec("tensorrt", "int8"), "cuda") is None


def test_shared_timing_cache_lives_in_the_engine_cache_per_version_and_gpu(tmp_path: Path) -> None:
    from pytest_infercheck.backends.cache import EngineCache

    cache = EngineCache(tmp_path)
    path = trt_backend.timing_cache_path(cache, "10.13", "cuda:NVIDIA H100 80GB HBM3:sm_90")
    assert path.parent == tmp_path / "tensorrt-timing" and "H100" in path.name and " " not in path.name
    assert trt_backend.timing_cache_path(EngineCache(tmp_path, enabled=False), "10.13", "x") is None
    source = tmp_path / "local.cache"
    source.write_bytes(b"tactics")
    trt_backend.publish_timing_cache(source, path)
    assert path.read_bytes() == b"tactics"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no staging file left behind


def test_a_tensorrt_item_on_this_cpu_machine_skips_saying_why(run_plugin) -> None:
    result = run_plugin(
        """
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(backends=["tensorrt"], precisions=["fp16"])
def test_mlp(infercheck):
    infercheck(dynamic_mlp(), torch.randn(2, 64))
""", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED*tensorrt-fp16: the tensorrt backend runs on NVIDIA GPUs only*"])


def test_build_plan_is_frozen() -> None:
    plan: BuildPlan = plan_build("10.1", "fp16")
    with pytest.raises(AttributeError):
        plan.fp16 = False  # type: ignore[misc]


@pytest.mark.parametrize("text, value", [("auto", "auto"), ("sm_89", "sm_89"), ("SM120", "sm_120"), ("8.6", "sm_86")])
def test_trt_target_option_forms(text: str, value: str) -> None:
    from pytest_infercheck.config.options import parse_trt_target

    assert parse_trt_target(text) == value


def test_trt_target_option_names_the_accepted_forms() -> None:
    from pytest_infercheck.config.options import OptionError, parse_trt_target

    with pytest.raises(OptionError, match="'hopper' is not a compute capability; write it as sm_89, SM89 or 8.9, or auto"):
        parse_trt_target("hopper")


def test_calibration_feeds_of_named_batches_follow_the_network_inputs_by_name() -> None:
    from pytest_infercheck.model.inputs import ModelInputs

    batch = ModelInputs.from_example({"ids": torch.arange(2), "images": torch.zeros(2, 3)})
    feeds = calibration_feeds([batch], ["images", "ids"])
    assert feeds[0]["images"].shape == (2, 3) and feeds[0]["ids"].dtype.kind == "i"
    with pytest.raises(ValueError, match="calibration batch 0: the ONNX model takes 1 input"):
        calibration_feeds([batch], ["pixels"])

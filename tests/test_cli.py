"""`infercheck audit` as a user runs it: a real subprocess, exit codes, files written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures.problem_models import custom_domain_onnx, dynamic_axes_reduce_onnx

REPO = Path(__file__).resolve().parents[1]
CONSOLE_SCRIPT = Path(sys.executable).parent / "infercheck"


def infercheck(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest_infercheck"] if module or not CONSOLE_SCRIPT.exists() else [str(CONSOLE_SCRIPT)]
    return subprocess.run([*command, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_model_a_target_cannot_run_exits_1_and_writes_reports(tmp_path: Path) -> None:
    model = custom_domain_onnx(tmp_path / "custom.onnx")
    out = tmp_path / "out"
    run = infercheck("audit", str(model), "--targets", "tensorrt,onnxruntime", "--trt-version", "10.1",
                     "--json", str(out / "audit.json"), "--markdown", str(out / "audit.md"))
    assert run.returncode == 1, run.stderr
    assert "tensorrt: CANNOT run the model" in run.stdout and "fancy" in run.stdout
    data = json.loads((out / "audit.json").read_text())
    assert data["passed"] is False and data["trt_version"] == "10.1"
    assert {(f["target"], f["node"], f["verdict"]) for f in data["findings"] if f["verdict"] != "warning"} == {
        ("tensorrt", "fancy", "needs-plugin"), ("onnxruntime", "fancy", "unsupported")}
    markdown = (out / "audit.md").read_text()
    assert markdown.startswith("# infercheck audit of custom.onnx") and "| FancyActivation | 1 | fancy |" in markdown


def test_torch_model_with_inputs_factory_and_allow_list_exits_0() -> None:
    run = infercheck("audit", "fixtures.problem_models:det_model", "--inputs", "fixtures.problem_models:det_inputs",
                     "--targets", "tensorrt,onnxruntime", "--allow-ops", "Det", module=True)
    assert run.returncode == 0, run.stdout + run.stderr  # the one gap is declared known
    assert "every target can run it" in run.stdout
    assert "n0 [head]" in run.stdout and "unsupported (allowed)" in run.stdout
    assert "predicted from the TensorRT 10.15 table" in run.stdout


def test_input_shapes_and_dtypes_make_example_inputs() -> None:
    import torch

    from pytest_infercheck.cli import make_inputs

    images, ids = make_inputs(["2,3,8,8", "2,16"], ["float32", "int64"])
    assert (images.shape, images.dtype, ids.shape, ids.dtype) == ((2, 3, 8, 8), torch.float32, (2, 16), torch.int64)
    assert torch.equal(images, make_inputs(["2,3,8,8"], [])[0])  # seeded: runs agree


def test_unavailable_provider_is_reported_not_a_failure(tmp_path: Path) -> None:
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime build has the CUDA provider")
    run = infercheck("audit", str(dynamic_axes_reduce_onnx(tmp_path / "reduce.onnx")), "--targets", "onnxruntime-cuda")
    assert run.returncode == 0
    assert "onnxruntime-cuda: not checked here: CUDAExecutionProvider is not in this onnxruntime build" in run.stdout


@pytest.mark.parametrize("args, message", [
    (["audit", "missing.onnx"], "MODEL missing.onnx: no such file"),
    (["audit", "{model}", "--targets", "tensorrt,gpu"], "--targets: unknown target(s) 'gpu'"),
    (["audit", "{model}", "--trt-version", "8.6"], "--trt-version: no TensorRT support table for version '8.6'"),
    (["audit", "fixtures.models:small_cnn"], "a torch model needs example inputs"),
    (["audit", "fixtures.models:small_cnn", "--input-shape", "2,x"], "--input-shape '2,x': expected comma-separated"),
    (["audit", "fixtures.models:no_such_factory", "--input-shape", "2"], "cannot import it"),
    (["audit", "{model}", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ([], "the following arguments are required: command"),
])
def test_usage_errors_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    model = dynamic_axes_reduce_onnx(tmp_path / "model.onnx")
    run = infercheck(*[arg.replace("{model}", str(model)) for arg in args])
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr

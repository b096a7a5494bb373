"""`infercheck audit` as a user runs it: exit codes, stdout and stderr, files written.

The installed console script runs as a real process once (and `python -m pytest_infercheck` in
test_audit_cli_hostile.py); the other runs are the same ``main`` in this process (cli_runner.py), without
an interpreter and torch start-up each. A library missing from the environment is a real process too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli_runner import REPO, Run, in_process, in_subprocess
from fixtures.problem_models import custom_domain_onnx, dynamic_axes_reduce_onnx


def infercheck(*args: str) -> "Run[str]":
    return in_process(*args, cwd=REPO)


def test_model_a_target_cannot_run_exits_1_and_writes_reports(tmp_path: Path) -> None:
    """The installed ``infercheck`` console script, as a real process."""
    model = custom_domain_onnx(tmp_path / "custom.onnx")
    out = tmp_path / "out"
    run = in_subprocess("audit", str(model), "--targets", "tensorrt,onnxruntime", "--trt-version", "10.1",
                     "--json", str(out / "audit.json"), "--markdown", str(out / "audit.md"),
                        cwd=REPO, entry="console-script")
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
                     "--targets", "tensorrt,onnxruntime", "--allow-ops", "Det")
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


# -- Inputs the audit cannot read or import: exit 2, one line naming the input, no traceback -------

USER_MODULES = {
    "raises_on_import.py": "raise RuntimeError('no GPU configured')\n",
    "exits_on_import.py": "import sys\nsys.exit('config missing')\n",
    "factories.py": "def broken():\n    raise ValueError('checkpoint not found')\n\ndef number():\n    return 3\n",
}


def infercheck_in(cwd: Path, *args: str) -> "Run[str]":
    """The command line run from ``cwd`` (a user's project directory, importable like pytest's rootdir)."""
    return in_process(*args, cwd=cwd)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name, source in USER_MODULES.items():
        (tmp_path / name).write_text(source)
    model = custom_domain_onnx(tmp_path / "model.onnx")
    (tmp_path / "not_onnx.onnx").write_text("ir_version: 8\n")  # text, as if exported with the wrong tool
    (tmp_path / "truncated.onnx").write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    (tmp_path / "empty.onnx").write_bytes(b"")
    (tmp_path / "folder.onnx").mkdir()
    (tmp_path / "out").mkdir()
    return tmp_path


@pytest.mark.parametrize("args, message", [
    (["audit", "not_onnx.onnx"], "MODEL not_onnx.onnx: not a readable ONNX model (DecodeError: "),
    (["audit", "truncated.onnx"], "MODEL truncated.onnx: not a readable ONNX model ("),
    (["audit", "empty.onnx"], "MODEL empty.onnx: not an ONNX model (no IR version or no graph nodes: 0 bytes)"),
    (["audit", "folder.onnx"], "MODEL folder.onnx: not a file"),
    (["audit", "raises_on_import:model", "--input-shape", "1,4"],
     "MODEL raises_on_import:model: importing raises_on_import raised RuntimeError: no GPU configured"),
    (["audit", "exits_on_import:model", "--input-shape", "1,4"],
     "MODEL exits_on_import:model: importing exits_on_import raised SystemExit: config missing"),
    (["audit", "factories:broken", "--input-shape", "1,4"],
     "MODEL factories:broken: the factory raised ValueError: checkpoint not found"),
    (["audit", "model.onnx", "--inputs", "factories:number"],
     "--inputs factories:number: the factory returned a int; expected a tensor, a tuple of tensors, a dict of keyword tensors (a tokenizer's output) or an (args, kwargs) pair"),
    (["audit", "model.onnx", "--inputs", "factories:broken"], "--inputs factories:broken: the factory raised ValueError"),
    (["audit", "model.onnx", "--json", "out"], "--json out is a directory; give a file path"),
    (["audit", "model.onnx", "--markdown", "model.onnx/report.md"], "--markdown model.onnx/report.md: "),
    (["audit", "model.onnx", "--json", "out/a", "--markdown", "out/../out/a"], "--json and --markdown both name "),
])
def test_unreadable_inputs_exit_2_with_one_line(project: Path, args: list[str], message: str) -> None:
    run = infercheck_in(project, *args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith(f"infercheck audit: error: {message}"), run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_missing_external_weights_exit_2(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((16, 16), dtype=np.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "big.onnx", save_as_external_data=True, location="big.data", size_threshold=0)
    (tmp_path / "big.data").write_bytes(b"\0" * 10)
    run = infercheck_in(tmp_path, "audit", "big.onnx")
    assert run.returncode == 2 and "weights of 'W' need 1024 bytes of big.data, which has 10: truncated" in run.stderr
    (tmp_path / "big.data").unlink()
    run = infercheck_in(tmp_path, "audit", "big.onnx")
    assert run.returncode == 2 and "weights of 'W' are stored in big.data, which is missing" in run.stderr


def test_unwritable_output_directory_exits_2_before_the_audit(project: Path) -> None:
    from readonly import read_only

    with read_only(project / "out"):
        run = infercheck_in(project, "audit", "model.onnx", "--json", "out/sub/audit.json")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("infercheck audit: error: --json out/sub/audit.json: cannot create files in ")
    assert run.stdout == ""  # refused before any stage ran


# Stand-in for "the base package alone": Python's own marker for a module that is not installed
# (sys.modules[name] = None makes `import onnxruntime` raise ModuleNotFoundError), set before the CLI runs:
# a new process, where nothing has imported ONNX Runtime yet.
WITHOUT_ONNXRUNTIME = "import sys\nsys.modules['onnxruntime'] = None\n"


def test_without_onnxruntime_an_onnxruntime_target_says_what_to_install(project: Path) -> None:
    run = in_subprocess("audit", "model.onnx", cwd=project, prelude=WITHOUT_ONNXRUNTIME)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == ("infercheck audit: error: --targets onnxruntime: ONNX Runtime is not installed: pip install "
                          "'pytest-infercheck[onnxruntime]' (or 'pytest-infercheck[onnxruntime-gpu]' for the CUDA "
                          "provider; never both); or audit without it: --targets tensorrt\n")


def test_without_onnxruntime_the_tensorrt_prediction_still_runs(project: Path) -> None:
    run = in_subprocess("audit", "model.onnx", "--targets", "tensorrt", cwd=project, prelude=WITHOUT_ONNXRUNTIME)
    assert run.returncode == 1, run.stdout + run.stderr  # the custom operator needs a TensorRT plugin
    assert "tensorrt: CANNOT run the model" in run.stdout and "Traceback" not in run.stderr
    assert "Polygraphy lint skipped: ONNX Runtime is not installed: pip install 'pytest-infercheck[onnxruntime]'" in run.stdout


# -- hostile audit inputs (issue 23): exit 2 with one line, never exit 1 (a false "cannot run") -----


def _matmul_model(weight) -> "onnx.ModelProto":  # type: ignore[name-defined]  # noqa: F821
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_external_weights_outside_the_models_folder_exit_2(tmp_path: Path) -> None:
    """ONNX refuses such a location with a ValidationError (onnx.save will not even write one): it was a
    traceback and exit 1. Made by hand, as an attacker would."""
    import numpy as np
    from onnx import TensorProto, numpy_helper
    from onnx.external_data_helper import set_external_data

    weight = numpy_helper.from_array(np.ones((16, 16), dtype=np.float32), "W")
    (tmp_path / "secret.data").write_bytes(weight.raw_data)
    set_external_data(weight, "../secret.data", offset=0, length=len(weight.raw_data))
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "m.onnx").write_bytes(_matmul_model(weight).SerializeToString())
    before = (tmp_path / "secret.data").read_bytes()
    run = infercheck_in(tmp_path / "model", "audit", "m.onnx")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == ("infercheck audit: error: MODEL m.onnx: weights of 'W' are stored at '../secret.data', "
                          "outside the model's folder .; ONNX reads external data only from that folder "
                          "(move the file there)\n")
    assert (tmp_path / "secret.data").read_bytes() == before


def test_a_tensor_whose_dims_do_not_match_its_bytes_exits_2(tmp_path: Path) -> None:
    """numpy's "cannot reshape array of size 15 into shape (16,16)" traceback and exit 1 before."""
    import numpy as np
    from onnx import numpy_helper

    weight = numpy_helper.from_array(np.ones((16, 16), dtype=np.float32), "W")
    weight.raw_data = weight.raw_data[:60]
    (tmp_path / "m.onnx").write_bytes(_matmul_model(weight).SerializeToString())
    run = infercheck_in(tmp_path, "audit", "m.onnx")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == ("infercheck audit: error: MODEL m.onnx: tensor 'W' declares dims [16, 16] (1024 bytes) but "
                          "stores 60 bytes: the model file is damaged; export it again\n")


def test_an_input_shape_larger_than_memory_exits_2_before_allocating(tmp_path: Path) -> None:
    run = infercheck_in(tmp_path, "audit", "fixtures.models:dynamic_mlp", "--input-shape", "100000000000,8")
    assert run.returncode == 2, run.stdout + run.stderr  # was torch's allocation traceback, exit 1
    assert run.stderr.startswith("infercheck audit: error: --input-shape '100000000000,8': 800000000000 elements "
                                 "(2.98e+03 GiB as float32) do not fit this machine's ")
    assert run.stderr.count("\n") == 1 and run.stdout == ""


def test_inputs_the_model_itself_refuses_exit_2_with_torchs_reason(tmp_path: Path) -> None:
    """A wrong shape read "CANNOT run the model" (exit 1) without torch's reason, which went to stderr
    as torch's own log: no target is to blame, and the reason is torch's."""
    run = infercheck_in(tmp_path, "audit", "fixtures.models:dynamic_mlp", "--input-shape", "2,9")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr == ("infercheck audit: error: --input-shape 2,9: the model itself fails on these example inputs "
                          "(RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x9 and 64x128)); give inputs "
                          "its forward accepts\n")


def test_an_export_failure_finding_carries_torchs_reason(capfd: pytest.CaptureFixture[str]) -> None:
    """The finding held only the user's frame (``at models.py:79 in forward: ...``); torch's reason was
    printed by torch's own log handler on stderr. Now it is in the finding and stderr stays clean."""
    import torch

    from fixtures.models import dynamic_mlp
    from pytest_infercheck.audit.torch_stage import EXPORT, torch_findings

    result = torch_findings(dynamic_mlp(), (torch.randn(2, 9),))
    [export] = [finding for finding in result.findings if finding.stage == EXPORT]
    assert export.reason.startswith("torch.export failed: RuntimeError: a and b must have same reduction dim, but "
                                    "got [2, 9] X [64, 128]. (at ")
    assert "in forward: return self.net(features))" in export.reason
    assert "[2, 9] X [64, 128]" not in capfd.readouterr().err

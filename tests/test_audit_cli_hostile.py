"""`infercheck audit` inputs from the second hostile attack on issue 23: factories raising what is not an
Exception, and shapes with an empty dimension.

Ctrl-C's exit status is a real process's (`python -m pytest_infercheck`); the other runs are the CLI's
``main`` in this process (cli_runner.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from cli_runner import Run, in_process, in_subprocess

MODULE = """
import torch

class Stop(BaseException):
    pass

def generator_exit():
    raise GeneratorExit("bye")

def own_base_exception():
    raise Stop("their own")

def interrupted():
    raise KeyboardInterrupt()

def linear():
    return torch.nn.Linear(8, 4)
"""


def audit(tmp_path: Path, *args: str, run: Callable[..., "Run[str]"] = in_process) -> "Run[str]":
    (tmp_path / "hostile_factories.py").write_text(MODULE)
    return run("audit", *args, cwd=tmp_path)


@pytest.mark.parametrize("factory, named", [("generator_exit", "GeneratorExit: bye"), ("own_base_exception", "Stop: their own")])
def test_a_factory_raising_a_base_exception_exits_2_with_one_line(tmp_path: Path, factory: str, named: str) -> None:
    """Only Exception and SystemExit were caught: GeneratorExit or a BaseException of the user's own was a traceback."""
    run = audit(tmp_path, f"hostile_factories:{factory}", "--input-shape", "2,8", "--targets", "onnxruntime")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"infercheck audit: error: MODEL hostile_factories:{factory}: the factory "
                                       f"raised {named}"]


def test_ctrl_c_in_a_factory_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """A real process: the status it exits with, and nothing more on stderr from the interpreter."""
    run = audit(tmp_path, "hostile_factories:interrupted", "--input-shape", "2,8", "--targets", "onnxruntime",
                run=in_subprocess)
    assert run.returncode == 130, run.stdout + run.stderr
    assert run.stderr.splitlines() == ["infercheck audit: interrupted"]


@pytest.mark.parametrize("shape", ["8,,8", "2,8,", ",2,8"])
def test_a_shape_with_an_empty_dimension_exits_2(tmp_path: Path, shape: str) -> None:
    """8,,8 was audited as 8,8 (and 2,8, as 2,8): a typo silently audited as another shape."""
    run = audit(tmp_path, "hostile_factories:linear", "--input-shape", shape, "--targets", "onnxruntime")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"infercheck audit: error: --input-shape {shape!r}: an empty dimension; "
                                       "expected comma-separated integers, e.g. 1,3,224,224"]


def _onnx_file(path: Path, kind: str) -> Path:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if kind == "huge-dims":  # declared 10**12 rows: lint's random data would be 58 TiB
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [10**12, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [10**12, 8])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    elif kind == "negative-input":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-5, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    elif kind == "no-outputs":
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [])
    elif kind == "string-io":
        x = helper.make_tensor_value_info("x", TensorProto.STRING, [2])
        y = helper.make_tensor_value_info("y", TensorProto.STRING, [2])
        graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    else:  # an initializer with negative dims
        weight = numpy_helper.from_array(np.ones((8, 8), np.float32), "W")
        weight.dims[:] = [-8, -8]
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])
        graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g", [x], [y], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("kind", ["huge-dims", "string-io"])
def test_a_model_polygraphy_lint_cannot_feed_is_a_note_not_a_traceback(tmp_path: Path, kind: str) -> None:
    """Lint feeds random data of the declared shapes and types: numpy's 58 TiB allocation error, or its
    dtype error for a string input, ended the audit with a traceback (exit 1)."""
    model = _onnx_file(tmp_path / f"{kind}.onnx", kind)
    run = audit(tmp_path, str(model), "--targets", "onnxruntime")
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode in (0, 1), run.stdout + run.stderr
    assert "Polygraphy lint could not run on this model" in run.stdout, run.stdout


@pytest.mark.parametrize("kind, problem", [
    # skipped by the stored-size check: the audit said "CANNOT run" (exit 1) instead of naming the damage
    ("negative-dims", "tensor 'W' declares negative dims [-8, -8]: the model file is damaged; export it again"),
    # every target "can run" a graph that computes nothing: exit 0, a vacuous pass
    ("no-outputs", "the graph has no outputs, so no engine computes anything; export it again"),
    # an input of -5 rows: "can run the model", exit 0
    ("negative-input", "'x' declares a negative dimension ([-5, 8]): the model file is damaged; export it again"),
])
def test_a_damaged_or_empty_graph_exits_2_naming_the_problem(tmp_path: Path, kind: str, problem: str) -> None:
    model = _onnx_file(tmp_path / f"{kind}.onnx", kind)
    run = audit(tmp_path, str(model), "--targets", "onnxruntime")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"infercheck audit: error: MODEL {model}: {problem}"]


def test_an_empty_trt_version_exits_2(tmp_path: Path) -> None:
    """--trt-version '' was read as "not given" (the newest table) without a word."""
    run = audit(tmp_path, "hostile_factories:linear", "--input-shape", "2,8", "--targets", "tensorrt", "--trt-version", "")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == ["infercheck audit: error: --trt-version: an empty TensorRT version; give X.Y "
                                       "such as 10.15, or leave the option out"]


def test_inputs_that_do_not_fit_an_onnx_model_are_a_usage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`audit model.onnx --input-shape 3,3` for a model declared [2, 8]: exit 0 with a note that the FP16 range
    could not be checked (a silent bypass of the range check). Now one line naming the input, exit 2."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])])
    path = tmp_path / "ok.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    for shape, fits in (("3,3", False), ("2,8,1", False), ("5,8", True)):
        run = in_process("audit", str(path), "--targets", "onnxruntime", "--input-shape", shape)
        if fits:
            assert run.returncode == 0, run.stdout + run.stderr
            continue
        assert run.returncode == 2, run.stdout + run.stderr
        [line] = run.stderr.splitlines()
        assert f"--input-shape {shape}: input 'x' of {path} is declared ['batch', 8]" in line
    # The element type too (newcomer trial 4: `--input-dtype int64` for a float input ran, exit 0, with the FP16
    # range check skipped for ONNX Runtime's InvalidArgument).
    run = in_process("audit", str(path), "--targets", "onnxruntime", "--input-shape", "5,8", "--input-dtype", "int64")
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert line.endswith(f"--input-shape 5,8: input 'x' of {path} is declared float32; the input given is int64 "
                         "(--input-dtype float32, in the inputs' order)"), line
    # Without --input-dtype, the inputs take the types the file declares: a uint8 image input is audited as uint8
    # (the review: the type check above refused it, and --input-dtype had no uint8).
    u8 = helper.make_graph([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "g",
                           [helper.make_tensor_value_info("x", TensorProto.UINT8, [2, 8])],
                           [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])])
    u8_path = tmp_path / "u8.onnx"
    onnx.save(helper.make_model(u8, opset_imports=[helper.make_opsetid("", 17)]), u8_path)
    run = in_process("audit", str(u8_path), "--targets", "onnxruntime", "--input-shape", "2,8")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "not checked" not in run.stdout and "could not run" not in run.stdout, run.stdout

"""Divergence localisation: the first node whose output leaves tolerance, on real ONNX Runtime runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import onnx
import pytest

from fixtures.problem_models import fp16_overflow_model, overflow_inputs
from pytest_infercheck.model.onnx_variants import convert_fp16
from pytest_infercheck.measure.compare import tolerance_for
from pytest_infercheck.model.divergence import feeds_for, locate_divergence, topological
from pytest_infercheck.model.export import export_onnx


@pytest.fixture(scope="module")
def overflow_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("overflow")
    fp32 = directory / "model.onnx"
    onnx.save(export_onnx(fp16_overflow_model(), (overflow_inputs(),), dynamic_batch=False), str(fp32))
    fp16 = directory / "model.fp16.onnx"
    # The converter's shape inference leaves sym_shape_infer_temp.onnx in the working directory.
    previous = os.getcwd()
    os.chdir(directory)  # contextlib.chdir is 3.11+; the project supports 3.10
    try:
        convert_fp16(fp32, fp16)
    finally:
        os.chdir(previous)
    return fp32, fp16


def test_overflowing_layer_is_the_first_divergent_node(overflow_models: tuple[Path, Path]) -> None:
    fp32, fp16 = overflow_models
    divergence = locate_divergence(fp32, fp16, feeds_for(fp32, [overflow_inputs()]), tolerance_for("fp16"))
    assert divergence is not None
    assert (divergence.operator, divergence.module_path) == ("Gemm", "amplify")
    assert divergence.output.nonfinite > 0 and divergence.output.reference_max > 65504
    # The error starts here: the input (the ReLU before it) is within FP16 rounding.
    assert [i.tensor for i in divergence.inputs] == ["relu"]
    assert divergence.inputs[0].nonfinite == 0 and divergence.inputs[0].rel_l2 < 1e-2
    assert "amplify" in divergence.describe() and "its inputs" in divergence.describe()


def test_identical_models_have_no_divergence(overflow_models: tuple[Path, Path]) -> None:
    fp32, _ = overflow_models
    assert locate_divergence(fp32, fp32, feeds_for(fp32, [overflow_inputs()]), tolerance_for("fp32")) is None


def test_topological_order_puts_producers_first(overflow_models: tuple[Path, Path]) -> None:
    # The FP16 converter appends its input Cast last: the walk must still visit it before its consumer.
    model = onnx.load(str(overflow_models[1]))
    order = [node.name for node in topological(model.graph)]
    produced = {out for node in model.graph.node for out in node.output}
    seen: set[str] = set()
    for node in topological(model.graph):
        assert all(name in seen for name in node.input if name in produced), node.name
        seen.update(node.output)
    assert sorted(order) == sorted(node.name for node in model.graph.node)


def test_fp16_engine_failure_names_the_overflowing_layer(run_plugin, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = run_plugin(
        """
import pytest
from fixtures.problem_models import fp16_overflow_model, overflow_inputs

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp16"])
def test_overflow(infercheck):
    infercheck(fp16_overflow_model(), overflow_inputs())
""", f"--infer-report={report}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*first divergent node: node_* (Gemm) in amplify: output*NaN/Inf*its inputs: 'relu'*"])
    data = json.loads(report.read_text())
    (item,) = [r for r in data["results"] if r["spec_id"] == "onnxruntime-fp16"]
    assert item["divergence"]["module_path"] == "amplify"
    assert item["divergence"]["output"]["nonfinite"] > 0


def test_a_mask_fill_that_saturates_in_fp16_is_not_a_divergence() -> None:
    """A padded attention mask holds float32's lowest value; in FP16 it becomes -65504 or -inf, which a softmax
    reads the same: the mask's Where was the "first divergent node" of every padded decoder (newcomer trial 5)."""
    import numpy as np

    from pytest_infercheck.model.divergence import _failures

    tolerance = tolerance_for("fp16")
    reference = np.array([np.finfo(np.float32).min, 0.5, 1.0], dtype=np.float32)
    for fill in (-65504.0, -np.inf):
        assert _failures(np.array([fill, 0.5, 1.0], dtype=np.float32), reference, tolerance) == ()
    assert _failures(np.array([-65504.0, 0.9, 1.0], dtype=np.float32), reference, tolerance)  # the rest still counts
    assert _failures(np.array([0.0, 0.5, 1.0], dtype=np.float32), reference, tolerance)  # an unmasked position

"""The audit's tensorrt-rtx target: TensorRT-RTX's real parser and builder, run here without a GPU.

Each problem fixture is named by the parser itself (node, operator, module, the parser's reason);
the clean models parse and build.  Skipped, with the install hint, where tensorrt_rtx is missing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("tensorrt_rtx", reason="TensorRT-RTX is not installed: pip install 'pytest-infercheck[tensorrt-rtx]'")

from fixtures import problem_models as problems  # noqa: E402
from fixtures.models import cnn_inputs, small_cnn, tiny_encoder, token_inputs  # noqa: E402
from pytest_infercheck.audit import AuditReport, audit  # noqa: E402
from pytest_infercheck.audit.render import render_text  # noqa: E402
from pytest_infercheck.audit.runner import parse_targets  # noqa: E402
from pytest_infercheck.audit.tensorrt_rtx_stage import parser_label, rtx_findings  # noqa: E402

TARGET = "tensorrt-rtx"


def rtx_blocking(report: AuditReport) -> list[tuple[str, str, str, str, str]]:
    return [(f.stage, f.operator, f.node, f.module_path, f.verdict) for f in report.blocking(TARGET)]


def test_det_is_named_by_the_parser_with_its_module() -> None:
    report = audit(problems.det_model(), problems.det_inputs(), targets=[TARGET])
    assert rtx_blocking(report) == [("tensorrt-rtx-parser", "Det", "n0", "head", "unsupported")]
    (finding,) = report.for_target(TARGET)
    label = parser_label()
    assert label.startswith("TensorRT-RTX 1.") and label.endswith(" parser")
    assert finding.reason == f"{label}: UNSUPPORTED_NODE in checkDet: false"
    assert not finding.predicted and "predicted" not in finding.reason
    assert not report.can_run(TARGET)


def test_custom_domain_needs_a_plugin_in_the_parsers_words(tmp_path: Path) -> None:
    report = audit(problems.custom_domain_onnx(tmp_path / "custom.onnx"), targets=[TARGET])
    assert rtx_blocking(report) == [("tensorrt-rtx-parser", "FancyActivation", "fancy", "", "needs-plugin")]
    assert "Plugin not found, are the plugin name, version, and namespace correct?" in report.blocking()[0].reason


def test_runtime_reduce_axes_are_refused_by_the_parser(tmp_path: Path) -> None:
    report = audit(problems.dynamic_axes_reduce_onnx(tmp_path / "reduce.onnx"), targets=[TARGET, "onnxruntime"])
    assert rtx_blocking(report) == [("tensorrt-rtx-parser", "ReduceSum", "reduce_by_input", "", "unsupported")]
    assert "Axis input must resolve to a build-time constant" in report.blocking()[0].reason
    assert report.can_run("onnxruntime")


@pytest.mark.parametrize("model, inputs", [(small_cnn, cnn_inputs), (tiny_encoder, token_inputs)],
                         ids=["SmallCNN", "TinyEncoder"])
def test_clean_models_parse_and_build(model, inputs) -> None:
    torch.manual_seed(0)
    report = audit(model(), inputs(), targets=[TARGET])
    assert report.findings == [] and report.passed and TARGET not in report.unavailable
    assert any("accepted every node" in note for note in report.notes)
    assert any("engine for sm_89" in note and "(build check)" in note for note in report.notes)


def topk_beyond_limit_onnx(path: Path) -> Path:
    """TopK with K=5000: every TensorRT parser accepts it; the builder refuses K above 3840."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    values = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("TopK", ["x", "k"], ["y", "i"], name="top")], "topk",
        [values("x", TensorProto.FLOAT, [2, 8192])],
        [values("y", TensorProto.FLOAT, [2, 5000]), values("i", TensorProto.INT64, [2, 5000])],
        initializer=[numpy_helper.from_array(np.array([5000], np.int64), "k")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=problems.IR_VERSION),
              str(path))
    return path


def test_a_model_that_parses_can_still_fail_to_build(tmp_path: Path) -> None:
    report = audit(topk_beyond_limit_onnx(tmp_path / "topk.onnx"), targets=[TARGET])
    (finding,) = report.blocking(TARGET)
    assert (finding.stage, finding.verdict, finding.predicted) == ("tensorrt-rtx-build", "error", False)
    assert "builder: TensorRT-RTX" in finding.reason and "K exceeds the maximum value allowed (3840)" in finding.reason
    assert "tensorrt-rtx: CANNOT run the model" in render_text(report)


def test_dynamic_axes_get_a_profile_for_the_build_check(tmp_path: Path) -> None:
    from pytest_infercheck.model.export import export_onnx
    from fixtures.models import dynamic_mlp

    import onnx

    path = tmp_path / "dynamic.onnx"
    onnx.save(export_onnx(dynamic_mlp(), (torch.randn(4, 64),), dynamic_batch=True), str(path))
    findings, notes = rtx_findings(path)
    assert findings == [] and any("(build check)" in note for note in notes)


def test_target_is_offered_by_the_audit() -> None:
    assert parse_targets("tensorrt-rtx,onnxruntime") == ["tensorrt-rtx", "onnxruntime"]

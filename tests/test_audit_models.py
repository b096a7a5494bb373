"""The audit on real models: each problem model is named with its node; clean models give no findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fixtures import problem_models as problems
from fixtures.models import cnn_inputs, data_dependent_branch, small_cnn, tiny_encoder, token_inputs
from pytest_infercheck.audit import AuditReport, audit
from pytest_infercheck.audit.render import render_json, render_markdown, render_text

TARGETS = ["tensorrt", "onnxruntime"]


def blocking(report: AuditReport) -> list[tuple[str, str, str, str, str]]:
    return [(f.stage, f.target, f.operator, f.node, f.module_path) for f in report.blocking()]


CLEAN = [(small_cnn, cnn_inputs), (tiny_encoder, token_inputs)]


@pytest.mark.parametrize("model, inputs", CLEAN, ids=["SmallCNN", "TinyEncoder"])
def test_clean_models_have_no_findings(model, inputs, tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = audit(model(), inputs(), targets=TARGETS)  # every stage, torch ones included
    assert report.findings == [] and report.passed
    assert report.node_count > 5
    # The older table too, on the same export.
    import onnx

    from pytest_infercheck.model.export import export_onnx

    path = tmp_path / "model.onnx"
    onnx.save(export_onnx(model(), (inputs(),), dynamic_batch=False), str(path))
    older = audit(path, targets=TARGETS, trt_version="10.1")
    assert older.findings == [] and any("predicted from the TensorRT 10.1 table" in note for note in older.notes)


@pytest.fixture(scope="module")
def det_report() -> AuditReport:
    return audit(problems.det_model(), problems.det_inputs(), targets=[*TARGETS, "onnxruntime-cuda"])


def test_unsupported_operator_is_named_with_node_and_module(det_report: AuditReport) -> None:
    assert blocking(det_report) == [("tensorrt-static", "tensorrt", "Det", "n0", "head")]
    (finding,) = det_report.findings
    assert finding.verdict == "unsupported" and finding.predicted
    assert "predicted from the TensorRT 10.15 table" in finding.reason
    assert not det_report.can_run("tensorrt") and det_report.can_run("onnxruntime")


def test_double_det_is_also_beyond_onnxruntime() -> None:
    report = audit(problems.double_det_model(), problems.det_inputs(), targets=TARGETS)
    found = {(f.target, f.operator, f.node, f.module_path, f.verdict) for f in report.findings}
    assert ("onnxruntime", "Det", "n0", "head", "unsupported") in found
    assert ("tensorrt", "Det", "n0", "head", "unsupported") in found
    ort = next(f for f in report.findings if f.target == "onnxruntime")
    assert "Could not find an implementation for Det" in ort.reason and not ort.predicted


def test_custom_domain_operator(tmp_path: Path) -> None:
    path = problems.custom_domain_onnx(tmp_path / "custom.onnx")
    report = audit(path, targets=TARGETS)
    assert {(f.target, f.node, f.verdict) for f in report.blocking()} == {
        ("tensorrt", "fancy", "needs-plugin"), ("onnxruntime", "fancy", "unsupported")}
    lint = [f for f in report.findings if f.stage == "polygraphy-lint"]
    assert [(f.node, f.verdict) for f in lint] == [("fancy", "warning")]


def test_reduce_with_runtime_axes(tmp_path: Path) -> None:
    report = audit(problems.dynamic_axes_reduce_onnx(tmp_path / "reduce.onnx"), targets=TARGETS)
    assert blocking(report) == [("tensorrt-static", "tensorrt", "ReduceSum", "reduce_by_input", "")]
    assert "'axes'" in report.findings[0].reason
    assert report.can_run("onnxruntime")  # ONNX Runtime takes axes at run time


def test_operator_the_exporter_cannot_translate() -> None:
    report = audit(problems.untranslatable_model(), problems.vector_inputs(), targets=TARGETS)
    ((stage, target, operator, node, module),) = blocking(report)
    assert (stage, target, operator, module) == ("onnx-export", "*", "aten.cummax", "running")
    assert node.endswith(f"problem_models.py:{cummax_line()} in forward")  # the user's line, not the node's name
    assert not report.can_run("tensorrt") and not report.can_run("onnxruntime")
    assert any("did not export" in note for note in report.notes)


def test_data_dependent_control_flow() -> None:
    report = audit(data_dependent_branch(), torch.randn(2, 8), targets=TARGETS)
    (export,) = report.blocking()
    assert export.stage == "torch-export" and export.node.endswith("fixtures/models.py:95")
    assert "data-dependent control flow" in export.reason and "if y.sum() > 0" in export.reason
    assert export.module_path == "(root)"
    breaks = [f for f in report.findings if f.stage == "torch-graph-breaks"]
    assert breaks and breaks[0].verdict == "warning" and breaks[0].node == export.node


def test_allow_list_turns_known_gaps_into_non_blocking() -> None:
    report = audit(problems.det_model(), problems.det_inputs(), targets=TARGETS, allow_nodes=["other"])
    assert not report.passed  # allowing another node changes nothing
    assert report.allow(operators=["Det"]).passed and report.findings[0].allowed
    assert "unsupported (allowed)" in render_text(report)


def test_reports_render_and_round_trip(det_report: AuditReport) -> None:
    report = AuditReport.from_dict(json.loads(render_json(det_report)))
    text = render_text(report)
    assert "tensorrt: CANNOT run the model" in text and "n0 [head]" in text
    assert "onnxruntime-cuda: not checked here: CUDAExecutionProvider is not in this onnxruntime build" in text
    assert "| Det | 1 | n0 [head] | unsupported |" in render_markdown(report)
    assert report.to_dict()["can_run"] == {"tensorrt": False, "onnxruntime": True, "onnxruntime-cuda": True}
    assert report.blocking()[0].node == "n0"


def test_fp16_overflow_is_named_where_the_range_is_left() -> None:
    report = audit(problems.fp16_overflow_model(), problems.overflow_inputs(), targets=TARGETS)
    (finding,) = report.findings
    assert (finding.stage, finding.target, finding.operator, finding.module_path) == ("fp16-range", "*", "Gemm", "amplify")
    assert finding.verdict == "warning" and report.passed  # FP32 engines are fine: a warning, not a block
    assert "65504" in finding.reason


def test_onnx_file_without_inputs_skips_the_range_check(tmp_path: Path) -> None:
    report = audit(problems.dynamic_axes_reduce_onnx(tmp_path / "reduce.onnx"), targets=["onnxruntime"])
    assert report.findings == [] and "FP16 range not checked: it needs example inputs" in report.notes


def cummax_line() -> int:
    """The line of RunningMax.forward that calls torch.cummax (fixtures/problem_models.py), found, not typed."""
    import inspect

    from fixtures.problem_models import RunningMax

    lines, first = inspect.getsourcelines(RunningMax.forward)
    return first + next(i for i, line in enumerate(lines) if "cummax" in line)

"""The audit agrees with the plugin (issue 22, item 4): the same exporter fallback, located findings,
attention masks that are not FP16 overflow, a headline that counts unchecked targets, native logs
kept out of the terminal, and one test that audits and checks the same models and compares."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from fixtures import problem_models as problems
from fixtures.models import cnn_inputs, small_cnn
from pytest_infercheck.audit import AuditReport, Finding, audit
from pytest_infercheck.audit.render import render_text, rows
from pytest_infercheck.model.export import DYNAMO, TORCHSCRIPT


def hf_models():
    pytest.importorskip("transformers")
    from fixtures import hf_models

    return hf_models


def agreement_model(name: str) -> tuple:
    """(make, inputs) of one of the models the audit and the plugin both judge (AGREEMENT_MODELS' table)."""
    if name == "cnn":
        return small_cnn, cnn_inputs
    if name == "untranslatable":
        return problems.untranslatable_model, problems.vector_inputs
    hf = hf_models()
    return {"bert": (hf.bert, hf.text_inputs), "t5_fallback": (hf.t5_encoder, hf.text_inputs)}[name]


@pytest.fixture(scope="module")
def _audits() -> dict[str, AuditReport]:
    return {}  # filled by the first test of the module (of this process) to ask for each model


@pytest.fixture
def audited(_audits: dict[str, AuditReport]):
    """``audited(name)``: ``audit(make(), inputs(), targets=["onnxruntime"])`` of one of the agreement models,
    made after ``torch.manual_seed(0)`` as the plugin's run makes it. Each model is audited once per module
    (the T5 fallback, BERT, the CNN and the untranslatable model were audited twice or three times, 8 s),
    and each test gets a copy of its own."""

    def get(name: str) -> AuditReport:
        if name not in _audits:
            make, inputs = agreement_model(name)
            torch.manual_seed(0)
            _audits[name] = audit(make(), inputs(), targets=["onnxruntime"])
        return copy.deepcopy(_audits[name])

    return get


# -- 1. the exporter fallback, with its findings located ----------------------------------------------

def test_a_model_the_dynamo_exporter_fails_is_audited_through_the_torchscript_fallback(audited) -> None:
    report = audited("t5_fallback")
    assert report.exporter == TORCHSCRIPT and report.node_count > 0
    assert report.can_run("onnxruntime") and report.passed  # was "CANNOT run": only the dynamo exporter was tried
    (dynamo,) = [f for f in report.findings if f.stage in ("torch-export", "onnx-export")]
    assert dynamo.verdict == "warning" and f"the {TORCHSCRIPT} fallback exported the model" in dynamo.reason
    assert dynamo.node.endswith(".py:1131") or ".py:" in dynamo.node  # located: file:line
    assert f"exported by {TORCHSCRIPT}" in render_text(report).splitlines()[0]


def test_a_clean_model_says_the_dynamo_exporter_made_it(audited) -> None:
    report = audited("cnn")
    assert report.exporter == DYNAMO and report.findings == []


def test_when_both_exporters_fail_the_finding_blocks_and_says_both(audited) -> None:
    report = audited("untranslatable")
    (finding,) = report.blocking()
    # located at the user's line (the FX node's stack trace), in its module
    from tests.test_audit_models import cummax_line

    assert finding.node.endswith(f"problem_models.py:{cummax_line()} in forward") and finding.module_path == "running"
    assert "the TorchScript-based exporter (fallback) failed too" in finding.reason
    assert report.exporter == "" and not report.can_run("onnxruntime")


def _torchvision():
    try:  # a torchvision built for another torch raises RuntimeError at import, not ImportError
        import torchvision
    except Exception as err:
        pytest.skip(f"torchvision does not import here: {type(err).__name__}: {str(err)[:100]}")
    return torchvision


def test_faster_rcnn_is_not_reported_as_beyond_onnxruntime() -> None:
    torchvision = _torchvision()
    torch.manual_seed(0)
    model = torchvision.models.detection.fasterrcnn_mobilenet_v3_large_320_fpn(weights=None, weights_backbone=None)
    report = audit(model.eval(), torch.rand(1, 3, 320, 320), targets=["onnxruntime"])
    assert report.can_run("onnxruntime"), render_text(report)
    assert all(f.node for f in report.findings if f.stage.startswith(("torch", "onnx-export")))


# -- 2. every error row located, graph breaks one row per place -----------------------------------------

def _shift(x: torch.Tensor) -> torch.Tensor:
    if x.sum() > 0:  # a branch on data: torch.compile breaks the graph here, once per call
        return x + 1
    return x - 1


class BreaksThreeTimes(nn.Module):
    """Three calls reach the same line that breaks the graph (torchvision's boxes.py:151 in Faster R-CNN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _shift(_shift(_shift(x) * 2) * 3)


def test_graph_breaks_are_one_row_per_location_with_a_count() -> None:
    report = audit(BreaksThreeTimes(), torch.randn(2, 4), targets=["onnxruntime"])
    breaks = [f for f in report.findings if f.stage == "torch-graph-breaks"]
    (finding,) = breaks
    assert finding.count == 3 and finding.node.endswith(f"test_audit_agreement.py:{_line_of('if x.sum() > 0:')}")
    (row,) = [r for r in rows(report.findings) if "graph break" in r[4]]
    assert row[1] == "3" and row[2].count(".py:") == 1
    assert "(3 times)" in finding.describe()


def test_error_rows_without_a_node_are_one_row_each_located() -> None:
    findings = [Finding("torch-export", "*", "", "a.py:1", "failed", "error"),
                Finding("torch-export", "*", "", "a.py:1", "failed", "error"),
                Finding("torch-export", "*", "", "b.py:2", "failed", "error")]
    assert [(r[1], r[2]) for r in rows(findings)] == [("2", "a.py:1"), ("1", "b.py:2")]


def test_every_export_error_finding_has_a_location(audited) -> None:
    from fixtures.models import data_dependent_branch

    for report in [audit(data_dependent_branch(), torch.randn(2, 8), targets=["onnxruntime"]),
                   audited("untranslatable")]:
        assert report.blocking() and all(f.node for f in report.blocking())


def _line_of(text: str) -> int:
    source = Path(__file__).read_text().splitlines()
    return next(i for i, line in enumerate(source, 1) if line.strip().startswith(text))


# -- 3. attention masks are not FP16 overflow; real overflow still is -------------------------------------

class MaskedScores(nn.Module):
    """A BERT-style additive mask (float32's lowest where masked, through Where and Add), then,
    when ``amplify``, a genuine overflow: activations scaled to ~1e6."""

    def __init__(self, amplify: bool) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.amplify = amplify

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        scores = self.proj(x) @ self.proj(x).transpose(-1, -2)
        lowest = torch.finfo(torch.float32).min
        additive = torch.where(mask[:, None, :] > 0, torch.zeros((), dtype=x.dtype), torch.full((), lowest))
        attention = torch.softmax(scores + additive, dim=-1)
        out = attention @ x
        return out * 1e6 if self.amplify else out


def _masked_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    mask = torch.ones(2, 5)
    mask[0, 3:] = 0
    return torch.rand(2, 5, 8, generator=torch.Generator().manual_seed(0)), mask


def test_an_attention_mask_at_float32s_lowest_is_not_fp16_overflow() -> None:
    report = audit(MaskedScores(amplify=False), _masked_inputs(), targets=["onnxruntime"])
    assert [f for f in report.findings if f.stage == "fp16-range"] == []
    assert any("attention mask at float32's lowest value" in note for note in report.notes)


def test_real_overflow_beside_a_mask_is_still_reported() -> None:
    report = audit(MaskedScores(amplify=True), _masked_inputs(), targets=["onnxruntime"])
    (finding,) = [f for f in report.findings if f.stage == "fp16-range"]
    assert finding.operator == "Mul" and "65504" in finding.reason


def test_bert_mask_is_recognised(audited) -> None:
    report = audited("bert")
    assert [f for f in report.findings if f.stage == "fp16-range"] == [] and report.passed


def test_mask_helpers_tell_masks_from_overflow() -> None:
    from pytest_infercheck.audit.fp16_range import _holds_mask, _mask_only, _peak

    lowest = np.finfo(np.float32).min
    assert _holds_mask(np.array([0.0, lowest], np.float32)) and _holds_mask(np.array([1.0, -np.inf], np.float32))
    assert not _holds_mask(np.array([lowest, 1e5], np.float32)) and not _mask_only(np.array([-1e5], np.float32))
    assert not _holds_mask(np.array([np.finfo(np.float32).max], np.float32))  # positive: not a mask
    assert _peak(np.array([lowest + 3, 2.0], np.float32), skip_masks=True) == 2.0


# -- 4. the headline counts targets not checked here ------------------------------------------------------

def test_headline_never_claims_every_target_when_one_was_not_checked() -> None:
    report = AuditReport(model="M", targets=["onnxruntime", "tensorrt", "onnxruntime-cuda"])
    report.unavailable["onnxruntime-cuda"] = "CUDAExecutionProvider is not in this onnxruntime build: pip install x"
    header = render_text(report).splitlines()[0]
    assert "every target" not in header
    assert header.endswith("2 of 3 targets can run it; 1 not checked here "
                           "(onnxruntime-cuda: CUDAExecutionProvider is not in this onnxruntime build)")
    assert report.to_dict()["not_checked"] == ["onnxruntime-cuda"] and report.passed  # exit 0: nothing cannot
    report.add([Finding("ort-placement", "tensorrt", "Det", "n0", "no", "unsupported")])
    assert report.headline() == ("1 of 3 targets can run it; 1 cannot (tensorrt); 1 not checked here "
                                 "(onnxruntime-cuda: CUDAExecutionProvider is not in this onnxruntime build)")
    report.unavailable.clear()
    report.findings.clear()
    assert report.headline() == "every target can run it"


# -- 5. native libraries' logs captured -------------------------------------------------------------------

def _unused_initializer_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])
    inits = [numpy_helper.from_array(np.ones((4,), np.float32), f"unused_{i}") for i in range(3)]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y], initializer=inits)
    onnx.save(helper.make_model(graph, ir_version=problems.IR_VERSION, opset_imports=[helper.make_opsetid("", 17)]),
              str(path))
    return path


def test_onnxruntime_logs_are_captured_and_kept_as_notes(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    import onnxruntime

    from pytest_infercheck.audit.native_logs import captured_native_logs

    path = _unused_initializer_onnx(tmp_path / "unused.onnx")
    notes: list[str] = []
    with captured_native_logs("onnx-checker", notes):  # a session with default options warns on fd 2
        onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert "onnxruntime" not in capfd.readouterr().err
    assert notes == ["onnx-checker: ONNX Runtime logged (warning, 3 times): Removing initializer '…'. "
                     "It is not used by any node and should be removed from the model."]


def test_auditing_an_onnx_file_prints_only_the_report(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from pytest_infercheck.cli import main

    path = _unused_initializer_onnx(tmp_path / "unused.onnx")
    assert main(["audit", str(path), "--targets", "tensorrt,onnxruntime"]) == 0
    captured = capfd.readouterr()
    assert captured.err == "" and "[W:onnxruntime" not in captured.out  # were 3 coloured warnings on stderr
    assert ("ONNX Runtime logged (warning, 3 times): Removing initializer '…'. It is not used by any node"
            in captured.out)  # kept in the report's notes


# -- 6. the audit and the plugin, on the same models --------------------------------------------------------

AGREEMENT_MODELS = """
import pytest
from fixtures import hf_models as hf
from fixtures import problem_models as problems
from fixtures.models import cnn_inputs, small_cnn

MODELS = {
    "cnn": (small_cnn, cnn_inputs),
    "untranslatable": (problems.untranslatable_model, problems.vector_inputs),
    "bert": (hf.bert, hf.text_inputs),
    "t5_fallback": (hf.t5_encoder, hf.text_inputs),
}

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
@pytest.mark.parametrize("name", list(MODELS))
def test_model(infercheck, name):
    import torch
    torch.manual_seed(0)
    make, inputs = MODELS[name]
    tolerances = {"last_hidden_state": {"atol": 1e-4}} if name in ("bert", "t5_fallback") else None
    infercheck(make(), inputs(), tolerances=tolerances)
"""


def test_the_audit_and_the_plugin_agree_on_onnxruntime(run_plugin, tmp_path: Path, audited) -> None:
    hf_models()
    report_path = tmp_path / "report.json"
    result = run_plugin(AGREEMENT_MODELS, f"--infer-report={report_path}")
    outcomes = {r["nodeid"].split("[")[-1].split("-")[-1].rstrip("]"): r for r in json.loads(report_path.read_text())["results"]}
    plugin_ran = {name: r["outcome"] == "passed" for name, r in outcomes.items()}
    can_run = {name: audited(name).can_run("onnxruntime") for name in ("cnn", "untranslatable", "bert", "t5_fallback")}
    assert can_run == plugin_ran, result.stdout.str()[-3000:]
    assert can_run == {"cnn": True, "untranslatable": False, "bert": True, "t5_fallback": True}


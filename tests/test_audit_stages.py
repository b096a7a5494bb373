"""The stages alone: ONNX Runtime placement with the providers this build has, the live TensorRT
parser's answers turned into findings (with a stand-in parser: TensorRT cannot be installed here),
onnx.checker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from fixtures.models import cnn_inputs, small_cnn
from fixtures.problem_models import IR_VERSION, custom_domain_onnx
from pytest_infercheck.audit import onnx_graph
from pytest_infercheck.audit.onnx_stage import checker_findings
from pytest_infercheck.audit.ort_placement import placement_findings
from pytest_infercheck.audit.tensorrt_live import installed_version, parser_findings, tensorrt_findings
from pytest_infercheck.model.export import export_onnx


@pytest.fixture(scope="module")
def cnn_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("cnn") / "model.onnx"
    onnx.save(export_onnx(small_cnn(), (cnn_inputs(),), dynamic_batch=False), str(path))
    return path


def test_cpu_placement_has_no_fallbacks(cnn_onnx: Path) -> None:
    assert placement_findings(cnn_onnx, "onnxruntime") == ([], None)


def test_nodes_left_to_the_cpu_are_fallbacks(cnn_onnx: Path) -> None:
    # The Azure provider is in this build and claims no nodes: every node falls back to the CPU,
    # exactly as unsupported nodes do when the CUDA provider is asked for.
    model = onnx.load(str(cnn_onnx))
    findings, unavailable = placement_findings(cnn_onnx, "onnxruntime-cuda",
                                               providers=["AzureExecutionProvider", "CPUExecutionProvider"],
                                               module_paths=onnx_graph.module_paths(model))
    assert unavailable is None
    assert [f.node for f in findings] == [node.name for node in model.graph.node]
    assert {f.verdict for f in findings} == {"fallback"} and not any(f.blocking for f in findings)
    conv = findings[0]
    assert conv.operator == "Conv" and conv.module_path.startswith("features")
    assert "runs on CPUExecutionProvider, not AzureExecutionProvider" in conv.reason


@pytest.mark.parametrize("target, provider", [("onnxruntime-cuda", "CUDAExecutionProvider"),
                                              ("onnxruntime-tensorrt", "TensorrtExecutionProvider")])
def test_missing_provider_is_reported_not_raised(cnn_onnx: Path, target: str, provider: str) -> None:
    import onnxruntime

    if provider in onnxruntime.get_available_providers():
        pytest.skip(f"this onnxruntime build has {provider}")
    findings, unavailable = placement_findings(cnn_onnx, target)
    assert findings == [] and unavailable.startswith(f"{provider} is not in this onnxruntime build")


def test_model_onnxruntime_cannot_load(tmp_path: Path) -> None:
    path = custom_domain_onnx(tmp_path / "custom.onnx")
    (finding,) = placement_findings(path, "onnxruntime", node_ops={"relu": "Relu", "fancy": "FancyActivation"})[0]
    assert (finding.node, finding.operator, finding.verdict) == ("fancy", "FancyActivation", "unsupported")
    assert "not a registered function/op" in finding.reason and "Load model from" not in finding.reason


def test_checker_names_the_bad_node(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    bad = helper.make_node("Relu", ["x"], ["y"], name="relu_with_bad_attribute", alpha=1.0)
    model = helper.make_model(helper.make_graph([bad], "bad", [x], [y]), ir_version=IR_VERSION,
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "bad.onnx"))
    (finding,) = checker_findings(tmp_path / "bad.onnx")
    assert (finding.node, finding.operator, finding.verdict, finding.target) == ("relu_with_bad_attribute", "Relu",
                                                                               "error", "*")


@dataclass
class StandInParserError:
    """What tensorrt.OnnxParser.get_error(i) returns, for the translation test only (no TensorRT here)."""

    name: str
    operator: str
    text: str

    def node_name(self) -> str:
        return self.name

    def node_operator(self) -> str:
        return self.operator

    def desc(self) -> str:
        return self.text


def test_parser_answers_become_findings(cnn_onnx: Path) -> None:
    from pytest_infercheck.audit.tensorrt_live import parser_errors

    model = onnx.load(str(cnn_onnx))
    names = [node.name for node in model.graph.node]

    class StandInParser:  # the two members parser_errors reads, as TensorRT's parser has them
        num_errors = 1

        def get_error(self, index: int) -> StandInParserError:
            return StandInParserError(names[2], "MaxPool", "unsupported dilations")

    errors = parser_errors(StandInParser())
    # Subgraph 0 is supported; subgraph 1 holds the node the error names; subgraph 2 fails with no error.
    nodelists = [([0, 1], True), ([2, 3], False), ([6, 7], False)]
    findings = parser_findings(model, False, nodelists, errors, onnx_graph.module_paths(model))
    assert [(f.node, f.verdict, f.predicted) for f in findings] == [
        (names[2], "unsupported", False), (names[6], "unsupported", False), (names[7], "unsupported", False)]
    assert "unsupported dilations" in findings[0].reason and findings[0].module_path
    assert parser_findings(model, True, [([0, 1, 2], True)], [], {}) == []


@pytest.mark.skipif(installed_version() is not None, reason="TensorRT is installed: the live parser answers")
def test_without_tensorrt_the_findings_are_predicted(tmp_path: Path) -> None:
    path = custom_domain_onnx(tmp_path / "custom.onnx")
    (finding,) = tensorrt_findings(path, "10.1")
    assert finding.predicted and "predicted from the TensorRT 10.1 table" in finding.reason

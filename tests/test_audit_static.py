"""The predicted TensorRT check: every table row, the restriction checks, versions, opsets, domains."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_infercheck.audit.tensorrt_static import available_versions, load_matrix, resolve_version, static_findings

REFERENCE = Path(__file__).resolve().parent / "reference"  # TensorRT's published tables (README there)
VERSIONS = ("10.1", "10.15")
IR_VERSION = 10


def one_node_model(op_type: str, *, opset: int = 17, domain: str = "", inputs: tuple[str, ...] = (),
                   outputs: tuple[str, ...] = ("y",), initializers: tuple[Any, ...] = (),
                   graph_inputs: tuple[Any, ...] = (), extra_nodes: tuple[Any, ...] = (), **attributes: Any) -> onnx.ModelProto:
    node = helper.make_node(op_type, list(inputs), list(outputs), name="probe", domain=domain, **attributes)
    y = helper.make_tensor_value_info(outputs[0], TensorProto.FLOAT, None)
    graph = helper.make_graph([*extra_nodes, node], "probe", list(graph_inputs), [y], initializer=list(initializers))
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    return helper.make_model(graph, opset_imports=imports, ir_version=IR_VERSION)


def table_rows(version: str) -> dict[str, bool]:
    """Y/N per operator straight from the original table row kept in the data file."""
    rows = {}
    for name, entry in load_matrix(version).operators.items():
        cells = [c.strip() for c in entry["row"].strip("|").split("|")]
        assert cells[0] == name
        rows[name] = cells[1] == "Y"
    return rows


@pytest.mark.parametrize("version", VERSIONS)
def test_every_operator_in_the_table_gets_the_table_verdict(version: str) -> None:
    rows = table_rows(version)
    assert len(rows) > 190
    for operator, supported in rows.items():
        findings = static_findings(one_node_model(operator), version, fold=False)
        verdicts = [f.verdict for f in findings]
        assert verdicts == ([] if supported else ["unsupported"]), (operator, findings)
        for finding in findings:
            assert finding.predicted and f"predicted from the TensorRT {version} table" in finding.reason
            assert (finding.node, finding.operator, finding.target) == ("probe", operator, "tensorrt")


def test_tables_differ_where_tensorrt_changed() -> None:
    # Added between 10.1 and 10.15 (10.15's table has them as Y; 10.1's as N or absent).
    for operator in ("HannWindow", "STFT", "BlackmanWindow"):
        assert static_findings(one_node_model(operator), "10.1", fold=False)[0].verdict == "unsupported"
        assert static_findings(one_node_model(operator), "10.15", fold=False) == []
    assert static_findings(one_node_model("RMSNormalization"), "10.1", fold=False)[0].verdict == "unknown"


@pytest.mark.parametrize("version", VERSIONS)
def test_data_files_match_the_reference_tables(version: str) -> None:
    text = (REFERENCE / f"tensorrt-{version}-onnx-operators.md").read_text()
    rows = dict(re.findall(r"^\|\s*([A-Za-z0-9_]+)\s*\|\s*([YN])\s*\|", text, flags=re.MULTILINE))
    assert {op: flag == "Y" for op, flag in rows.items()} == table_rows(version)
    data = json.loads((Path(__file__).resolve().parents[1] / "pytest_infercheck" / "data" /
                       f"tensorrt-{version}.json").read_text())
    low, high = map(int, re.search(r"opset (\d+) to opset (\d+)", text).groups())
    assert (data["tensorrt_version"], data["opset_min"], data["opset_max"]) == (version, low, high)


def test_version_choice() -> None:
    assert available_versions() == ["10.1", "10.15"]
    assert resolve_version(None) == "10.15" and resolve_version("10") == "10.15" and resolve_version("10.1") == "10.1"
    with pytest.raises(ValueError, match="tables: 10.1, 10.15"):
        resolve_version("8.6")


def test_opset_outside_the_supported_range() -> None:
    findings = static_findings(one_node_model("Relu", opset=21, inputs=("x",)), "10.1", fold=False)
    assert [f.verdict for f in findings] == ["opset"]
    assert "opsets 9 to 20" in findings[0].reason
    assert static_findings(one_node_model("Relu", opset=21, inputs=("x",)), "10.15", fold=False) == []


@pytest.mark.parametrize("domain", ["com.microsoft", "com.example.vision"])
def test_custom_domains_need_a_plugin(domain: str) -> None:
    (finding,) = static_findings(one_node_model("QuickGelu", domain=domain, inputs=("x",)), fold=False)
    assert finding.verdict == "needs-plugin" and domain in finding.reason


def test_operator_missing_from_the_table_is_unknown() -> None:
    (finding,) = static_findings(one_node_model("NoSuchOp", inputs=("x",)), fold=False)
    assert finding.verdict == "unknown"


def tensor(name: str, values: Any, dtype: Any = np.int64) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def float_input(name: str = "x", shape: Any = (1, 3, 8, 8)) -> Any:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def test_reduce_axes_must_be_constant() -> None:
    axes_input = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    runtime = one_node_model("ReduceSum", opset=18, inputs=("x", "axes"), graph_inputs=(float_input(), axes_input))
    (finding,) = static_findings(runtime, fold=False)
    assert finding.verdict == "restricted" and "'axes'" in finding.reason
    constant = one_node_model("ReduceSum", opset=18, inputs=("x", "axes"), graph_inputs=(float_input(),),
                              initializers=(tensor("axes", [1]),))
    assert static_findings(constant, fold=False) == []
    # Before opset 18 axes is an attribute: constant by construction.
    assert static_findings(one_node_model("ReduceSum", opset=13, inputs=("x",), axes=[1]), fold=False) == []


def test_axes_computed_from_constants_pass_after_folding() -> None:
    # axes = Add(1, 0), both constants: Polygraphy's folding turns it into an initializer.
    add = helper.make_node("Add", ["one", "zero"], ["axes"], name="make_axes")
    model = one_node_model("ReduceSum", opset=18, inputs=("x", "axes"), graph_inputs=(float_input(),),
                           initializers=(tensor("one", [1]), tensor("zero", [0])), extra_nodes=(add,))
    assert [f.verdict for f in static_findings(model, fold=False)] == ["restricted"]
    assert static_findings(model, fold=True) == []


@pytest.mark.parametrize("zero_point, verdicts", [(0, []), (3, ["restricted"])])
def test_quantize_zero_point_must_be_zero(zero_point: int, verdicts: list[str]) -> None:
    model = one_node_model("QuantizeLinear", inputs=("x", "scale", "zp"), graph_inputs=(float_input(),),
                           initializers=(tensor("scale", 0.1, np.float32), tensor("zp", zero_point, np.int8)))
    assert [f.verdict for f in static_findings(model, fold=False)] == verdicts


@pytest.mark.parametrize("k, verdicts", [(16, []), (4096, ["restricted"])])
def test_topk_k_limit(k: int, verdicts: list[str]) -> None:
    model = one_node_model("TopK", inputs=("x", "k"), outputs=("values", "indices"),
                           graph_inputs=(float_input(shape=(1, 8192)),), initializers=(tensor("k", [k]),))
    assert [f.verdict for f in static_findings(model, fold=False)] == verdicts


def test_pooling_rank_dilations_and_indices() -> None:
    pool_1d = one_node_model("MaxPool", inputs=("x",), graph_inputs=(float_input(shape=(1, 3, 16)),), kernel_shape=[2])
    assert "1D pooling" in static_findings(pool_1d, fold=False)[0].reason
    pool_2d = one_node_model("MaxPool", inputs=("x",), graph_inputs=(float_input(),), kernel_shape=[2, 2])
    assert static_findings(pool_2d, fold=False) == []
    dilated = one_node_model("MaxPool", inputs=("x",), graph_inputs=(float_input(),), kernel_shape=[2, 2],
                             dilations=[2, 2])
    assert "dilations" in static_findings(dilated, fold=False)[0].reason
    with_indices = one_node_model("MaxPool", inputs=("x",), outputs=("y", "indices"), graph_inputs=(float_input(),),
                                  kernel_shape=[2, 2])
    with_indices.graph.output.append(helper.make_tensor_value_info("indices", TensorProto.INT64, None))
    assert "'Indices'" in static_findings(with_indices, fold=False)[0].reason


def test_attribute_values() -> None:
    unsorted = one_node_model("TopK", inputs=("x", "k"), outputs=("values", "indices"), sorted=0,
                              graph_inputs=(float_input(shape=(1, 64)),), initializers=(tensor("k", [4]),))
    assert "sorted" in static_findings(unsorted, fold=False)[0].reason
    summed = one_node_model("ScatterND", inputs=("x", "i", "u"), reduction="add")
    assert "reduction" in static_findings(summed, fold=False)[0].reason

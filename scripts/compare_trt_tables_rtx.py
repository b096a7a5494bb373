#!/usr/bin/env python3
"""The static TensorRT 10.x tables against TensorRT-RTX's real parser: where do their verdicts differ?

    PYTHONPATH=. python scripts/compare_trt_tables_rtx.py > /tmp/compare.md

Three markdown tables (pasted in docs/audit.md):
1. every row of each table (pytest_infercheck/data/tensorrt-10.*.json): the row's Y/N against the
   parser's ``supports_operator`` (its importer registry and per-operator checks);
2. standard ONNX operators that no table lists, which the parser does import;
3. each restriction the static audit checks, as a small model: the static verdict against the
   tensorrt-rtx audit stage (parse, then a build for sm_89).
Needs tensorrt_rtx (pip install 'pytest-infercheck[tensorrt-rtx]').
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_infercheck.audit.tensorrt_rtx_stage import parser_label, rtx_findings  # noqa: E402
from pytest_infercheck.audit.tensorrt_static import available_versions, load_matrix, static_findings  # noqa: E402
from pytest_infercheck.backends import trt_strongly_typed as st  # noqa: E402


def rtx_parser() -> Any:
    trt = st.TENSORRT_RTX.load()
    logger = st.collecting_logger(trt)
    network = trt.Builder(logger).create_network(0)
    return trt.OnnxParser(network, logger), network, logger


def row_differences() -> list[str]:
    parser, _network, _logger = rtx_parser()
    lines = [f"| table | operator | table says | {parser_label()} says |", "|---|---|---|---|"]
    for version in available_versions():
        matrix = load_matrix(version)
        for operator, row in sorted(matrix.operators.items()):
            live = bool(parser.supports_operator(operator))
            if live != row["supported"]:
                lines.append(f"| {version} ({len(matrix.operators)} rows) | {operator} | "
                             f"{'Y' if row['supported'] else 'N'} | {'Y' if live else 'N'} |")
    return lines


def beyond_the_tables() -> list[str]:
    parser, _network, _logger = rtx_parser()
    listed = set().union(*(load_matrix(v).operators for v in available_versions()))
    standard = sorted({s.name for s in onnx.defs.get_all_schemas() if s.domain == "" and not s.deprecated})
    imported = [op for op in standard if op not in listed and parser.supports_operator(op)]
    refused = [op for op in standard if op not in listed and not parser.supports_operator(op)]
    return [f"Standard ONNX operators (onnx {onnx.__version__}) in no table: {len(imported) + len(refused)}; "
            f"{parser_label()} imports {len(imported)}: {', '.join(imported) or '-'}; "
            f"refuses {len(refused)}: {', '.join(refused) or '-'}"]


def model(nodes: list, inputs: list, outputs: list, initializers: tuple = ()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "probe", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10)


def value(name: str, shape: Any, dtype: int = TensorProto.FLOAT) -> Any:
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name: str, values: Any, dtype: Any = np.int64) -> Any:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def restriction_cases() -> dict[str, onnx.ModelProto]:
    x4 = value("x", [1, 3, 8, 8])
    y = value("y", None)
    node = helper.make_node
    return {
        "ReduceSum, axes a run-time input": model(
            [node("ReduceSum", ["x", "axes"], ["y"], name="probe")], [x4, value("axes", [1], TensorProto.INT64)], [y]),
        "QuantizeLinear, zero point 3": model(
            [node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="probe"), node("DequantizeLinear", ["q", "s", "zp"], ["y"])],
            [x4], [y], (const("s", 0.1, np.float32), const("zp", 3, np.int8))),
        "TopK, K=4096": model(
            [node("TopK", ["x", "k"], ["y", "i"], name="probe")], [value("x", [1, 8192])],
            [y, value("i", None, TensorProto.INT64)], (const("k", [4096]),)),
        "TopK, sorted=0": model(
            [node("TopK", ["x", "k"], ["y", "i"], name="probe", sorted=0)], [value("x", [1, 64])],
            [y, value("i", None, TensorProto.INT64)], (const("k", [4]),)),
        "MaxPool, 1D": model([node("MaxPool", ["x"], ["y"], name="probe", kernel_shape=[2])], [value("x", [1, 3, 16])], [y]),
        "MaxPool, dilations 2": model(
            [node("MaxPool", ["x"], ["y"], name="probe", kernel_shape=[2, 2], dilations=[2, 2])], [x4], [y]),
        "MaxPool, Indices output used": model(
            [node("MaxPool", ["x"], ["y", "i"], name="probe", kernel_shape=[2, 2])], [x4],
            [y, value("i", None, TensorProto.INT64)]),
        "ScatterND, reduction=add": model(
            [node("ScatterND", ["x", "idx", "u"], ["y"], name="probe", reduction="add")], [value("x", [4, 4])], [y],
            (const("idx", [[1], [2]]), const("u", np.ones((2, 4)), np.float32))),
        "Det": model([node("Det", ["x"], ["y"], name="probe")], [value("x", [2, 3, 3])], [y]),
    }


def restriction_table() -> list[str]:
    lines = [f"| case | TensorRT 10.15 table (predicted) | {parser_label()} + sm_89 build (live) |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for case, proto in restriction_cases().items():
            static = static_findings(proto, "10.15", fold=False)
            path = Path(tmp) / "probe.onnx"
            onnx.save(proto, str(path))
            live, _notes = rtx_findings(path)
            lines.append(f"| {case} | {verdicts(static)} | {verdicts(live, live=True)} |")
    return lines


def verdicts(findings: list, *, live: bool = False) -> str:
    if not findings:
        return "runs (parses and builds)" if live else "runs"
    shown = []
    for finding in findings:
        reason = finding.reason.split(": ", 1)[-1] if live else finding.reason.split(" (predicted")[0]
        shown.append(f"{finding.verdict}: {reason[:230]}".replace("|", "/"))
    return "; ".join(shown)


def main() -> int:
    print(f"{st.TENSORRT_RTX.label} {st.TENSORRT_RTX.version()}, onnx {onnx.__version__}\n")
    print("\n".join(row_differences()), end="\n\n")
    print("\n".join(beyond_the_tables()), end="\n\n")
    print("\n".join(restriction_table()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

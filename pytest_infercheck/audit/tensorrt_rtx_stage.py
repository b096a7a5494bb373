"""TensorRT-RTX, live: its real ONNX parser and builder, on any machine (no GPU needed).

Target ``tensorrt-rtx``.  Two checks, both run by the library itself, never predicted:
- parse: TensorRT-RTX's parser checks every node before importing any, so one parse names each
  unsupported node with its operator, its PyTorch module (from the exporter's node metadata) and
  the parser's own reason ("TensorRT-RTX 1.7 parser: UNSUPPORTED_NODE in checkDet: false");
- build: a model that parses can still fail to build; the engine is built for a compute capability
  (default sm_89) exactly as the tensorrt-rtx backend builds it.
The parser reads the file as exported (it folds constant subgraphs itself), which is also what the
backend parses, so the node names are the export's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from . import onnx_graph
from .findings import Finding

PARSE_STAGE = "tensorrt-rtx-parser"
BUILD_STAGE = "tensorrt-rtx-build"
TARGET = "tensorrt-rtx"


def unavailable_reason() -> Optional[str]:
    """Why this target cannot be checked here (None when tensorrt_rtx is installed)."""
    from ..backends.trt_strongly_typed import TENSORRT_RTX

    if TENSORRT_RTX.available():
        return None
    return f"tensorrt_rtx is not installed: {TENSORRT_RTX.install}"


def parser_label() -> str:
    """"TensorRT-RTX 1.7 parser": the basis every finding of this stage names."""
    from ..backends.trt_strongly_typed import TENSORRT_RTX

    return f"{TENSORRT_RTX.label} {TENSORRT_RTX.short_version()} parser"


def rtx_findings(onnx_path: Path | str, *, target: Optional[str] = None,
                 module_paths: Optional[dict[str, str]] = None, build: bool = True) -> tuple[list[Finding], list[str]]:
    """Findings and notes of TensorRT-RTX's parser (and, when it parses, its builder) on ``onnx_path``."""
    from ..backends.tensorrt_rtx import DEFAULT_TARGET
    from ..backends.trt_strongly_typed import NetworkBuildError, TENSORRT_RTX, parse_onnx

    model = onnx_graph.load(Path(onnx_path))
    if module_paths is None:
        module_paths = onnx_graph.module_paths(model)
    parsed = parse_onnx(TENSORRT_RTX, onnx_path)
    label = parser_label()
    if not parsed.ok:
        return parse_findings(model, parsed.errors, module_paths, label), [
            f"tensorrt-rtx: {label} rejected {len(parsed.errors)} node(s) (live, the real parser)"]
    notes = [f"tensorrt-rtx: {label} accepted every node (live)"]
    if not build:
        return [], notes
    from ..backends.trt_strongly_typed import BuildFigures, build_serialized

    capability = target or DEFAULT_TARGET
    try:
        built = build_serialized(parsed, target=capability)
    except NetworkBuildError as err:
        builder = f"{TENSORRT_RTX.label} {TENSORRT_RTX.short_version()} builder"
        return [Finding(BUILD_STAGE, TARGET, "", "", f"{builder}: {err}", "error")], notes
    figures = BuildFigures(built.size, built.seconds, built.target, built.library)
    notes.append(f"tensorrt-rtx: {figures.describe()} (build check)")
    return [], notes


def parse_findings(model: object, errors: list, module_paths: dict[str, str], label: str) -> list[Finding]:
    """One finding per parser error, on the node's label as the other stages write it."""
    nodes = list(model.graph.node)  # type: ignore[attr-defined]
    findings = []
    for error in errors:
        node_label = error.node
        if not node_label and 0 <= error.node_index < len(nodes):
            node_label = f"{nodes[error.node_index].op_type}_{error.node_index}"  # as onnx_graph.walk labels it
        verdict = "needs-plugin" if "plugin not found" in error.reason.lower() else "unsupported"
        findings.append(Finding(PARSE_STAGE, TARGET, error.operator, node_label, f"{label}: {error.describe()}",
                                verdict, predicted=False, module_path=module_paths.get(node_label, "")))
    return findings

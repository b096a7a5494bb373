"""TensorRT, live: the ONNX parser through Polygraphy, where `tensorrt` imports; the table where it does not.

`tensorrt_findings(onnx_path, version)` is the one entry point the TensorRT backend and the check
call: it runs the parser when TensorRT is installed (and is the version asked for, if one was),
else the static prediction from the versioned support matrix (tensorrt_static).

The live path folds constants first (what `polygraphy surgeon sanitize --fold-constants` does), so
restrictions that folding removes do not count, then asks the parser which subgraphs it supports:
`supports_model_v2` + `num_subgraphs` / `is_subgraph_supported` / `get_subgraph_nodes` on TensorRT 11
(where `supports_model` is gone), `supports_model` before; Polygraphy's `inspect capability` helper
handles both.  TensorRT cannot be installed on the machines this project is tested on: the
translation of parser answers into findings is tested with a stand-in parser, named as such.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any, Optional, Sequence

from . import onnx_graph
from .findings import Finding

STAGE = "tensorrt-parser"
TARGET = "tensorrt"


def installed_version() -> Optional[str]:
    """The importable TensorRT's version, or None (found without importing it unless it is there)."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt

        return str(tensorrt.__version__)
    except Exception:  # the index's placeholder package raises on import: no usable TensorRT
        return None


def live_applies(version: Optional[str]) -> bool:
    """The parser can answer for ``version``: TensorRT imports and is that major.minor (or none was asked)."""
    installed = installed_version()
    if installed is None:
        return False
    return version is None or installed.split(".")[:2] == str(version).split(".")[:2]


def tensorrt_findings(onnx_path: Path | str, version: Optional[str] = None) -> list[Finding]:
    """Nodes TensorRT cannot run: from its parser where it applies, else predicted from the X.Y table."""
    if live_applies(version):
        return live_findings(Path(onnx_path))
    from .tensorrt_static import static_findings

    return static_findings(onnx_graph.load(Path(onnx_path)), version)


def live_findings(onnx_path: Path) -> list[Finding]:
    from polygraphy.tools.inspect.subtool.capability import supports_model

    original = onnx_graph.load(onnx_path)
    module_paths = onnx_graph.module_paths(original)
    folded, _ = onnx_graph.fold_constants(original)
    with tempfile.TemporaryDirectory(prefix="infercheck-trt-") as tmp:
        path = Path(tmp) / "folded.onnx"
        import onnx

        onnx.save(folded, str(path))
        supported, nodelists, parser = supports_model(str(path))
    return parser_findings(folded, supported, nodelists, parser_errors(parser), module_paths)


def parser_errors(parser: Any) -> list[tuple[str, str, str]]:
    """(node name, operator, description) of every error the parser recorded."""
    errors = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        errors.append((str(error.node_name()), str(error.node_operator()), str(error.desc())))
    return errors


def parser_findings(model: Any, supported: bool, nodelists: Sequence[tuple[Sequence[int], bool]],
                    errors: Sequence[tuple[str, str, str]], module_paths: dict[str, str]) -> list[Finding]:
    """One finding per node the parser rejected (by its errors) or left in an unsupported subgraph."""
    if supported and not errors:
        return []
    nodes = list(model.graph.node)
    findings: dict[str, Finding] = {}
    for name, operator, description in errors:
        findings[name] = Finding(STAGE, TARGET, operator, name, f"TensorRT's ONNX parser: {description}",
                                 "unsupported", module_path=module_paths.get(name, ""))
    for indices, ok in nodelists:
        labels = {int(i): nodes[int(i)].name or f"{nodes[int(i)].op_type}_{i}" for i in indices}
        if ok or set(labels.values()) & set(findings):
            continue  # a subgraph whose failing node an error already names: report that node only
        for index, label in labels.items():
            node = nodes[index]
            findings.setdefault(label, Finding(
                STAGE, TARGET, node.op_type, label,
                "in a subgraph TensorRT's parser reports as unsupported (supports_model)", "unsupported",
                module_path=module_paths.get(label, "")))
    return list(findings.values())

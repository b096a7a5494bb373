"""ONNX validity: onnx.checker, then Polygraphy's `check lint` (runs on ONNX Runtime; no TensorRT needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .findings import ALL_TARGETS, Finding

CHECKER = "onnx-checker"
LINT = "polygraphy-lint"
_BAD_NODE = re.compile(r"Bad node spec for node\. Name: (?P<node>\S*) OpType: (?P<op>\S+)")


def checker_findings(path: Path) -> list[Finding]:
    """onnx.checker's verdict: a model it rejects is rejected by every runtime's loader too."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as err:
        text = str(err).strip()
        match = _BAD_NODE.search(text)
        first = text.splitlines()[0] if text else "invalid model"
        return [Finding(CHECKER, ALL_TARGETS, match["op"] if match else "", match["node"] if match else "",
                        f"onnx.checker: {first}", "error")]
    return []


def lint_findings(path: Path, node_ops: dict[str, str], module_paths: dict[str, str]) -> tuple[list[Finding], list[str]]:
    """Polygraphy `check lint` entries beyond onnx.checker's (findings, notes).

    Lint runs each node on ONNX Runtime with random inputs, so its runtime errors may be artefacts
    of that data: they are warnings here; the ONNX Runtime placement stage, which builds a real
    session, is the authority on whether ONNX Runtime runs the model.
    """
    import importlib.util

    from .ort_placement import onnxruntime_missing

    if importlib.util.find_spec("onnx_graphsurgeon") is None:
        return [], ["Polygraphy lint skipped: pip install onnx-graphsurgeon (the linter needs it)"]
    missing_ort = onnxruntime_missing()
    if missing_ort:  # the linter runs every node on ONNX Runtime
        return [], [f"Polygraphy lint skipped: {missing_ort}"]
    try:
        report = _run_lint(path)
    except Exception as exc:  # lint feeds random data of the declared shapes and types: a dim of 10**12 (numpy's
        # allocation error) or a string input (its type error) ended the audit with a traceback; lint is advisory
        text = " ".join(str(exc).split())[:300]
        return [], [f"Polygraphy lint could not run on this model: {type(exc).__name__}: {text}"]
    findings = []
    for entry in report.lint_entries:
        if entry.get("source") == "onnx.checker":
            continue  # checker_findings reports these with the node parsed out
        message = " ".join(str(entry.get("message", "")).split())
        for node in entry.get("nodes") or [""]:
            findings.append(Finding(LINT, ALL_TARGETS, node_ops.get(node, ""), node,
                                    f"Polygraphy lint ({entry.get('source')}): {message}",
                                    "error" if entry.get("source") == "onnx_loader" else "warning",
                                    module_path=module_paths.get(node, "")))
    return findings, []


def _run_lint(path: Path) -> Any:
    """Polygraphy's Lint tool, driven through its own argument parser as `polygraphy check lint PATH` would be."""
    from polygraphy.logger import G_LOGGER
    from polygraphy.tools.check.subtool.lint import Lint

    tool = Lint()
    args = tool.setup_parser().parse_args([str(path)])
    tool.parse(args)
    with G_LOGGER.verbosity(G_LOGGER.CRITICAL):
        tool.run(args)
    return tool.report

"""ONNX Runtime: which execution provider each node lands on, and nodes ONNX Runtime cannot run at all.

The session is made with the config entry `session.record_ep_graph_assignment_info` = 1 and graph
optimisations off, so the recorded assignment names the exported file's own nodes.  When the CUDA
or TensorRT provider is asked for, the nodes left to the CPU provider are "fallback" findings: the
model runs, with a device copy around each of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Sequence

from .findings import Finding

STAGE = "ort-placement"
CPU = "CPUExecutionProvider"
PROVIDERS: dict[str, tuple[str, ...]] = {
    "onnxruntime": (CPU,),
    "onnxruntime-cuda": ("CUDAExecutionProvider", CPU),
    "onnxruntime-tensorrt": ("TensorrtExecutionProvider", "CUDAExecutionProvider", CPU),
}
INSTALL_HINT = {
    "CUDAExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu",
    "TensorrtExecutionProvider": "pip install onnxruntime-gpu and TensorRT's libraries",
}
_NODE_IN_ERROR = re.compile(r"node with name '(?P<node>[^']*)'|Node \((?P<node2>[^)]*)\)")
_OP_IN_ERROR = re.compile(r"(?:(?P<domain>[\w.]+):)?(?P<op>[A-Za-z]\w*)\(-?\d+\) is not a registered function/op"
                          r"|implementation for (?P<op2>\w+)\(")


# onnxruntime stays an extra: its CPU and GPU builds install the same module and break each other (docs/audit.md).
INSTALL_ORT = ("ONNX Runtime is not installed: pip install 'pytest-infercheck[onnxruntime]' "
               "(or 'pytest-infercheck[onnxruntime-gpu]' for the CUDA provider; never both)")


def onnxruntime_missing() -> Optional[str]:
    """Why ONNX Runtime cannot be used here (not installed, or broken on import), with what to install; else None."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as err:
        detail = "" if isinstance(err, ModuleNotFoundError) else f" (importing it failed: {err})"
        return INSTALL_ORT + detail
    return None


def unavailable_reason(providers: Sequence[str]) -> Optional[str]:
    missing_library = onnxruntime_missing()
    if missing_library:
        return missing_library
    import onnxruntime

    available = onnxruntime.get_available_providers()
    missing = [p for p in providers if p not in available]
    if not missing:
        if "TensorrtExecutionProvider" in providers:
            from ..backends.onnxruntime import tensorrt_libraries_problem

            return tensorrt_libraries_problem()
        return None
    hint = INSTALL_HINT.get(missing[0], "")
    return (f"{missing[0]} is not in this onnxruntime build (it has {', '.join(available)})"
            + (f": {hint}" if hint else ""))


def placement_findings(path: Path, target: str, *, providers: Optional[Sequence[str]] = None,
                       node_ops: Optional[dict[str, str]] = None,
                       module_paths: Optional[dict[str, str]] = None) -> tuple[list[Finding], Optional[str]]:
    """(findings, why the target could not be checked here or None).

    ``providers`` overrides the target's provider list (the first one is the one asked for), so the
    placement logic can be exercised with any provider this build has.
    """
    providers = tuple(providers or PROVIDERS[target])
    reason = unavailable_reason(providers)
    if reason:
        return [], reason
    node_ops, module_paths = node_ops or {}, module_paths or {}
    try:
        session = _session(path, providers)
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/NotImplemented types
        return [_load_failure(target, exc, node_ops, module_paths)], None
    findings = []
    for subgraph in session.get_provider_graph_assignment_info():
        if subgraph.ep_name == providers[0]:
            continue
        for node in subgraph.get_nodes():
            findings.append(Finding(STAGE, target, node.op_type, node.name,
                                    f"runs on {subgraph.ep_name}, not {providers[0]} (a device copy each way)",
                                    "fallback", module_path=module_paths.get(node.name, "")))
    return findings, None


def _session(path: Path, providers: Sequence[str]) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=list(providers))


def _load_failure(target: str, exc: Exception, node_ops: dict[str, str], module_paths: dict[str, str]) -> Finding:
    """The session could not be made: name the node the error names, or the first node of the operator it names."""
    text = " ".join(str(exc).split())
    node, op = "", ""
    match = _NODE_IN_ERROR.search(text)
    if match:
        node = match["node"] or match["node2"] or ""
        op = node_ops.get(node, "")
    op_match = _OP_IN_ERROR.search(text)
    if op_match and not op:
        op = op_match["op"] or op_match["op2"] or ""
        node = node or next((name for name, kind in node_ops.items() if kind == op), "")
    # Drop ONNX Runtime's "[ONNXRuntimeError] : 1 : FAIL : Load model from PATH failed:" prefix.
    reason = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text.rsplit("failed:", 1)[-1].strip())[:400]
    return Finding(STAGE, target, op, node, f"ONNX Runtime cannot load the model: {reason}", "unsupported",
                   module_path=module_paths.get(node, ""))

"""The audit as the pytest flow uses it: before an engine is built, the stage for its backend.

An item whose backend cannot run the model fails with the offending nodes instead of the
builder's crash; findings declared as known gaps (allow_ops / allow_nodes) turn that failure into a
skip that names them, so a gate fails only on new gaps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from .findings import BLOCKING, Finding

MAX_LISTED = 10


@dataclass
class GateVerdict:
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.blocking]

    @property
    def allowed_blocking(self) -> list[Finding]:
        """Findings that would block, had they not been declared known gaps."""
        return [f for f in self.findings if f.allowed and f.verdict in BLOCKING]

    @property
    def notes(self) -> list[Finding]:
        return [f for f in self.findings if f.verdict == "fallback"]

    def as_dicts(self) -> list[dict]:
        return [asdict(f) for f in self.findings]


def backend_target(backend: str, device: str) -> Optional[str]:
    """The audit target an engine item stands for, or None for backends the audit does not cover."""
    if backend == "onnxruntime":
        return "onnxruntime-cuda" if device.startswith("cuda") else "onnxruntime"
    if backend == "tensorrt":
        return "tensorrt"
    return None


def gate(onnx_path: Path, backend: str, device: str, *, allow_ops: Iterable[str] = (),
         allow_nodes: Iterable[str] = (), trt_version: Optional[str] = None) -> Optional[GateVerdict]:
    target = backend_target(backend, device)
    if target is None:
        return None
    if target == "tensorrt":
        from .tensorrt_live import tensorrt_findings

        findings = tensorrt_findings(onnx_path, trt_version)
    else:
        from . import onnx_graph
        from .ort_placement import placement_findings

        model = onnx_graph.load(onnx_path)
        node_ops = onnx_graph.node_operators(model)
        findings, _ = placement_findings(onnx_path, target, node_ops=node_ops,
                                         module_paths=onnx_graph.module_paths(model))
    ops, nodes = set(allow_ops), set(allow_nodes)
    for finding in findings:
        finding.allowed = finding.operator in ops or finding.node in nodes
    return GateVerdict(findings)


def listing(findings: list[Finding]) -> str:
    lines = [f"      {f.describe()}" for f in findings[:MAX_LISTED]]
    if len(findings) > MAX_LISTED:
        lines.append(f"      ... and {len(findings) - MAX_LISTED} more")
    return "\n".join(lines)



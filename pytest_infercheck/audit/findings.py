"""What the audit found: one Finding per (stage, target, node), gathered in an AuditReport.

Plain dataclasses, JSON-ready, nothing heavy imported, so a report can be attached to a
CheckResult, travel between xdist workers, and be written by the CLI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

# Verdicts that mean "this target cannot run the model as it is"; the others inform.
BLOCKING = ("unsupported", "restricted", "unknown", "needs-plugin", "opset", "error")
# A finding for every target: the model never reaches an engine (it does not export, or is not valid ONNX).
ALL_TARGETS = "*"
TARGETS: tuple[str, ...] = ("tensorrt", "tensorrt-rtx", "onnxruntime", "onnxruntime-cuda", "onnxruntime-tensorrt")


@dataclass
class Finding:
    """One thing a stage found.

    ``verdict`` is one of BLOCKING or ``fallback`` (runs, on another device), ``warning``,
    ``unavailable`` (the target could not be checked here).  ``predicted`` is True when the finding
    comes from a support table rather than the engine itself; ``reason`` then says which table.
    """

    stage: str
    target: str
    operator: str
    node: str
    reason: str
    verdict: str
    predicted: bool = False
    module_path: str = ""
    allowed: bool = False  # declared as a known, accepted gap (allow_ops / allow_nodes)

    @property
    def blocking(self) -> bool:
        return self.verdict in BLOCKING and not self.allowed

    def applies_to(self, target: str) -> bool:
        return self.target in (target, ALL_TARGETS)

    def describe(self) -> str:
        """One line: node (operator) at module path: reason [verdict]."""
        where = self.node or "(model)"
        what = f"{where} ({self.operator})" if self.operator else where
        module = f" in {self.module_path}" if self.module_path else ""
        allowed = ", allowed" if self.allowed else ""
        return f"{what}{module}: {self.reason} [{self.verdict}{allowed}]"


@dataclass
class AuditReport:
    """Every finding for one model and the targets asked about."""

    model: str
    targets: list[str]
    trt_version: Optional[str] = None
    findings: list[Finding] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)  # target -> why it was not checked here
    notes: list[str] = field(default_factory=list)
    node_count: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> time taken

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def for_target(self, target: str) -> list[Finding]:
        return [f for f in self.findings if f.applies_to(target)]

    def blocking(self, target: Optional[str] = None) -> list[Finding]:
        return [f for f in self.findings if f.blocking and (target is None or f.applies_to(target))]

    def can_run(self, target: str) -> bool:
        return not self.blocking(target)

    @property
    def passed(self) -> bool:
        """Every target asked about can run the model (targets not checkable here do not count)."""
        return not self.blocking()

    def __bool__(self) -> bool:  # the project's convention: a result's truth value is "passed"
        return self.passed

    def nodes(self, *, blocking_only: bool = False) -> list[str]:
        chosen = self.blocking() if blocking_only else self.findings
        return list(dict.fromkeys(f.node for f in chosen if f.node))

    def allow(self, *, operators: Iterable[str] = (), nodes: Iterable[str] = ()) -> "AuditReport":
        """Mark findings on these operators or nodes as known, accepted gaps (they stop blocking)."""
        ops, names = set(operators), set(nodes)
        for finding in self.findings:
            if finding.operator in ops or finding.node in names:
                finding.allowed = True
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        data["can_run"] = {target: self.can_run(target) for target in self.targets}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditReport":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["findings"] = [Finding(**f) for f in data.get("findings", [])]
        return cls(**known)

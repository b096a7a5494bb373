"""What the audit found: one Finding per (stage, target, node), gathered in an AuditReport.

Plain dataclasses, JSON-ready, nothing heavy imported, so a report can be attached to a
CheckResult, travel between xdist workers, and be written by the CLI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Optional

# Verdicts that mean "this target cannot run the model as it is"; the others inform.
BLOCKING = ("unsupported", "restricted", "unknown", "needs-plugin", "opset", "error")
# A finding for every target: the model never reaches an engine (it does not export, or is not valid ONNX).
ALL_TARGETS = "*"


@dataclass(frozen=True)
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
    count: int = 1  # how many times it was found at this node (graph breaks at one source line)

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
        times = f" ({self.count} times)" if self.count > 1 else ""
        return f"{what}{module}: {self.reason}{times} [{self.verdict}{allowed}]"


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
    exporter: str = ""  # the ONNX exporter that made the audited file from a torch model ("" for an .onnx file)

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
        """No target asked about is known to be unable to run the model (the exit status; a target not
        checkable here is not counted as able: see ``counts``)."""
        return not self.blocking()

    def counts(self) -> tuple[list[str], list[str], list[str]]:
        """(targets that can run the model, targets that cannot, targets not checked here).

        A target not checked here still cannot run a model that blocks every target (it did not export)."""
        cannot = [t for t in self.targets if not self.can_run(t)]
        unchecked = [t for t in self.targets if t in self.unavailable and t not in cannot]
        return [t for t in self.targets if t not in cannot and t not in unchecked], cannot, unchecked

    def headline(self) -> str:
        """"every target can run it" only when every target was checked and can; else counted."""
        can, cannot, unchecked = self.counts()
        if not cannot and not unchecked:
            return "every target can run it"
        parts = [f"{len(can)} of {len(self.targets)} target{'s' * (len(self.targets) != 1)} can run it"]
        if cannot:
            parts.append(f"{len(cannot)} cannot ({', '.join(cannot)})")
        if unchecked:
            why = "; ".join(f"{t}: {_short(self.unavailable[t])}" for t in unchecked)
            parts.append(f"{len(unchecked)} not checked here ({why})")
        return "; ".join(parts)

    def __bool__(self) -> bool:  # the project's convention: a result's truth value is "passed"
        return self.passed

    def nodes(self, *, blocking_only: bool = False) -> list[str]:
        chosen = self.blocking() if blocking_only else self.findings
        return list(dict.fromkeys(f.node for f in chosen if f.node))

    def allow(self, *, operators: Iterable[str] = (), nodes: Iterable[str] = ()) -> "AuditReport":
        """Mark findings on these operators or nodes as known, accepted gaps (they stop blocking)."""
        ops, names = set(operators), set(nodes)
        self.findings = [replace(finding, allowed=True) if finding.operator in ops or finding.node in names else finding
                         for finding in self.findings]
        return self

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (the typed records' one encoder), with the verdicts derived from it beside."""
        from ..core.jsonsafe import json_safe

        data: dict[str, Any] = json_safe(self)
        data["passed"] = self.passed
        data["can_run"] = {target: self.can_run(target) for target in self.targets}
        data["not_checked"] = self.counts()[2]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AuditReport":
        """A report read back (the CLI's --json), checked field by field against the annotations; the
        derived verdicts ``to_dict`` adds are left out."""
        from ..core.codec import from_data

        return from_data(cls, {k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _short(why: str, max_chars: int = 80) -> str:
    """A reason's first clause, without asides in parentheses (the install hint after ': ' and the
    providers this build has stay in the target's own section)."""
    first = re.sub(r"\s*\([^)]*\)", "", why.split(": ", 1)[0].split("; ", 1)[0]).strip()
    return first if len(first) <= max_chars else first[: max_chars - 3] + "..."

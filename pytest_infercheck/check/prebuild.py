"""The pre-build audit stage: before an engine is built, the audit's stage for its backend.

An item whose backend cannot run the model fails with the offending nodes instead of the
builder's crash; findings declared as known gaps (allow_ops / allow_nodes) turn that failure into a
skip that names them, so a CI run fails only on new gaps.  Which audit target stands for a backend
is its descriptor's ``audit_targets``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..audit.findings import BLOCKING, Finding
from ..core.spec import Stage
from .failure import StageFailure, StageSkip

if TYPE_CHECKING:
    from ..backends.artifacts import ModelArtifacts
    from ..backends.base import BackendDescriptor
    from ..config.settings import Settings

MAX_LISTED = 10


@dataclass
class PrebuildVerdict:
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


def target_findings(onnx_path: Path, target: str) -> list[Finding]:
    """What ``target``'s audit stage finds in the ONNX file (parser or support table), nothing allowed yet;
    TensorRT-RTX's parser only: the build stage builds the engine for real."""
    from ..audit.runner import audit_target

    return audit_target(onnx_path, target, build=False)


def kept_findings(artifacts: "ModelArtifacts", target: str, device: str) -> list[Finding]:
    """``target_findings`` of the model's export, kept in the engine cache beside it.

    The same file gets the same answer from the same parser or table, and the answer is costly
    (constant folding and a graph walk: 12 s for BERT-base on a 2-core runner), while every item of
    a model asks it again: each precision, with and without CUDA graphs, and every rerun.  The key
    holds the export's key (model content, library versions, so the parser's), the support
    tables' digest and the device the audit ran for (ONNX Runtime's placement asks the providers
    this machine has; a cache carried to another machine must not answer for it).
    """
    import dataclasses
    import json

    onnx_path = artifacts.onnx_path()

    def build(directory: Path) -> None:
        found = [dataclasses.asdict(finding) for finding in target_findings(onnx_path, target)]
        (directory / FINDINGS_FILE).write_text(json.dumps(found))

    entry = artifacts.derived(f"audit-{target}", build, record=False, tables=support_tables_digest(),
                              device=audited_device(device))
    from ..core.codec import from_data, load_json

    return from_data(list[Finding], load_json(entry.file(FINDINGS_FILE)), FINDINGS_FILE)


FINDINGS_FILE = "findings.json"


def audited_device(device: str) -> str:
    """``cpu``, or the GPU's name and compute capability; ``cuda`` alone where torch sees no GPU."""
    from ..backends.artifacts import device_target

    try:
        return device_target(device)
    except Exception:  # a cuda item on a machine without one: it skips, its prediction still keyed apart
        return device


def support_tables_digest() -> str:
    """The bundled TensorRT support tables' content: a table corrected in place is a new audit."""
    import hashlib
    from importlib import resources

    digest = hashlib.sha256()
    for table in sorted(resources.files("pytest_infercheck.data").iterdir(), key=lambda t: t.name):
        if table.name.endswith(".json"):
            digest.update(table.name.encode() + table.read_bytes())
    return digest.hexdigest()[:16]


def judged(findings: list[Finding], *, allow_ops: Iterable[str] = (), allow_nodes: Iterable[str] = ()) -> PrebuildVerdict:
    """The findings with the declared known gaps marked allowed."""
    ops, nodes = set(allow_ops), set(allow_nodes)
    return PrebuildVerdict([replace(finding, allowed=finding.operator in ops or finding.node in nodes)
                            for finding in findings])


def audit_before_build(artifacts: "ModelArtifacts", descriptor: "BackendDescriptor", device: str,
                       settings: "Settings") -> list[Finding]:
    """Stage AUDIT: the findings for this backend; StageFailure on a gap, StageSkip on known gaps only.

    Returns [] when the backend has no audit target or the model does not export (the build stage
    reports the export failure with its own message).
    """
    from ..model.export import ExportError

    target = descriptor.audit_target(device)
    if target is None:
        return []
    try:
        findings = kept_findings(artifacts, target, device)
    except (ExportError, OSError):  # OSError: a full disk writing the export or the findings, as in export_in_time
        return []
    verdict = judged(findings, allow_ops=settings.allow_ops, allow_nodes=settings.allow_nodes)
    if verdict.blocking:
        raise StageFailure(Stage.AUDIT, f"{descriptor.name} cannot run {len(verdict.blocking)} node(s) of "
                           f"{artifacts.model.name}; offending nodes:\n{listing(verdict.blocking)}")
    if verdict.allowed_blocking:
        raise StageSkip(Stage.AUDIT, "only known gaps (allowed): the engine cannot be built, nothing new to check:\n"
                        + listing(verdict.allowed_blocking))
    return verdict.findings


def predicted_gaps(artifacts: "ModelArtifacts", descriptor: "BackendDescriptor", device: str,
                   settings: "Settings") -> tuple[list[Finding], str]:
    """Where a backend cannot run here but its audit can (a support table), what it predicts.

    The item still skips (nothing was built), but a CPU-only CI run learns that the model would not
    parse, node by node, before anyone books a GPU machine.  ("", []) when nothing is predicted.
    """
    from ..model.export import ExportError

    target = descriptor.audit_target(device)
    if target is None:
        return [], ""
    try:
        verdict = judged(kept_findings(artifacts, target, device), allow_ops=settings.allow_ops,
                         allow_nodes=settings.allow_nodes)
    except ExportError:
        return [], ""  # the model does not even export: the items that can run say so
    if not verdict.blocking:
        return verdict.findings, ""
    return verdict.findings, (f"; where it runs, it could not run {len(verdict.blocking)} node(s) of this model:\n"
                              f"{listing(verdict.blocking)}")


def listing(findings: list[Finding]) -> str:
    lines = [f"      {f.describe()}" for f in findings[:MAX_LISTED]]
    if len(findings) > MAX_LISTED:
        lines.append(f"      ... and {len(findings) - MAX_LISTED} more")
    return "\n".join(lines)

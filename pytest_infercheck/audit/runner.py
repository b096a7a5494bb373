"""audit(model | onnx, inputs, targets, trt_version) -> AuditReport: every stage, in pipeline order."""

from __future__ import annotations

import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Optional

from .findings import AuditReport, Finding

DEFAULT_TARGETS = ("tensorrt", "onnxruntime")


@dataclass(frozen=True)
class TargetAudit:
    """What a target's stage is given: the exported file, the report it adds to, the graph's nodes."""

    onnx_path: Path
    target: str
    report: AuditReport
    node_ops: dict[str, str]
    module_paths: dict[str, str]
    requested_trt: Optional[str]
    build: bool = True  # TensorRT-RTX: build the engine too (the plugin's pre-build audit parses only)


def parse_targets(targets: Iterable[str] | str) -> list[str]:
    """"tensorrt,onnxruntime-cuda" or a list -> validated list; a ValueError names the known targets."""
    items = [t.strip().lower() for t in targets.split(",")] if isinstance(targets, str) else [str(t).lower() for t in targets]
    items = [t for t in items if t]
    unknown = [t for t in items if t not in TARGETS]
    if unknown or not items:
        raise ValueError(f"unknown target(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"known targets: {', '.join(TARGETS)}")
    return list(dict.fromkeys(items))


def audit(model: Any, inputs: Optional[Any] = None, *, targets: Iterable[str] | str = DEFAULT_TARGETS,
          trt_version: Optional[str] = None, allow_ops: Iterable[str] = (), allow_nodes: Iterable[str] = (),
          dynamic_batch: bool = False, name: Optional[str] = None) -> AuditReport:
    """Audit a torch module (with example inputs), an .onnx path or an onnx.ModelProto for ``targets``."""
    from .tensorrt_static import resolve_version

    chosen = parse_targets(targets)
    report = AuditReport(model=name or _name_of(model), targets=chosen, trt_version=resolve_version(trt_version))
    with tempfile.TemporaryDirectory(prefix="infercheck-audit-") as tmp:
        onnx_path = _onnx_for(model, inputs, dynamic_batch, Path(tmp), report)
        if onnx_path is not None:
            audit_onnx(onnx_path, report, requested_trt=trt_version, inputs=inputs)
    return report.allow(operators=allow_ops, nodes=allow_nodes)


def audit_onnx(onnx_path: Path, report: AuditReport, *, requested_trt: Optional[str] = None,
               inputs: Optional[Any] = None) -> AuditReport:
    """The ONNX, TensorRT and ONNX Runtime stages on an exported file, into ``report``."""
    from . import onnx_graph
    from .onnx_stage import checker_findings, lint_findings

    model = onnx_graph.load(onnx_path)
    node_ops = onnx_graph.node_operators(model)
    module_paths = onnx_graph.module_paths(model)
    report.node_count = len(node_ops)
    with _timed(report, "onnx-checker"):
        report.add(checker_findings(onnx_path))
    with _timed(report, "polygraphy-lint"):
        findings, notes = lint_findings(onnx_path, node_ops, module_paths)
        report.add(findings)
        report.notes.extend(notes)
    for target in report.targets:
        with _timed(report, target):
            TARGET_STAGES[target](TargetAudit(onnx_path, target, report, node_ops, module_paths, requested_trt))
    with _timed(report, "fp16-range"):
        _fp16_range(onnx_path, inputs, report, module_paths)
    return report


def audit_target(onnx_path: Path, target: str, *, build: bool = True) -> list[Finding]:
    """One target's findings on an exported file, by the same stage the audit runs (the plugin's pre-build
    audit asks this for the target its backend's descriptor names)."""
    from . import onnx_graph
    from .tensorrt_static import resolve_version

    model = onnx_graph.load(onnx_path)
    report = AuditReport(model=onnx_path.name, targets=[target], trt_version=resolve_version(None))
    TARGET_STAGES[target](TargetAudit(onnx_path, target, report, onnx_graph.node_operators(model),
                                      onnx_graph.module_paths(model), None, build=build))
    return report.findings


def _fp16_range(onnx_path: Path, inputs: Optional[Any], report: AuditReport, module_paths: dict[str, str]) -> None:
    if inputs is None:
        report.notes.append("FP16 range not checked: it needs example inputs")
        return
    from ..model.under_test import as_input_tuple
    from .fp16_range import fp16_range_findings
    from .ort_placement import onnxruntime_missing

    missing_ort = onnxruntime_missing()
    if missing_ort:  # the range check runs the FP32 model on ONNX Runtime
        report.notes.append(f"FP16 range not checked: {missing_ort}")
        return
    try:
        findings, notes = fp16_range_findings(onnx_path, as_input_tuple(inputs), module_paths)
        report.add(findings)
        report.notes.extend(notes)
    except Exception as exc:  # a model ONNX Runtime cannot run: the placement stage has already said why
        report.notes.append(f"FP16 range not checked: ONNX Runtime could not run the model ({type(exc).__name__})")


def _tensorrt(given: TargetAudit) -> None:
    """Live parser when TensorRT imports (and is the version asked for, if any), else the table's prediction."""
    from .tensorrt_live import installed_version, live_applies, tensorrt_findings

    onnx_path, report, requested = given.onnx_path, given.report, given.requested_trt

    report.add(tensorrt_findings(onnx_path, requested if live_applies(requested) else report.trt_version))
    installed = installed_version()
    if live_applies(requested):
        report.trt_version = ".".join(str(installed).split(".")[:2])
        report.notes.append(f"tensorrt: TensorRT {installed}'s ONNX parser ran (live, after constant folding)")
        return
    why = f"TensorRT {installed} is installed, not {requested}" if installed else "TensorRT is not installed here"
    report.notes.append(f"tensorrt: {why}; findings are predicted from the TensorRT {report.trt_version} table")


def _tensorrt_rtx(given: TargetAudit) -> None:
    """TensorRT-RTX's own parser and builder (live on any machine where tensorrt_rtx is installed)."""
    from .tensorrt_rtx_stage import rtx_findings, unavailable_reason

    why = unavailable_reason()
    if why:
        given.report.unavailable[given.target] = why
        return
    findings, notes = rtx_findings(given.onnx_path, module_paths=given.module_paths, build=given.build)
    given.report.add(findings)
    given.report.notes.extend(notes)


def _onnxruntime(given: TargetAudit) -> None:
    """Where ONNX Runtime's session places each node with the target's execution providers."""
    from .ort_placement import placement_findings

    findings, unavailable = placement_findings(given.onnx_path, given.target, node_ops=given.node_ops,
                                               module_paths=given.module_paths)
    given.report.add(findings)
    if unavailable:
        given.report.unavailable[given.target] = unavailable


# The one table of audit targets: a target's name and the stage that checks it, in the order reports list
# them.  A backend names its targets in its descriptor's ``audit_targets`` (tests/test_backends_protocol.py
# holds them to this table); a new engine library's target is one row here and its stage function.
TARGET_STAGES: dict[str, Callable[[TargetAudit], None]] = {
    "tensorrt": _tensorrt,
    "tensorrt-rtx": _tensorrt_rtx,
    "onnxruntime": _onnxruntime,
    "onnxruntime-cuda": _onnxruntime,
    "onnxruntime-tensorrt": _onnxruntime,
}
TARGETS: tuple[str, ...] = tuple(TARGET_STAGES)


def _onnx_for(model: Any, inputs: Optional[Any], dynamic_batch: bool, tmp: Path, report: AuditReport) -> Optional[Path]:
    """The ONNX file to audit: the given one, or the torch model's export (after the torch stage)."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX file at {path}")
        return path
    if type(model).__module__.startswith("onnx") and hasattr(model, "graph"):
        import onnx

        onnx.save(model, str(tmp / "model.onnx"))
        return tmp / "model.onnx"
    if inputs is None:
        raise TypeError("auditing a torch module needs example inputs (a tensor, a tuple of tensors or a dict of keyword tensors)")
    from ..model.under_test import as_input_tuple
    from .torch_stage import torch_findings

    with _timed(report, "torch"):
        result = torch_findings(model, as_input_tuple(inputs), dynamic_batch=dynamic_batch)
    report.add(result.findings)
    report.notes.extend(result.notes)
    report.exporter = result.exporter
    if result.onnx_model is None:
        report.notes.append("ONNX, TensorRT and ONNX Runtime stages skipped: the model did not export to ONNX "
                            "(neither the dynamo exporter nor its TorchScript-based fallback)")
        return None
    import onnx

    onnx.save(result.onnx_model, str(tmp / "model.onnx"))
    return tmp / "model.onnx"


def _name_of(model: Any) -> str:
    if isinstance(model, (str, Path)):
        return Path(model).name
    return type(model).__name__


@contextmanager
def _timed(report: AuditReport, stage: str) -> Iterator[None]:
    """The stage timed, and what native libraries print meanwhile kept in the report's notes, not on the terminal."""
    from .native_logs import captured_native_logs

    start = time.perf_counter()
    try:
        with captured_native_logs(stage, report.notes):
            yield
    finally:
        report.seconds[stage] = round(report.seconds.get(stage, 0.0) + time.perf_counter() - start, 4)

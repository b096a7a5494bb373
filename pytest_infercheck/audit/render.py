"""An AuditReport as a terminal table, JSON, or Markdown: one table per target."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Iterable

from ..core.mdtext import md_cell
from .findings import ALL_TARGETS, AuditReport, Finding

COLUMNS = ("operator", "count", "nodes", "verdict", "reason")
MAX_NODES_SHOWN = 4


def rows(findings: Iterable[Finding]) -> list[tuple[str, ...]]:
    """One row per (operator, verdict, stage): how many, which nodes (with module paths), the first reason.

    A finding with no operator (an export failure, a graph break) is a row of its own per location:
    the same source line found again is counted in its row, not listed again."""
    groups: "OrderedDict[tuple[str, str, str, str], list[Finding]]" = OrderedDict()
    for finding in findings:
        where = "" if finding.operator else finding.node
        groups.setdefault((finding.operator, finding.verdict + (" (allowed)" if finding.allowed else ""),
                           finding.stage, where), []).append(finding)
    table: list[tuple[str, ...]] = []
    for (operator, verdict, _, _), members in groups.items():
        names = list(dict.fromkeys(f"{f.node} [{f.module_path}]" if f.module_path else f.node
                                   for f in members if f.node))
        shown = ", ".join(names[:MAX_NODES_SHOWN]) + (f", +{len(names) - MAX_NODES_SHOWN} more" if len(names) > MAX_NODES_SHOWN else "")
        table.append((operator or "-", str(sum(f.count for f in members)), shown or "-", verdict, members[0].reason))
    return table


def sections(report: AuditReport) -> list[tuple[str, str, list[tuple[str, ...]]]]:
    """(title, status line, rows) for the model-wide findings and each target."""
    out = []
    common = [f for f in report.findings if f.target == ALL_TARGETS]
    status = "blocks every target" if any(f.blocking for f in common) else ("no findings" if not common else "warnings only")
    out.append(("model (every target)", status, rows(common)))
    for target in report.targets:
        own = [f for f in report.findings if f.target == target]
        if target in report.unavailable:
            status = f"not checked here: {report.unavailable[target]}"
        elif report.can_run(target):
            status = "can run the model" + (f" ({len(own)} note(s))" if own else "")
        else:
            status = f"CANNOT run the model: {len(report.blocking(target))} blocking finding(s)"
        out.append((target, status, rows(own)))
    return out


def _header(report: AuditReport) -> str:
    table = f", TensorRT table {report.trt_version}" if "tensorrt" in report.targets else ""
    exporter = f", exported by {report.exporter}" if report.exporter else ""
    return f"infercheck audit of {report.model} ({report.node_count} ONNX nodes{table}{exporter}): {report.headline()}"


def render_text(report: AuditReport) -> str:
    lines = [_header(report)]
    for title, status, table in sections(report):
        lines += ["", f"{title}: {status}"]
        if table:
            widths = [min(max(len(str(r[i])) for r in [COLUMNS, *table]), 60 if i < 4 else 200) for i in range(5)]
            for row in [COLUMNS, *table]:
                lines.append("  " + "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    if report.notes:
        lines += ["", "notes:"] + [f"  - {note}" for note in report.notes]
    return "\n".join(lines)


def render_markdown(report: AuditReport) -> str:
    # Node names, operator names and reasons come from the model file: inert text only (mdtext).
    lines = [f"# {md_cell(_header(report))}"]
    for title, status, table in sections(report):
        lines += ["", f"## {md_cell(title)}", "", md_cell(status)]
        if table:
            lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
            lines += ["| " + " | ".join(md_cell(cell) for cell in row) + " |" for row in table]
    if report.notes:
        lines += ["", "## notes", ""] + [f"- {md_cell(note)}" for note in report.notes]
    return "\n".join(lines) + "\n"


def render_json(report: AuditReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"

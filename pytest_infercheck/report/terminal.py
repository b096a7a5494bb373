"""The terminal summary: the table, the skip reasons, the baseline section, where reports went."""

from __future__ import annotations

from typing import Any

from .table import reasons, render_text


def summary_lines(session: Any) -> list[tuple[str, bool]]:
    """(line, red) pairs for pytest's terminal reporter."""
    from ..baseline.summary import summary_lines as baseline_lines

    results = session.results
    lines = [(line, False) for line in render_text(results)]
    skipped = reasons(results)
    if skipped:
        lines += [("", False), ("skipped engines:", False)] + [(f"  {line}", False) for line in skipped]
    gate = baseline_lines(results, session.run_settings.baseline, session.baseline_update)
    if gate:
        lines.append(("", False))
        lines += [(line, line.lstrip().startswith(("REGRESSION", "FINGERPRINT"))) for line in gate]
    for label, name in (("JSON", "report"), ("Markdown", "markdown"), ("HTML", "html")):
        path = session.path(name)
        if path:
            lines.append((f"infercheck {label} report: {path}", False))
    lines += [(problem, True) for problem in session.write_problems]  # each already says what it could not do
    return lines

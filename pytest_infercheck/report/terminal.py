"""The terminal summary: the table, the skip reasons, the baseline section, where reports went."""

from __future__ import annotations

from typing import Any, Optional

from .table import (BATCH_HEADING, KERNEL_HEADING, NOTES_HEADING, kernel_lines, max_batch_lines, note_lines, reasons,
                    render_text, undecided_lines)


def summary_lines(session: Any, width: Optional[int] = None) -> list[tuple[str, bool]]:
    """(line, red) pairs for pytest's terminal reporter; the table within ``width`` when given."""
    from ..baseline.summary import summary_lines as baseline_lines

    results = session.results
    lines = [(line, False) for line in render_text(results, width)]
    kernels = kernel_lines(results)
    if kernels:
        lines += [("", False), (KERNEL_HEADING, False)] + [(f"  {line}", False) for line in kernels]
    notes = note_lines(results)
    if notes:
        lines += [("", False), (NOTES_HEADING, False)] + [(f"  {line}", False) for line in notes]
    batches = max_batch_lines(results)
    if batches:
        lines += [("", False), (BATCH_HEADING, False)] + [(f"  {line}", False) for line in batches]
    skipped = reasons(results)
    if skipped:
        lines += [("", False), ("skipped engines:", False)] + [(f"  {line}", False) for line in skipped]
    undecided = undecided_lines(results)
    if undecided:  # neither a pass nor a failure: said, so that green never hides it (--infer-baseline-strict fails it)
        lines += [("", False), (f"undecided ({len(undecided)}: the figures cannot tell pass from fail; "
                                "--infer-baseline-strict (infercheck gate --strict) makes them fail):", True)]
        lines += [(f"  {line}", False) for line in undecided]
    gate = baseline_lines(results, session.run_settings.baseline, session.baseline_update,
                          unmatched=session.unmatched_entries())
    if gate:
        lines.append(("", False))
        lines += [(line, line.lstrip().startswith(("REGRESSION", "FINGERPRINT"))) for line in gate]
    for label, name in (("JSON", "report"), ("Markdown", "markdown"), ("HTML", "html")):
        path = session.path(name)
        if path:
            lines.append((f"infercheck {label} report: {path}", False))
    lines += [(problem, True) for problem in session.write_problems]  # each already says what it could not do
    return lines


def table_width(terminalreporter: Any) -> Optional[int]:
    """The terminal's width (pytest's, which honours COLUMNS) when the summary goes to a real terminal.

    A log (CI's, a file, a captured or forwarded stream such as an xdist worker's or pytester's) has
    no width to fit and keeps every column. ``isatty()`` is not asked: stream proxies answer True.
    """
    import io
    import os

    stream = getattr(getattr(terminalreporter, "_tw", None), "_file", None)
    try:
        real_terminal = os.isatty(stream.fileno())  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        real_terminal = False
    return int(terminalreporter._tw.fullwidth) if real_terminal else None

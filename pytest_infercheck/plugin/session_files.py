"""What a session checks before any test runs, and writes after the last: one module for its files.

Start-up: every output path (a usage error naming its option), two options naming one file, the
private cache directory, a CUDA device asked for where there is none.  End: the JSON report, the
baseline update, the Markdown and HTML reports, each tried whatever happened to the others; a
write that fails is one line for the terminal summary, never a traceback at session end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .session import InfercheckSession


def usage_problems(session: "InfercheckSession") -> list[str]:
    """What is wrong with the run's settings before any test runs: each names its option."""
    from ..core.cache_dirs import check_private
    from ..core.device_check import check_device_available
    from ..core.files import colliding_outputs, output_problem

    outputs = {f"--infer-{name.replace('_', '-')}": session.path(name) for name in ("report", "markdown", "html",
                                                                                  "baseline")}
    problems: list[Optional[str]] = [f"{flag}: {problem}" for flag, path in outputs.items() if path is not None
                                     for problem in [output_problem(path)] if problem]
    problems.append(colliding_outputs(outputs))
    if not session.run_settings.no_cache:
        problems.append(check_private(session.cache_dir()))
    problems.append(check_device_available(session.run_settings.device))
    return [problem for problem in problems if problem]


def write_outputs(session: "InfercheckSession") -> list[str]:
    """On the controller: the JSON report, the baseline update, the Markdown and HTML reports.

    Each write is tried whatever happened to the others; a write that fails is one line naming the
    file (returned for the terminal summary), never a traceback at session end.
    """
    from ..core.files import write_or_reason

    problems: list[Optional[str]] = []
    report, baseline, markdown, html = (session.path(name) for name in ("report", "baseline", "markdown", "html"))
    # In the tests' order, not the order xdist's workers reported them: the same run writes the same files.
    failed_before_check = sorted(session.failed_before_check, key=lambda failed: (failed.nodeid, failed.when))
    if report:
        from ..report.json_report import write_json_report

        problems.append(write_or_reason("JSON report", report, lambda: write_json_report(report, session.results,
                                                                                  failed_before_check)))
    if baseline and session.run_settings.baseline_update:
        problems.append(update(session, baseline))
    unmatched = session.unmatched_entries()  # [] without a baseline; read once for both reports
    if markdown or os.environ.get("GITHUB_STEP_SUMMARY"):
        from ..report.markdown import failed_before_check_lines, write_markdown

        problems += write_markdown(session.results, str(markdown) if markdown else None,
                                   os.environ.get("GITHUB_STEP_SUMMARY"), baseline=session.run_settings.baseline,
                                   verdict=failed_before_check_lines(failed_before_check, heading=True),
                                   unmatched=unmatched)
    if html:
        from ..report.html import write_html

        problems.append(write_or_reason("HTML report", html, lambda: write_html(html, session.results, None,
                                                                                  failed_before_check, unmatched)))
    session.write_problems = [problem for problem in problems if problem]
    return session.write_problems


def update(session: "InfercheckSession", path: Path) -> Optional[str]:
    """The baseline update of ``--infer-baseline-update``; its summary goes to the terminal.

    A write that fails, a file broken since start-up, or figures the next run would refuse (a NaN or
    negative sample) are one line for the summary, and the run's exit status becomes a usage error:
    a CI job that blesses a baseline must not pass when nothing was blessed.
    """
    import pytest

    from ..baseline.store import update_baseline
    from ..baseline.summary import too_few_line
    from ..core.files import write_or_reason

    def write() -> None:
        session.baseline_update = update_baseline(path, session.results)

    try:
        problem = write_or_reason("baseline", path, write)
    except pytest.UsageError as err:
        problem = f"infercheck: {err}"
    if problem is None and session.baseline_update is not None and session.baseline_update.too_few_samples:
        problem = f"infercheck: {too_few_line(session.baseline_update.too_few_samples)}"
    elif problem is None and session.baseline_update is not None and session.results \
            and not session.baseline_update.written and not any(r.outcome == "failed" for r in session.results):
        # Every check skipped (a GPU job on a CPU runner): the run is green, and nothing was blessed. A failed check
        # fails the run already.
        problem = (f"infercheck: baseline file {path}: nothing blessed: none of the {len(session.results)} checks "
                   "passed with figures to record (see 'not written' above); the file is not written")
    session.baseline_refused = problem is not None
    return problem

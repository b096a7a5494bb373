"""``--infer-markdown=PATH`` and ``$GITHUB_STEP_SUMMARY``: the summary table, ready for a PR comment.

The rows are the terminal table's (report/table.py) plus a "vs baseline" column; regressions are
bold and listed again below the table with old and new figures, and every item that was not
compared (no entry, or an entry of another machine) is named, so a green table never hides a
gate that did not run.

Everything in it may come from an error message, a test id or a baseline file, and GitHub renders
raw HTML in Markdown (and in ``$GITHUB_STEP_SUMMARY``): every piece of text goes through
``mdtext.md_cell`` or ``mdtext.md_code``.
"""

from __future__ import annotations

from pathlib import Path
from typing import AbstractSet, Any, Optional, Sequence

from ..baseline.summary import UNMATCHED_WHY, entry_names, not_compared_reason, status_cell, unmatched_heading
from ..core.mdtext import md_cell as _cell, md_code as _code
from ..measure.results import BaselineStatus, CheckResult, FailedBeforeCheck, check_label, several_checks
from .table import COLUMNS, KERNEL_HEADING, item_name, ordered, rows

BASELINE_COLUMN = "vs baseline"
UNMATCHED_LISTED = 20  # baseline entries no result matched, listed in the report before a count




def headline(results: Sequence[CheckResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    regressed = sum(1 for r in results if r.baseline and r.baseline.regressions)
    undecided = sum(1 for r in results if r.undecided)
    text = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items())) or "no check"
    return (f"{text}" + (f", **{regressed} regressed**" if regressed else "")
            + (f", **{undecided} undecided**" if undecided else ""))


def render_markdown(results: Sequence[CheckResult], *, baseline: Optional[str] = None,
                    not_compared: Sequence[tuple[CheckResult, str]] = (), unmatched: Sequence[Any] = ()) -> str:
    """The table and its details; ``not_compared``: results the gate could not judge, with why (cli_saved);
    ``unmatched``: the baseline's entries of this machine no result matched (baseline/summary.unmatched_entries)."""
    in_order = ordered(results)
    with_baseline = baseline is not None
    header = list(COLUMNS) + ([BASELINE_COLUMN] if with_baseline else [])
    lines = [f"## infercheck: {headline(in_order)}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(header))) + "|"]
    for result, cells in zip(in_order, rows(in_order)):
        if with_baseline:
            cells = cells + [status_cell(result)]
        regressed = bool(result.baseline and result.baseline.regressions)
        shown = [f"**{_cell(c)}**" if regressed and i in (1, 3, len(cells) - 1) else _cell(c) for i, c in enumerate(cells)]
        lines.append("| " + " | ".join(shown) + " |")
    lines += _details(in_order, baseline, not_compared, unmatched)
    return "\n".join(lines) + "\n"


def _item(result: CheckResult, several: AbstractSet[str]) -> str:
    """The item, and which of its checks when it ran several (``several``: results.several_checks)."""
    return item_name(result.nodeid, result.spec_id) + check_label(result, several)


def _details(results: Sequence[CheckResult], baseline: Optional[str],
             not_compared: Sequence[tuple[CheckResult, str]] = (), unmatched: Sequence[Any] = ()) -> list[str]:
    lines: list[str] = []
    several = several_checks(results)
    failed = [r for r in results if r.outcome == "failed"]
    if failed:
        lines += ["", "### Failures", ""]
        for result in failed:
            reasons = [str(failure) for failure in result.failures] or [result.message or "failed"]
            lines += [f"- {_code(_item(result, several))}"] + [f"  - {_cell(line)}" for line in reasons]
    kernels = [(r, r.latency.kernel.describe()) for r in results if r.latency is not None and r.latency.kernel]
    if kernels:  # beside the wall p50 of the table: what the GPU was busy with, and which engines are launch-bound
        lines += ["", "### GPU kernel time", "", _cell(KERNEL_HEADING.rstrip(":")) + ".", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(text)}" for r, text in kernels]
    batches = [(r, r.max_batch.describe()) for r in results if r.max_batch is not None]
    if batches:
        lines += ["", "### Largest batch within the budget", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(text)}" for r, text in batches]
    recipes = [(r, r.recipe.describe()) for r in results if r.recipe is not None and r.recipe.label]
    if recipes:  # how the quantized engines were made: dynamic or static scales, their granularity
        lines += ["", "### Precision recipes", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(text)}" for r, text in recipes]
    undecided = [(r, note) for r in results for note in r.undecided]
    if undecided:
        lines += ["", "### Undecided", "", "The figures cannot tell pass from fail; `--infer-baseline-strict` "
                  "(`infercheck gate --strict`) makes these fail.", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(note)}" for r, note in undecided]
    if baseline is None:
        return lines
    improved = [(r, r.baseline) for r in results if r.baseline and r.baseline.improvements]
    if improved:
        lines += ["", "### Improvements", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(line)}" for r, b in improved for line in b.improvements]
    across = [(r, r.baseline) for r in results
              if r.baseline and r.baseline.status == BaselineStatus.FOUND and r.baseline.differences]
    if across:
        lines += ["", "### Compared across library versions", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell('; '.join(b.differences))}" for r, b in across]
    skipped_gate = [(r, not_compared_reason(r.baseline)) for r in results
                    if r.baseline and r.baseline.status != BaselineStatus.FOUND] + list(not_compared)
    if skipped_gate:
        lines += ["", f"### Not compared with the baseline ({_code(baseline)})", ""]
        lines += [f"- {_code(_item(r, several))}: {_cell(why)}" for r, why in skipped_gate]
    if unmatched:
        named = entry_names(unmatched)
        lines += ["", f"### {unmatched_heading(len(named)).capitalize()}", "", f"{UNMATCHED_WHY.capitalize()}.", ""]
        lines += [f"- {_code(name)}" for name in named[:UNMATCHED_LISTED]]
        if len(named) > UNMATCHED_LISTED:
            lines.append(f"- and {len(named) - UNMATCHED_LISTED} more")
    return lines


def failed_before_check_lines(failed_before_check: Sequence[FailedBeforeCheck], *, heading: bool = False) -> list[str]:
    """One Markdown line per test that failed before any check made a result (no table row shows it);
    ``heading``: under a bold line of their own (the session's report, where no gate verdict heads them)."""
    lines = [f"- {_code(failed.nodeid)} failed in the run before any check ({_cell(failed.when)}): "
             f"{_cell(failed.message)}" for failed in failed_before_check]
    if heading and lines:
        lines.insert(0, f"**FAILED: {len(lines)} test(s) failed before any check** (no row above shows them)")
    return lines


NO_CHECK = "No infercheck item ran (none selected, or every test failed or skipped before its check)."


def write_markdown(results: Sequence[CheckResult], path: Optional[str], step_summary: Optional[str], *,
                   baseline: Optional[str] = None, not_compared: Sequence[tuple[CheckResult, str]] = (),
                   verdict: Sequence[str] = (), unmatched: Sequence[Any] = ()) -> list[str]:
    """Write ``path`` (replaced) and append to ``step_summary`` (GitHub's job summary file) when given;
    ``verdict``: lines the gate adds (its failed verdict, the tests that failed before any check), which
    are written even when the report has no result, so a pull request's comment says why the job failed.

    Returns one line per write that failed (the other one is still attempted): the session prints
    them, and the summary and the other reports are still written.
    """
    from ..core.files import append_text, write_atomic, write_or_reason

    # With nothing to say, the file asked for is still replaced (a pull request comment built from it must not
    # show an earlier run's results); the job summary, shared with every other step, is left alone.
    text = (render_markdown(results, baseline=baseline, not_compared=not_compared, unmatched=unmatched) if results
            else f"## infercheck: no check\n\n{NO_CHECK}")
    if verdict:
        text += "\n\n" + "\n".join(verdict)
    problems = []
    if path:
        problems.append(write_or_reason("Markdown report", path, lambda: write_atomic(Path(path), text)))
    if step_summary and (results or verdict):
        problems.append(write_or_reason("job summary ($GITHUB_STEP_SUMMARY)", step_summary,
                                        lambda: append_text(step_summary, text + "\n")))
    return [problem for problem in problems if problem]

"""`infercheck gate`, `infercheck baseline update`, `infercheck report`: saved reports from the command line.

A GPU job writes ``pytest --infer-report=report.json``; a later job, on any machine, gates a merge
on it, blesses it into the baseline, or renders it (docs/gate.md).  Every verdict is
baseline/verdict.judge's and every report the session's renderer, so a saved report is judged and
shown exactly as the run that measured it would have.

Exit status: 0 nothing regressed (or: done), 1 something regressed or failed in the run, or nothing to judge
(``gate``; ``baseline update``: nothing to bless), 2 a usage error: a bad option, a report that is not an intact schema-2 report (truncated,
edited, another schema), a broken baseline file, an output that cannot be written.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from .common import EXIT_FAILED as EXIT_REGRESSED, EXIT_OK, EXIT_USAGE, UsageError


def add_commands(commands: Any) -> None:
    """The three subcommands on ``infercheck``'s subparsers."""
    from ..baseline.offline import GATE_KEYS
    from ..config.options import OPTIONS_BY_NAME, argparse_type

    gate = commands.add_parser(
        "gate", help="judge a saved --infer-report against a baseline file (exit 1 on a regression)",
        description="Compare every result of REPORT.json with its entry in BASELINE.json, as the pytest session "
                    "would have: same statistics, same machine-key rule (an entry of another machine is not applied).")
    gate.add_argument("report", metavar="REPORT.json", help="a JSON report written by pytest --infer-report=PATH")
    gate.add_argument("--baseline", required=True, metavar="BASELINE.json", help="the baseline file (it must exist: `infercheck baseline update` makes it)")
    for name in GATE_KEYS:
        option = OPTIONS_BY_NAME[name]
        gate.add_argument("--" + name.replace("_", "-"), dest=name, type=argparse_type(option), metavar=option.metavar,
                          help=option.help.replace("%", "%%") + " (default: the value the run recorded; a test's "
                          "marker or infercheck() call still wins)")
    gate.add_argument("--strict", action="store_true", help="fail results that have no baseline entry for their machine, and every undecided "
                      "figure (a comparison or a budget that cannot tell pass from fail)")
    gate.add_argument("--across-versions", action="store_true",
                      help=OPTIONS_BY_NAME["baseline_across_versions"].help + " (as --infer-baseline-across-versions)")
    _add_outputs(gate, junit=True)
    update = commands.add_parser("baseline", help="bless a saved report into the baseline file").add_subparsers(
        dest="action", required=True, metavar="update").add_parser(
        "update", help="write REPORT.json's passed results into BASELINE.json (other entries are kept)")
    update.add_argument("report", metavar="REPORT.json", help="a JSON report written by pytest --infer-report=PATH")
    update.add_argument("--baseline", required=True, metavar="BASELINE.json", help="the baseline file to update or create")
    report = commands.add_parser("report", help="render a saved --infer-report as Markdown and/or HTML")
    report.add_argument("report", metavar="REPORT.json", help="a JSON report written by pytest --infer-report=PATH")
    _add_outputs(report, junit=False)


def _add_outputs(parser: argparse.ArgumentParser, junit: bool) -> None:
    parser.add_argument("--markdown", metavar="PATH", help="write the summary as Markdown (for a PR comment)")
    parser.add_argument("--html", metavar="PATH", help="write the self-contained HTML report")
    if junit:
        parser.add_argument("--junitxml", metavar="PATH", help="write the verdicts as JUnit XML")


def run_saved(args: argparse.Namespace) -> int:
    try:
        if args.command == "gate":
            return run_gate(args)
        if args.command == "baseline":
            return run_update(args)
        return run_report(args)
    except Exception as err:
        raise _as_usage_error(err) from None


def _as_usage_error(err: Exception) -> Exception:
    """The known ways an input is unusable, as the CLI's UsageError (one line, exit 2); anything else re-raised."""
    import pytest

    from ..config.options import OptionError
    from ..report.saved import ReportError

    if isinstance(err, (ReportError, OptionError, pytest.UsageError)):
        return UsageError(str(err))
    return err


def run_gate(args: argparse.Namespace) -> int:
    from ..baseline.offline import GATE_KEYS, gate_lines, gate_results, verdict_line
    from ..baseline.store import BaselineStore
    from ..core.mdtext import md_cell
    from ..report.markdown import failed_before_check_lines
    from ..report.table import reasons, render_text

    outputs = {"--markdown": args.markdown, "--html": args.html, "--junitxml": args.junitxml}
    check_outputs(outputs, {"REPORT.json": args.report, "--baseline": args.baseline})
    report = load(args.report)
    store = BaselineStore.load(Path(args.baseline))
    if not store.exists:  # a typo in CI's path would otherwise pass every later gate, comparing nothing
        raise UsageError(f"--baseline {args.baseline} does not exist: there is nothing to gate against; check the "
                         f"path, or make it once from a run you trust: infercheck baseline update REPORT.json "
                         f"--baseline {args.baseline}")
    given = {name: getattr(args, name) for name in GATE_KEYS if getattr(args, name) is not None}
    outcome = gate_results(report.results, store, given, strict=args.strict,
                           failed_before_check=report.failed_before_check, across_versions=args.across_versions)
    report = dataclasses.replace(report, results=outcome.in_order)  # the gate's records, which every report shows
    print(header("gate", report) + f" against {args.baseline}")
    print("\n".join(render_text(report.results) + reasons(report.results)))
    print("\n".join(gate_lines(outcome)))
    verdict = [] if outcome.passed else [f"**{md_cell(verdict_line(outcome))}**"]
    verdict += failed_before_check_lines(outcome.failed_before_check)
    write_reports(report, outputs, baseline=args.baseline, step_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
                  not_compared=outcome.not_judged, verdict=verdict, failed_before_check=outcome.failed_before_check,
                  unmatched=outcome.unmatched, gate_failed="" if outcome.passed else verdict_line(outcome))
    return EXIT_OK if outcome.passed else EXIT_REGRESSED


def run_update(args: argparse.Namespace) -> int:
    from ..baseline.offline import without_baseline
    from ..baseline.store import update_baseline
    from ..baseline.summary import update_lines

    check_outputs({"--baseline": args.baseline}, {"REPORT.json": args.report})
    report = load(args.report, check_figures=False)  # update_baseline refuses bad figures per entry
    # blessing accepts a regression against the run's own baseline: that is what it is for
    report = dataclasses.replace(report, results=[without_baseline(result) for result in report.results])
    print(header("baseline update", report))
    summary = update_baseline(Path(args.baseline), report.results)
    print("\n".join(update_lines(summary)))
    if summary.too_few_samples:  # a blessing asked for and not made: the job must not pass
        from ..baseline.summary import too_few_line

        raise UsageError(too_few_line(summary.too_few_samples))
    if not summary.written:  # no result, or every one skipped or failed (a GPU job that ran on a CPU runner)
        why = (f"none of the report's {len(report.results)} results passed with figures to record" if report.results
               else "the report has no result")
        print(f"baseline update FAILED: nothing to bless: {why}; {args.baseline} is not written")
        return EXIT_REGRESSED
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    from ..report.table import reasons, render_text

    outputs = {"--markdown": args.markdown, "--html": args.html}
    check_outputs(outputs, {"REPORT.json": args.report})
    report = load(args.report)
    print(header("report", report))
    print("\n".join(render_text(report.results) + reasons(report.results)))
    files = {r.baseline.file for r in report.results if r.baseline is not None}
    write_reports(report, outputs, baseline=sorted(files)[0] if files else None, step_summary=None)
    return EXIT_OK


def load(path: str, *, check_figures: bool = True) -> Any:
    from ..report.saved import load_report

    return load_report(Path(path), check_figures=check_figures)


def header(command: str, report: Any) -> str:
    machines = "; ".join(dict.fromkeys(describe_machine(m) for m in report.machines)) or "no machine recorded"
    return (f"infercheck {command}: {report.path} (written by pytest-infercheck {report.plugin_version or '?'} "
            f"at {report.created or '?'}; {len(report.results)} results; measured on {machines})")


def describe_machine(machine: Mapping[str, Any]) -> str:
    """``cuda NVIDIA H100 80GB HBM3, host Example CPU x16``: a machine key in a few words."""
    gpu = (machine.get("gpu") or {}).get("name")
    return f"{machine.get('device', '?')}{f' {gpu}' if gpu else ''}, host {machine.get('cpu') or '?'} x{machine.get('cpus', '?')}"


def check_outputs(outputs: Mapping[str, Optional[str]], inputs: Mapping[str, str]) -> None:
    """Refuse an output that cannot be written, or that would overwrite another output or an input."""
    from ..core.files import colliding_outputs, output_problem

    for option, path in outputs.items():
        problem = output_problem(path) if path else None
        if problem:
            raise UsageError(f"{option} {problem}")
    collision = colliding_outputs({**inputs, **outputs})
    if collision:
        raise UsageError(collision)


def write_reports(report: Any, outputs: Mapping[str, Optional[str]], *, baseline: Optional[str],
                  step_summary: Optional[str], not_compared: Sequence[tuple[Any, str]] = (),
                  verdict: Sequence[str] = (), failed_before_check: Sequence[Any] = (),
                  unmatched: Sequence[Any] = (), gate_failed: str = "") -> None:
    """Markdown (and the job summary), HTML, JUnit XML: the session's renderers on the saved results."""
    from ..core.files import write_or_reason
    from ..report.html import write_html
    from ..report.junit import write_junit
    from ..report.markdown import write_markdown

    results = report.results
    problems: list[Optional[str]] = list(write_markdown(results, outputs.get("--markdown"), step_summary,
                                                        baseline=baseline, not_compared=not_compared, verdict=verdict,
                                                        unmatched=unmatched))
    html, junit = outputs.get("--html"), outputs.get("--junitxml")
    if html:
        problems.append(write_or_reason("HTML report", html, lambda: write_html(Path(html), results, report.environment,
                                                                                 failed_before_check, unmatched)))
    if junit:
        problems.append(write_or_reason("JUnit XML", junit, lambda: write_junit(Path(junit), results,
                                                                                 failed_before_check, gate_failed)))
    found = [problem for problem in problems if problem]
    if found:
        raise UsageError("; ".join(found))


__all__: Sequence[str] = ("add_commands", "run_saved")

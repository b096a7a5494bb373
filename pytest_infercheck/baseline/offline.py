"""The gate on saved results: ``infercheck gate`` judges a report's results as the session would have.

Every comparison is verdict.judge's, on the result's own machine key, so an entry recorded on
another machine is not applied here either.  The thresholds are the ones the session resolved for
each result (recorded in its ``settings``: ini file, command line, marker, ``infercheck()`` call);
the gate's own options override the run-level ones (default, ini file, command line) and never a
test's marker or call, just as the command line does in a session.

Judging is judge/verdict.py's one function, called as the session calls it: the result's facts
(with the gate's comparison in place of the run's) and the test's recorded outcome.  A result whose
verdict without any baseline is not a pass (failed, skipped, or short of its measurements in the
run) has nothing to compare; the gate says so, and a failure in the run fails the gate as it
failed the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Optional, Sequence

from ..judge.verdict import Thresholds, judge
from ..config.options import OPTIONS_BY_NAME, OptionError
from ..config.parsers import parse_max_regression, parse_percent
from ..measure.results import BaselineStatus, CheckResult, FailedBeforeCheck, several_checks
from ..core.spec import Outcome, Stage
from .comparison import compare_with_entry
from .store import BaselineStore, Entry
from .summary import summary_lines, unmatched_entries, who

GATE_KEYS = ("max_regression", "kernel_tolerance", "accuracy_factor", "accuracy_floor")
TEST_SOURCES = ("marker", "fixture call")  # a test's own settings: the run's options do not override them


@dataclass(frozen=True)
class GateSettings:
    """The allowances comparison.compare_with_entry reads, for one result."""

    max_regression: float
    kernel_tolerance: float
    accuracy_factor: float
    accuracy_floor: float


def recorded_value(option: Any, value: Any) -> Any:
    """A setting's value as the run recorded it, checked by the option's parser.  A percentage is recorded
    as the fraction the run parsed (100000% as 1000.0), which the parser's guard against a user's bare
    number above 1 ("5" meant as 5%) would refuse, failing the gate of a valid run: a recorded number is
    checked as a fraction instead (finite, not negative), every other check of the parser kept."""
    if option.parse is parse_max_regression and isinstance(value, (int, float)) and not isinstance(value, bool):
        return parse_percent(value)
    return option.parse(value)


def recorded_across_versions(result: CheckResult) -> bool:
    """Whether the run compared this result across library versions: the gate of a job apart from the run's
    does the same, as it keeps the run's allowances (an upgrade's gating must not vanish between jobs)."""
    recorded = (result.settings.get("baseline_across_versions") or {}).get("value")
    return recorded is True


def settings_for(result: CheckResult, given: Mapping[str, Any]) -> GateSettings:
    """The result's recorded thresholds, with ``given`` (the gate's options) over the run-level ones."""
    values: dict[str, Any] = {}
    for name in GATE_KEYS:
        option = OPTIONS_BY_NAME[name]
        recorded = result.settings.get(name) or {}
        if name in given and recorded.get("source", "default") not in TEST_SOURCES:
            values[name] = given[name]
        elif recorded.get("value") is not None:
            try:
                values[name] = recorded_value(option, recorded["value"])
            except OptionError as err:
                raise OptionError(f"{result.nodeid}: recorded setting {name}: {err}") from None
        else:
            values[name] = option.default
    return GateSettings(**values)


def without_baseline(result: CheckResult) -> CheckResult:
    """The run's verdict with no baseline comparison: what the facts say before any gate judges them
    (a result that failed only on the run's own baseline passes again; the gate compares it anew)."""
    return judge(replace(result, baseline=None), result.test)  # under the run's own recorded thresholds


def why_not_judged(result: CheckResult) -> Optional[str]:
    """None when the result can be compared with a baseline; else what happened to it in the run."""
    if result.outcome == Outcome.SKIPPED:
        return "skipped in the run" + (f": {_first_line(result.message)}" if result.message else "")
    if result.outcome == Outcome.FAILED:
        reason = str(result.failures[0]) if result.failures else _first_line(result.message) or "failed"
        if result.not_raised:
            return f"failed in the run, not raised: its test took the verdict (raise_on_failure=False) ({_first_line(reason)})"
        return f"failed in the run ({_first_line(reason)})"
    if result.outcome != Outcome.PASSED:
        return f"{result.outcome} in the run"
    if result.machine is None or result.accuracy is None:
        return "no figures recorded (it did not reach its measurements)"
    return None


@dataclass
class GateOutcome:
    """Every result of the report, judged where it could be, and the reason for each one that was not."""

    baseline: str
    judged: list[CheckResult] = field(default_factory=list)
    not_judged: list[tuple[CheckResult, str]] = field(default_factory=list)
    in_order: list[CheckResult] = field(default_factory=list)  # the same records, in the report's order
    # The run's own failures that no result shows: they fail the gate as failed checks do.
    failed_before_check: list[FailedBeforeCheck] = field(default_factory=list)
    # Entries of the report's machines that no result matched (summary.unmatched_entries): said, never failed.
    unmatched: list[Entry] = field(default_factory=list)

    @property
    def results(self) -> list[CheckResult]:
        return self.judged + [result for result, _ in self.not_judged]

    @property
    def gate_failures(self) -> list[CheckResult]:
        """Regressed (or, with --strict, not compared) results."""
        return [result for result in self.judged if result.failures]

    @property
    def failed_in_run(self) -> list[CheckResult]:
        """Failures that failed the run. A check whose test took its failure (raise_on_failure=False)
        did not: its test passed or failed on its own asserts, and the gate follows the run."""
        return [result for result, _ in self.not_judged if result.outcome == Outcome.FAILED and not result.not_raised]

    @property
    def nothing_to_judge(self) -> bool:
        """No result measured anything: an empty report (collection errored, or no test ran a check) or
        one whose every check stopped before timing. A gate that passes it compared nothing."""
        return not self.judged

    @property
    def passed(self) -> bool:
        return (not self.gate_failures and not self.failed_in_run and not self.nothing_to_judge
                and not self.failed_before_check)


def gate_results(results: Sequence[CheckResult], store: BaselineStore, given: Mapping[str, Any],
                 strict: bool = False, failed_before_check: Sequence[FailedBeforeCheck] = (),
                 across_versions: bool = False) -> GateOutcome:
    """Judge each result against ``store``, as the session would have; the run's own verdicts for the rest.
    The records are new ones (``results`` stay as they were): the caller reports ``in_order``.
    ``failed_before_check``: the report's tests that failed before any check (they fail the gate).
    ``across_versions``: entries of other library versions on the same hardware are compared too, as they
    are for a result whose run asked for it (its recorded --infer-baseline-across-versions)."""
    outcome = GateOutcome(str(store.path), failed_before_check=list(failed_before_check))
    for saved in results:
        result = without_baseline(saved)  # a new record: the saved one stays as the report holds it
        reason = why_not_judged(result)
        if reason is not None:
            outcome.not_judged.append((result, reason))
        else:
            across = across_versions or recorded_across_versions(result)
            compared = replace(result, baseline=compare_with_entry(result, store, settings_for(result, given),
                                                                   across_versions=across))
            result = judge(compared, result.test, Thresholds(strict=strict))
            outcome.judged.append(result)
        outcome.in_order.append(result)
    outcome.unmatched = unmatched_entries(store, results)
    return outcome


def gate_lines(outcome: GateOutcome) -> list[str]:
    """The terminal's account: the session's baseline summary, then what could not be compared, then the verdict."""
    several = several_checks(outcome.results)
    lines = summary_lines(outcome.judged, outcome.baseline, None, several, unmatched=outcome.unmatched)
    if outcome.failed_before_check:
        lines.append(f"  failed in the run before any check ({len(outcome.failed_before_check)}: no result, "
                     "so nothing of it was measured or compared):")
        lines += [f"    {failed.describe()}" for failed in outcome.failed_before_check]
    if outcome.not_judged:
        lines.append(f"  not compared ({len(outcome.not_judged)}: nothing measured to compare in the run):")
        lines += [f"    {who(result, several)}: {why}" for result, why in outcome.not_judged]
    # What --strict failed beyond the regressions summary_lines lists: no entry, or an undecided comparison.
    lines += [f"  FAILED {who(r, several)}: {failure}" for r in outcome.gate_failures for failure in r.failures
              if failure.stage == Stage.BASELINE or failure.message.startswith("undecided:")]
    # Undecided figures not already failed by --strict (listed above): each named with why, as the session lists
    # them, those of an item that failed for another reason too (the summary's count includes them).
    passed_undecided = [r for r in outcome.judged
                        if r.undecided and not any(f.message.startswith("undecided:") for f in r.failures)]
    if passed_undecided:
        lines.append(f"  undecided ({len(passed_undecided)}: the figures cannot tell pass from fail; --strict makes "
                     "them fail):")
        lines += [f"    {who(r, several)}: {note}" for r in passed_undecided for note in r.undecided]
    return lines + [verdict_line(outcome)]


def verdict_line(outcome: GateOutcome) -> str:
    regressed = [r for r in outcome.judged if r.baseline and r.baseline.regressions]
    strict = [r for r in outcome.gate_failures if r not in regressed]
    if outcome.passed:
        compared = sum(1 for r in outcome.judged if r.baseline and r.baseline.status == BaselineStatus.FOUND)
        return f"gate passed: nothing regressed ({compared} of {len(outcome.results)} results compared with an entry)"
    undecided = [r for r in strict if any(f.message.startswith("undecided:") for f in r.failures)]
    no_entry = [r for r in strict if r not in undecided]
    parts = [f"{len(regressed)} regressed"] if regressed else []
    parts += [f"{len(undecided)} undecided (--strict)"] if undecided else []
    parts += [f"{len(no_entry)} not compared (--strict)"] if no_entry else []
    parts += [f"{len(outcome.failed_in_run)} failed in the run"] if outcome.failed_in_run else []
    if outcome.failed_before_check:
        parts.append(f"{len(outcome.failed_before_check)} failed in the run before any check")
    if outcome.nothing_to_judge and not outcome.failed_before_check:
        parts.append("nothing to judge: the report has no result" if not outcome.results else
                     f"nothing to judge: none of its {len(outcome.results)} results measured anything to compare")
    return "gate FAILED: " + ", ".join(parts)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


__all__ = ["GateOutcome", "GateSettings", "gate_lines", "gate_results", "settings_for", "why_not_judged",
           "without_baseline"]

"""The one verdict: what a check's facts mean under the thresholds that judge them.

``verdict(facts, thresholds, test)`` is a pure function.  It is called, identically, by

- the fixture, right after the stages recorded their facts (check/__init__.py);
- the session, once pytest's report of the test is known, on the xdist worker and again on the
  controller (session.settle): an assertion after the check, a skip or an xfail changes the outcome;
- ``infercheck gate``, on a saved report, after it compared the figures with its own baseline
  (baseline/offline.py): replaying a report is a recomputation, never an undo.

No stage writes an outcome or a failure line: a stage records what it measured (the accuracy per
output with its tolerance, the budget's decision with its confidence, the comparison with the
baseline, the stage that stopped the check and why), and this module alone turns those facts into
failures, "undecided" notes, the outcome, the stage and the message.  ``apply`` returns the result
with the verdict in it (``dataclasses.replace``: every record is frozen), the only maker of those fields.

Undecided: the figures cannot tell pass from fail (a budget whose confidence bounds straddle it when
sampling stopped, a baseline comparison with too few samples or noisier than its allowance).  It is said in every
report and counted in the summary; ``--infer-baseline-strict`` makes it a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Mapping, Optional

from ..measure.results import BaselineStatus, CheckResult, Failure, TestOutcome
from ..core.spec import Outcome, Stage

# Named in the session and in `infercheck gate` alike, so each says the flag its reader has.
STRICT_FLAG = "--infer-baseline-strict (infercheck gate --strict)"


@dataclass(frozen=True)
class Thresholds:
    """The run-level switches the verdict reads (the figures' own tolerances travel with the facts)."""

    strict: bool = False  # undecided figures and checks without a baseline entry fail
    updating: bool = False  # the run blesses what it measures: no regression fails it

    @classmethod
    def recorded(cls, settings: Mapping[str, Any]) -> "Thresholds":
        """From a result's recorded settings (``Settings.describe()``): the same on worker, controller and gate."""
        def value(name: str) -> bool:
            entry = settings.get(name)
            return bool(entry.get("value")) if isinstance(entry, Mapping) else False

        return cls(strict=value("baseline_strict"), updating=value("baseline_update"))


@dataclass(frozen=True)
class Verdict:
    """What the facts mean: the outcome, the stage it stopped at, every failure and undecided figure."""

    outcome: Outcome
    stage: Optional[Stage]
    failures: tuple[Failure, ...]
    undecided: tuple[str, ...]
    message: str
    not_raised: bool = False  # a failed check its test took (raise_on_failure=False) and did not fail on


def verdict(facts: CheckResult, thresholds: Thresholds, test: Optional[TestOutcome] = None) -> Verdict:
    """The outcome of one check from its facts, the thresholds, and (once known) the test's own outcome."""
    if facts.skipped is not None:
        outcome, stage = Outcome.SKIPPED, facts.skipped.stage
        return _with_test(Verdict(outcome, stage, (), (), f"{facts.spec_id}: {facts.skipped.message}"), test)
    figures = undecided_figures(facts)
    undecided = tuple(note for _, note in figures)
    failures = fact_failures(facts, thresholds)
    if thresholds.strict and not thresholds.updating:
        failures += [Failure(stage, f"undecided: {note} ({STRICT_FLAG} makes this a failure)") for stage, note in figures]
    if facts.stopped is not None:
        failures.append(facts.stopped)
    if not failures:
        return _with_test(Verdict(Outcome.PASSED, None, (), undecided, ""), test)
    stage = facts.stopped.stage if facts.stopped is not None else failures[0].stage
    found = Verdict(Outcome.FAILED, stage, tuple(failures), undecided, failure_message(facts, failures),
                    not_raised=not facts.raise_on_failure)
    return _with_test(found, test)


NONDETERMINISTIC_ALLOWED = ("the reference ran once (allow_nondeterministic=True): if the forward's outputs change "
                            "from call to call (random ops, dropout in training mode), no engine can match them, "
                            "eager-fp32 included")


def fact_failures(facts: CheckResult, thresholds: Thresholds) -> list[Failure]:
    """Every failure the recorded figures hold, in the order of the stages that measured them."""
    failures: list[Failure] = []
    accuracy = facts.accuracy
    if accuracy is not None:
        if accuracy.structure_error is not None:
            failures.append(Failure(Stage.ACCURACY, accuracy.structure_error))
        failures += [Failure(Stage.ACCURACY, output.describe()) for output in accuracy.outputs if not output.passed]
        if not accuracy.passed:  # where it diverged and what it was calibrated on explain the failure
            if facts.divergence is not None:
                failures.append(Failure(Stage.ACCURACY, facts.divergence.describe()))
            if facts.calibration is not None:
                # A calibration stage failure only where its data looks unlike the inputs; else it is context
                # of the accuracy failure (what the scales were fitted on), as the divergence line is.
                suspect = facts.calibration.range_ratio is not None
                failures.append(Failure(Stage.CALIBRATION if suspect else Stage.ACCURACY, facts.calibration.hint()))
            if facts.precision == "fp32" and (facts.settings.get("allow_nondeterministic") or {}).get("value"):
                # The reference ran once, so nothing showed whether the forward itself moves between calls: an FP32
                # engine failing is what that looks like (a reduced precision fails for its rounding as well).
                failures.append(Failure(Stage.ACCURACY, NONDETERMINISTIC_ALLOWED))
    if facts.dynamic_batch is not None:
        failures += [Failure(Stage.DYNAMIC_BATCH, problem) for problem in facts.dynamic_batch.problems]
    budget = facts.latency.budget_verdict if facts.latency is not None else None
    if budget is not None and not budget.passed:
        text = f"{budget.describe()}; {facts.latency.describe()}"  # type: ignore[union-attr]
        if facts.profile is not None:
            text += "\n      " + facts.profile.summary()
        failures.append(Failure(Stage.LATENCY, text))
    failures += baseline_failures(facts, thresholds)
    return failures


def baseline_failures(facts: CheckResult, thresholds: Thresholds) -> list[Failure]:
    """Regressions against the baseline entry, and (strict) a check that had no entry to compare with."""
    comparison = facts.baseline
    if comparison is None or thresholds.updating:
        return []
    if comparison.status != BaselineStatus.FOUND:
        if not thresholds.strict:
            return []
        from ..baseline.summary import not_compared_reason

        return [Failure(Stage.BASELINE, f"{not_compared_reason(comparison)} ({STRICT_FLAG} makes this a failure)")]
    return [Failure(Stage.REGRESSION, line) for line in comparison.regression_lines]


def undecided_figures(facts: CheckResult) -> list[tuple[Stage, str]]:
    """Figures that could not tell pass from fail: the stage each belongs to, and what it lacked in one line."""
    notes = []
    budget = facts.latency.budget_verdict if facts.latency is not None else None
    if budget is not None and budget.undecided:
        notes.append((Stage.LATENCY, f"budget {budget.describe()}"))
    comparison = facts.baseline
    judged = comparison.judged if comparison is not None else None  # kernel time for a launch-bound engine
    # Stage BASELINE, not REGRESSION: under --infer-baseline-strict an undecided comparison fails, and its
    # item must not read "failed (regression)" when nothing regressed (a faster run was shown so).
    if comparison is not None and judged is not None and judged.undecided:
        notes.append((Stage.BASELINE, f"baseline {comparison.judged_figure} {judged.describe()}{comparison.across}"))
    if comparison is not None and comparison.accuracy_undecided:
        notes.append((Stage.BASELINE, f"baseline accuracy: {comparison.accuracy_undecided}{comparison.across}"))
    return notes


def checked(facts: CheckResult) -> str:
    """Which check failed, in its header: the model's class (``SmallCNN``), its repeat in the test
    (``SmallCNN#2``) or the name the test gave (``m1: Sequential``), so that checks made in a loop, which
    share one calling line, are told apart."""
    name, model = facts.check_name, facts.model_name
    if not name or name.split("#", 1)[0] == model:
        return name or model
    return f"{name}: {model}" if model else name


def failure_message(facts: CheckResult, failures: list[Failure]) -> str:
    """What fell short, by how much: the first line names the item, one line (or block) per failure."""
    head = f"{facts.spec_id} on {facts.device or '?'}" + (f" ({checked(facts)})" if checked(facts) else "")
    lines = [f"infercheck {head} failed:"] + [f"  - {failure}" for failure in failures]
    if any(failure.stage == Stage.REGRESSION for failure in failures):
        # The other half of a regression's answer: a change that was meant is blessed, not waved through.
        lines.append("  if the change is intended, bless this run: --infer-baseline-update (or infercheck baseline "
                     "update REPORT.json --baseline FILE on a saved report)")
    lines += [f"  note: {warning}" for warning in facts.warnings]
    if facts.widened:  # information, not a warning: a strict warnings filter must not fail every half model
        lines.append(f"  note: {widened_note(facts.widened)}")
    lines += [f"  note: {note}" for note in facts.notes]
    if facts.repair is not None and facts.accuracy is not None and not facts.accuracy.passed:
        lines.append(f"  => {facts.repair.describe()}")  # last: the answer to paste, or how far it got
    return "\n".join(lines)


def widened_note(widened: tuple[str, ...]) -> str:
    return (f"checked from the model's FP32 form: {'; '.join(widened)} widened to float32, so the reference is the "
            "eager model in FP32 and each engine casts from it to its own precision")


SUMMARY_CHARS = 200


def summary_line(facts: CheckResult) -> str:
    """One line for pytest's ``-rf`` short summary, which shows a failure's first line only: the engine,
    the stage and the start of the first reason (the full message follows it)."""
    if not facts.failures:
        return ""
    first = facts.failures[0] if facts.stopped is None else facts.stopped
    reason = " ".join(first.message.split())
    reason = reason if len(reason) <= SUMMARY_CHARS else reason[: SUMMARY_CHARS - 1] + "…"
    more = len(facts.failures) - 1
    return f"{facts.spec_id} failed at {first.stage}: {reason}" + (f" (+{more} more below)" if more else "")


def _with_test(found: Verdict, test: Optional[TestOutcome]) -> Verdict:
    """The test's own outcome after the check: an assertion that failed, a skip, an expected failure."""
    if test is None:
        return found
    outcome, stage, message, not_raised = found.outcome, found.stage, found.message, found.not_raised
    if test.failed:
        not_raised = False  # a failure the test took and then failed on is the run's failure again
        if outcome == Outcome.PASSED:  # an assertion after the check failed the test
            outcome, stage, message = Outcome.FAILED, Stage.TEST, test.reason
    if test.skipped and not test.xfail and outcome == Outcome.PASSED:
        # pytest.skip() after a passing check: the test disowned it, so no report or baseline update
        # counts it as a pass.
        outcome, stage = Outcome.SKIPPED, Stage.TEST
        message = f"the test skipped after the check passed: {test.reason}"
    if test.xfail:  # an expected failure reads as one in the summary
        outcome = Outcome.XFAILED if test.skipped else Outcome.XPASSED
    return Verdict(outcome, stage, found.failures, found.undecided, message, not_raised)


def apply(result: CheckResult, found: Verdict) -> CheckResult:
    """The result with the verdict in it, a new record (``result`` is frozen and stays as it was): the only
    place its outcome, stage, message and failures are set."""
    return replace(result, outcome=found.outcome, stage=found.stage, message=found.message, failures=found.failures,
                   undecided=found.undecided, not_raised=found.not_raised)


def judge(result: CheckResult, test: Optional[TestOutcome] = None,
          thresholds: Optional[Thresholds] = None) -> CheckResult:
    """``apply(result, verdict(result, thresholds or the result's recorded ones, test))``: a new record, which
    the caller keeps where it kept ``result``."""
    return apply(result, verdict(result, thresholds or Thresholds.recorded(result.settings), test))

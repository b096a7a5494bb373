"""judge/verdict.py: one pure function from facts (and the test's outcome) to the verdict.

Fake facts, built by hand: no engine, no pytest run.  The end-to-end tests (tests/test_plugin.py,
tests/test_gate_cli.py, tests/test_xdist.py) check that the fixture, the controller and the gate call it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from pytest_infercheck.measure.budget import Budget, decide_budget
from pytest_infercheck.judge.verdict import Thresholds, apply, verdict
from pytest_infercheck.measure.regression import compare_latency
from pytest_infercheck.measure.results import (
    AccuracyResult,
    BaselineComparison,
    BaselineStatus,
    CheckResult,
    DynamicBatchCheck,
    Failure,
    LatencyStats,
    OutputAccuracy,
    TestOutcome,
    Tolerance,
)
from pytest_infercheck.core.spec import Outcome, Stage

FP16 = Tolerance(atol=1e-2, rtol=1e-2, max_mismatch=0.05, min_cosine=0.999, max_rel_l2=5e-3)


def output(rel_l2: float = 1e-4, failures: tuple[str, ...] = ()) -> OutputAccuracy:
    return OutputAccuracy("output", (1, 10), 1e-3, 1e-3, 1e-4, rel_l2, 0.9999, 0, 10, (0, 3), 1.0, 1.0, 0, FP16,
                          failures=failures)


def facts(**changes: object) -> CheckResult:
    result = CheckResult(nodeid="t.py::test[eager-fp16]", spec_id="eager-fp16", backend="eager", precision="fp16",
                         cuda_graphs=False, model_name="Net", accuracy=AccuracyResult((output(),)))
    return replace(result, **changes)  # records are frozen: the facts are a new one


def latency(samples: list[float], budget: str | None = None) -> LatencyStats:
    stats = LatencyStats(samples_ms=tuple(samples), timer="cpu", count=len(samples),
                         percentiles_ms={"p50": sorted(samples)[len(samples) // 2]})
    if budget is not None:
        statistic, limit = budget.split(":")
        stats = replace(stats, budget_verdict=decide_budget(samples, Budget(statistic, float(limit))))
    return stats


def test_facts_within_their_tolerances_pass() -> None:
    found = verdict(facts(), Thresholds())
    assert (found.outcome, found.stage, found.failures, found.message) == (Outcome.PASSED, None, (), "")


def test_an_output_out_of_tolerance_fails_at_accuracy_with_its_figures() -> None:
    bad = facts(accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.005",))]))
    found = verdict(bad, Thresholds())
    assert found.outcome == Outcome.FAILED and found.stage == Stage.ACCURACY
    assert "relative error 0.3 > 0.005" in found.message and found.message.startswith("infercheck eager-fp16 on cpu (Net)")


def test_a_stage_that_stopped_the_check_names_the_stage_even_after_other_failures() -> None:
    stopped = Failure(Stage.LATENCY, "timing the engine failed: CUDA error")
    bad = facts(accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.005",))]), stopped=stopped)
    found = verdict(bad, Thresholds())
    assert found.stage == Stage.LATENCY and found.failures[-1] == stopped and len(found.failures) == 2


def test_a_skip_is_a_skip_whatever_else_was_recorded() -> None:
    found = verdict(facts(skipped=Failure(Stage.AVAILABILITY, "onnxruntime is not installed")), Thresholds())
    assert found.outcome == Outcome.SKIPPED and found.message == "eager-fp16: onnxruntime is not installed"


def test_the_dynamic_batch_recheck_fails_with_its_own_stage() -> None:
    found = verdict(facts(dynamic_batch=DynamicBatchCheck(2, False, ["at batch 2: output 'y' ..."])), Thresholds())
    assert found.stage == Stage.DYNAMIC_BATCH and "at batch 2" in found.message


def test_a_budget_decided_over_fails_and_one_decided_within_passes() -> None:
    over = verdict(facts(latency=latency([10.0 + i * 1e-3 for i in range(200)], "p50:5")), Thresholds())
    assert over.outcome == Outcome.FAILED and over.stage == Stage.LATENCY and "p50 > 5 ms" in over.message
    within = verdict(facts(latency=latency([1.0 + i * 1e-3 for i in range(200)], "p50:5")), Thresholds())
    assert within.outcome == Outcome.PASSED and within.undecided == ()


def test_a_budget_on_too_few_samples_is_undecided_said_and_strict_fails_it() -> None:
    few = facts(latency=latency([1.0, 1.1, 1.2], "p99:50"))
    found = verdict(few, Thresholds())
    assert found.outcome == Outcome.PASSED and len(found.undecided) == 1 and "undecided at n=3" in found.undecided[0]
    strict = verdict(few, Thresholds(strict=True))
    assert strict.outcome == Outcome.FAILED and "--infer-baseline-strict" in strict.message


def test_a_budget_whose_point_estimate_is_just_over_is_undecided_not_failed() -> None:
    """Issue 25: undecided is never a false failure, a budget decided on its point estimate included (a p99 at 61%
    confidence over its budget failed the item: newcomer trial 4)."""
    samples = [1.0 + i * 1e-3 for i in range(200)]  # p50 1.1 ms, a few samples around it
    near = facts(latency=latency(samples, "p50:1.095"))
    assert near.latency.budget_verdict.undecided and not near.latency.budget_verdict.estimate_within
    found = verdict(near, Thresholds())
    assert found.outcome == Outcome.PASSED and len(found.undecided) == 1
    assert "point estimate p50 1.099 ms > 1.095 ms (that side holds with 69.0% confidence)" in found.undecided[0]
    assert verdict(near, Thresholds(strict=True)).outcome == Outcome.FAILED


def comparison(current: list[float], baseline: list[float], status: BaselineStatus = BaselineStatus.FOUND,
               **changes: object) -> BaselineComparison:
    latency_change = compare_latency(current, baseline, max_regression=0.03)
    regressions = (f"latency {latency_change.describe()}",) if latency_change.verdict == "regression" else ()
    return BaselineComparison(status, "base.json", latency=latency_change, regressions=regressions,
                              **changes)  # type: ignore[arg-type]


def test_a_regression_fails_unless_the_run_blesses_it() -> None:
    slower = facts(baseline=comparison([2.0 + i * 1e-3 for i in range(100)], [1.0 + i * 1e-3 for i in range(100)]))
    assert verdict(slower, Thresholds()).stage == Stage.REGRESSION
    assert verdict(slower, Thresholds(updating=True)).outcome == Outcome.PASSED


def test_a_comparison_with_too_few_samples_is_undecided_never_a_silent_pass() -> None:
    few = facts(baseline=comparison([50.0] * 3, [1.0] * 3))
    found = verdict(few, Thresholds())
    assert found.outcome == Outcome.PASSED and "too few samples" in found.undecided[0]
    assert verdict(few, Thresholds(strict=True)).outcome == Outcome.FAILED


def test_an_undecided_figure_says_what_library_versions_it_was_compared_across() -> None:
    # --infer-baseline-across-versions: an upgrade's undecided figure names the versions, as its findings do.
    few = facts(baseline=comparison([50.0] * 3, [1.0] * 3, differences=("torch 2.12.0 -> 2.13.0",)))
    found = verdict(few, Thresholds(strict=True))
    assert found.undecided[0].endswith("(compared across torch 2.12.0 -> 2.13.0)")
    assert "(compared across torch 2.12.0 -> 2.13.0)" in found.message
    other = facts(baseline=BaselineComparison(BaselineStatus.OTHER_MACHINE, "base.json",
                                              differences=("torch 2.12.0 -> 2.13.0",)))
    assert other.baseline is not None and other.baseline.across == ""  # not applied: nothing was compared


def test_no_entry_fails_only_under_strict() -> None:
    missing = facts(baseline=BaselineComparison(BaselineStatus.MISSING, "base.json"))
    assert verdict(missing, Thresholds()).outcome == Outcome.PASSED
    strict = verdict(missing, Thresholds(strict=True))
    assert strict.outcome == Outcome.FAILED and strict.stage == Stage.BASELINE


def test_the_tests_own_outcome_after_the_check() -> None:
    assert verdict(facts(), Thresholds(), TestOutcome(failed=True, reason="assert 1 == 2")).stage == Stage.TEST
    skipped = verdict(facts(), Thresholds(), TestOutcome(skipped=True, reason="later"))
    assert skipped.outcome == Outcome.SKIPPED and "skipped after the check passed: later" in skipped.message
    assert verdict(facts(), Thresholds(), TestOutcome(xfail=True)).outcome == Outcome.XPASSED


def test_a_failure_the_test_took_is_not_raised_until_the_test_fails_on_its_own() -> None:
    bad = facts(accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.005",))]), raise_on_failure=False)
    assert verdict(bad, Thresholds()).not_raised
    assert not verdict(bad, Thresholds(), TestOutcome(failed=True, reason="assert x")).not_raised


def test_judging_twice_gives_the_same_verdict() -> None:
    """Idempotent: the worker and the controller both judge; the gate judges a saved report again."""
    bad = facts(accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.005",))]))
    first = verdict(bad, Thresholds())
    again = verdict(apply(bad, first), Thresholds())
    assert again == first


def test_thresholds_are_read_back_from_recorded_settings() -> None:
    recorded = {"baseline_strict": {"value": True, "source": "command line"},
                "baseline_update": {"value": False, "source": "default"}}
    assert Thresholds.recorded(recorded) == Thresholds(strict=True, updating=False)
    assert Thresholds.recorded({}) == Thresholds()


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_errors_fail(value: float) -> None:
    bad = facts(accuracy=AccuracyResult([replace(output(value, ("relative error nan",)))]))
    assert verdict(bad, Thresholds()).outcome == Outcome.FAILED


def test_the_short_summary_line_names_the_stage_and_the_reason() -> None:
    """pytest's -rf shows a failure's first line only: it read "infercheck ... failed:" and nothing else."""
    from pytest_infercheck.judge.verdict import summary_line

    bad = apply(facts(accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.005",))]),
                      dynamic_batch=DynamicBatchCheck(2, False, ["at batch 2: it broke"])), verdict(facts(), Thresholds()))
    bad = apply(bad, verdict(bad, Thresholds()))
    line = summary_line(bad)
    assert line.startswith("eager-fp16 failed at accuracy: output 'output' [1, 10]: relative error 0.3 > 0.005")
    assert line.endswith("(+1 more below)") and "\n" not in line
    assert summary_line(facts()) == ""


@pytest.mark.parametrize("calibrated_on, stage", [((-4.4, 4.1), Stage.ACCURACY), ((-400.0, 410.0), Stage.CALIBRATION)],
                         ids=["alike", "100x-wider"])
def test_the_calibration_line_is_a_calibration_failure_only_where_its_data_looks_unlike_the_inputs(
        calibrated_on: tuple[float, float], stage: Stage) -> None:
    """An INT8 accuracy failure says what the engine was calibrated on.  Where that data spans the example's
    range, the line is context of the accuracy failure (nothing failed at calibration); 4x off either way,
    calibration is the suspect and the line is its failure."""
    from pytest_infercheck.measure.results import CalibrationInfo

    bad = facts(precision="int8", spec_id="onnxruntime-int8",
                accuracy=AccuracyResult([output(0.3, ("relative error 0.3 > 0.1",))]),
                calibration=CalibrationInfo(8, True, calibrated_on, (-4.1, 4.1)))
    found = verdict(bad, Thresholds())
    assert found.outcome == Outcome.FAILED and found.stage == Stage.ACCURACY
    line = found.failures[-1]
    assert line.stage == stage and line.message.startswith("the INT8 engine was calibrated on 8 generated batch(es)")
    assert ("x different range" in line.message) == (stage == Stage.CALIBRATION)


def test_the_table_cell_of_an_accuracy_regression_alone_shows_no_latency_change() -> None:
    # The cell's percentage is the latency's: beside an accuracy regression alone it read as the error's
    # ("REGRESSION accuracy -41.2%", an attacker's session).
    from pytest_infercheck.baseline.summary import status_cell
    from pytest_infercheck.measure.regression import AccuracyChange

    grew = AccuracyChange("logits", "max_abs", 1e-6, 1e-3, True, 2.0, 1e-5)
    faster = replace(comparison([1.0 + i * 1e-3 for i in range(100)], [1.7 + i * 1e-3 for i in range(100)]),
                     accuracy=(grew,), regressions=(f"accuracy {grew.describe()}",))
    assert status_cell(facts(baseline=faster)) == "REGRESSION accuracy"


def test_the_gate_lists_an_undecided_figure_of_an_item_that_failed_for_another_reason() -> None:
    # The summary counted it ("2 undecided") while the list named only the passing one ("undecided (1: ...").
    from pytest_infercheck.baseline.offline import GateOutcome, gate_lines
    from pytest_infercheck.measure.results import Failure

    few = comparison([50.0] * 3, [1.0] * 3)
    passing = replace(facts(baseline=few), nodeid="test_a.py::test_a[x]", undecided=("baseline latency few",))
    failing = replace(facts(baseline=few), nodeid="test_b.py::test_b[x]", undecided=("baseline latency few",),
                      failures=(Failure(Stage.ACCURACY, "output 'y' off"),))
    text = "\n".join(gate_lines(GateOutcome("base.json", judged=[passing, failing])))
    assert "undecided (2: " in text and "test_b.py::test_b[x]: baseline latency few" in text, text


def test_a_widened_model_says_so_in_its_failure_not_as_a_warning() -> None:
    off = AccuracyResult((output(rel_l2=0.5, failures=("relative error 0.5 > 0.005",)),))
    failing = facts(accuracy=off, widened=("parameters and buffers in float16 (4 tensors)",))
    found = verdict(failing, Thresholds())
    assert found.outcome == Outcome.FAILED
    assert ("  note: checked from the model's FP32 form: parameters and buffers in float16 (4 tensors) widened to "
            "float32") in found.message
    assert failing.warnings == ()


@pytest.mark.parametrize("precision, said", [("fp32", True), ("fp16", False)])
def test_the_allowed_nondeterminism_is_named_where_an_fp32_engine_fails(precision: str, said: bool) -> None:
    off = AccuracyResult((output(rel_l2=0.5, failures=("relative error 0.5 > 0.005",)),))
    failing = facts(precision=precision, accuracy=off,
                    settings={"allow_nondeterministic": {"value": True, "source": "marker"}})
    assert ("the reference ran once (allow_nondeterministic=True)" in verdict(failing, Thresholds()).message) is said

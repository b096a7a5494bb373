"""The gate's accuracy comparison: an error figure is judged only against the same weights on the same inputs;
a change of code alone is judged.

Pure logic on fabricated results (no engine runs here); tests/test_regression.py runs the same through
pytest with real engines: a recipe change that regresses, another model and other inputs that are undecided."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pytest_infercheck.baseline.comparison import compare_with_entry
from pytest_infercheck.baseline.offline import GateSettings
from pytest_infercheck.baseline.store import BaselineStore, update_baseline
from pytest_infercheck.baseline.summary import status_cell
from pytest_infercheck.judge.verdict import Thresholds, apply, verdict
from pytest_infercheck.measure.results import AccuracyResult, CheckResult, Outcome, OutputAccuracy, Tolerance

GATE = GateSettings(max_regression=0.03, kernel_tolerance=0.05, accuracy_factor=2.0, accuracy_floor=1e-5)


def result(max_abs: float, *, model: str = "m", state: str = "s", inputs: str = "i") -> CheckResult:
    output = OutputAccuracy(name="output", shape=(2, 4), max_abs=max_abs, max_rel=0.0, mean_abs=max_abs / 3,
                            rel_l2=0.0, cosine=1.0, mismatched=0, total=8, worst_index=(0, 0), worst_value=0.0,
                            worst_reference=0.0, nonfinite=0, tolerance=Tolerance(atol=0.1, rtol=0.1))
    return CheckResult(nodeid="t.py::test_cnn[eager-fp16]", spec_id="eager-fp16", backend="eager", precision="fp16",
                       cuda_graphs=False, device="cpu", model_name="CNN", model_hash=model, state_hash=state,
                       inputs_hash=inputs,
                       machine={"device": "cpu", "cpu": "x", "cpus": 2}, accuracy=AccuracyResult([output]))


def gated(tmp_path: Path, blessed: CheckResult, current: CheckResult) -> CheckResult:
    path = tmp_path / "base.json"
    update_baseline(path, [blessed])
    compared = replace(current, baseline=compare_with_entry(current, BaselineStore.load(path), GATE))
    return apply(compared, verdict(compared, Thresholds()))


def test_a_grown_error_of_the_same_model_on_the_same_inputs_regresses(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3), result(5e-3))
    assert judged.outcome == Outcome.FAILED and judged.baseline is not None
    assert judged.baseline.regressions and not judged.baseline.accuracy_undecided
    assert status_cell(judged).startswith("REGRESSION accuracy")


def test_a_grown_error_of_other_weights_is_undecided_and_says_why(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3, model="m1", state="s1"), result(5e-3, model="m2", state="s2"))
    assert judged.outcome == Outcome.PASSED and judged.baseline is not None and not judged.baseline.regressions
    assert "not judged: the model's weights (its parameters and buffers) differ" in judged.baseline.accuracy_undecided
    assert judged.undecided and status_cell(judged).startswith("undecided")
    strict = apply(judged, verdict(judged, Thresholds(strict=True)))
    assert strict.outcome == Outcome.FAILED


def test_a_grown_error_after_a_change_of_code_alone_regresses_and_says_the_model_changed(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3, model="m1"), result(5e-3, model="m2"))  # the same weights
    assert judged.outcome == Outcome.FAILED and judged.baseline is not None and judged.baseline.model_changed
    assert not judged.baseline.accuracy_undecided
    assert judged.failures[0].message.endswith("(the model changed since the baseline was recorded)")


def test_a_grown_error_on_other_input_values_is_undecided(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3, inputs="a"), result(5e-3, inputs="b"))
    assert judged.baseline is not None and not judged.baseline.regressions
    assert "the example inputs' (or calibration data's) values differ" in judged.baseline.accuracy_undecided


def test_an_entry_blessed_before_inputs_and_weights_were_hashed_still_judges_accuracy(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3, inputs="", state=""), result(5e-3, inputs="b", state="t"))
    assert judged.baseline is not None and judged.baseline.regressions


def test_other_weights_whose_error_did_not_grow_pass_without_a_note(tmp_path: Path) -> None:
    judged = gated(tmp_path, result(1e-3, state="s1"), result(1.1e-3, state="s2"))
    assert judged.outcome == Outcome.PASSED and judged.baseline is not None
    assert not judged.baseline.accuracy_undecided and not judged.undecided

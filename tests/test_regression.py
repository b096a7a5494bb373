"""The regression statistics (unit tests on seeded samples) and regressions failing real items (pytester)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from pytest_infercheck.measure.regression import (
    ALPHA,
    MIN_HISTORY,
    MIN_SAMPLES,
    compare_accuracy,
    compare_latency,
    is_accuracy_regression,
    mann_whitney_u,
    median_ratio_interval,
)


def latency_samples(rng: np.random.Generator, n: int, median_ms: float = 1.0, spread: float = 0.05) -> np.ndarray:
    """Right-skewed like real latencies: lognormal body plus a few stalls three times as long."""
    body = median_ms * np.exp(rng.normal(0.0, spread, n))
    stalls = rng.random(n) < 0.02
    return np.where(stalls, body * 3.0, body)


# -- Mann-Whitney U ---------------------------------------------------------------------------------


def test_u_counts_pairs_where_first_is_larger_with_ties_as_half() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 6, 40).astype(float)  # many ties on purpose
    b = rng.integers(0, 6, 30).astype(float)
    by_definition = sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a, b))
    assert mann_whitney_u(a, b).u == pytest.approx(by_definition)


def test_p_values_of_a_small_separated_example_match_the_normal_approximation_by_hand() -> None:
    # U = 0; mean 4.5; variance 3*3/12*7 = 5.25; z = (0 - 4.5 + 0.5)/sqrt(5.25) = -1.7457 -> p = 0.04043
    test = mann_whitney_u([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert test.u == 0
    assert test.p_less == pytest.approx(0.040434, abs=1e-5)
    assert test.p_greater > 0.95


def test_all_equal_samples_give_no_evidence() -> None:
    test = mann_whitney_u([2.0] * 10, [2.0] * 10)
    assert (test.p_greater, test.p_less) == (1.0, 1.0)


def test_false_alarm_rate_under_the_null_is_about_alpha() -> None:
    """2000 pairs of sample sets from one distribution: about 1% of one-sided p-values fall below 0.01."""
    rng = np.random.default_rng(7)
    trials = 2000
    alarms = sum(mann_whitney_u(latency_samples(rng, 60), latency_samples(rng, 60)).p_greater < ALPHA
                 for _ in range(trials))
    assert 5 <= alarms <= 45, f"{alarms} false alarms in {trials} (expected about {ALPHA * trials:.0f})"


# -- bootstrap interval -----------------------------------------------------------------------------


def test_bootstrap_interval_covers_the_true_ratio_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    base, slow = latency_samples(rng, 400), latency_samples(rng, 400) * 1.10
    low, high = median_ratio_interval(slow, base)
    assert low < 1.10 < high
    assert high - low < 0.05  # 400 samples with a 5% spread pin the median to about a percent
    assert median_ratio_interval(slow, base) == (low, high)  # seeded: same samples, same interval


# -- the latency verdict ----------------------------------------------------------------------------


def test_same_distribution_is_within_the_allowance() -> None:
    rng = np.random.default_rng(11)
    verdict = compare_latency(latency_samples(rng, 500), latency_samples(rng, 500), max_regression=0.05)
    assert verdict.verdict == "within"
    assert abs(verdict.change) < 0.02


def test_ten_percent_slower_is_a_regression_with_old_and_new_in_the_message() -> None:
    rng = np.random.default_rng(12)
    verdict = compare_latency(latency_samples(rng, 500) * 1.10, latency_samples(rng, 500), max_regression=0.05)
    assert verdict.verdict == "regression"
    assert verdict.p_slower < 1e-6
    text = verdict.describe()
    assert f"p50 {verdict.baseline_p50_ms:.4g} ms -> {verdict.current_p50_ms:.4g} ms" in text
    assert "+10." in text or "+9." in text  # the change, about +10%
    assert "allowed +5.0%" in text


def test_a_significant_slowdown_below_the_allowed_size_passes() -> None:
    """The effect-size half of the rule: +2.5% with 500 samples is significant yet allowed at 5%."""
    rng = np.random.default_rng(13)
    verdict = compare_latency(latency_samples(rng, 500, spread=0.02) * 1.025, latency_samples(rng, 500, spread=0.02),
                              max_regression=0.05)
    assert verdict.p_slower < ALPHA
    assert verdict.verdict == "within"


def test_a_large_but_insignificant_difference_passes() -> None:
    """The significance half: six samples each with a 40% spread cannot show a 10% slowdown."""
    rng = np.random.default_rng(14)
    verdict = compare_latency(latency_samples(rng, 6, spread=0.4) * 1.1, latency_samples(rng, 6, spread=0.4),
                              max_regression=0.05)
    assert verdict.p_slower >= ALPHA
    assert verdict.verdict == "within"


def test_faster_by_more_than_the_allowed_size_is_an_improvement() -> None:
    rng = np.random.default_rng(15)
    verdict = compare_latency(latency_samples(rng, 300) * 0.8, latency_samples(rng, 300), max_regression=0.05)
    assert verdict.verdict == "improvement"
    assert verdict.change == pytest.approx(-0.2, abs=0.02)


def test_too_few_samples_give_no_verdict() -> None:
    verdict = compare_latency([1.0] * (MIN_SAMPLES - 1), [1.0] * 50, max_regression=0.05)
    assert verdict.verdict == "insufficient"
    assert "too few samples" in verdict.describe()


# -- accuracy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("old, new, regressed", [
    (1e-7, 3e-7, False),   # tripled, but at the bottom of float32: below the floor
    (1e-4, 5e-4, True),    # five times worse and above the floor
    (1e-4, 1.5e-4, False),  # worse, but within the factor
    (0.0, 1e-6, False),    # from exact to tiny: below the floor
    (0.0, 1e-3, True),     # from exact to visible
    (1e-4, math.nan, True),  # NaN where there was a number
])
def test_accuracy_regression_needs_both_the_factor_and_the_floor(old: float, new: float, regressed: bool) -> None:
    assert is_accuracy_regression(old, new, factor=2.0, floor=1e-5) is regressed


def test_compare_accuracy_pairs_outputs_and_metrics_and_skips_unknown_outputs() -> None:
    changes = compare_accuracy({"logits": {"max_abs": 4e-4, "mean_abs": 1e-5}, "new_output": {"max_abs": 1.0}},
                               {"logits": {"max_abs": 1e-4, "mean_abs": 1e-5, "rel_l2": 1e-6}}, factor=2.0, floor=1e-5)
    assert [(c.output, c.metric, c.regressed) for c in changes] == [("logits", "max_abs", True), ("logits", "mean_abs", False)]
    assert changes[0].describe() == "logits max_abs 0.0001 -> 0.0004 (x4; allowed x2 above a floor of 1e-05)"


# -- real items failing on a regression -------------------------------------------------------------

# An eager model whose forward sleeps SLEEP_MS: a slowdown injected without touching the plugin.
SLEEPY = """
import pytest, torch
from fixtures.gate_models import sleepy

@pytest.mark.infercheck(backends=["eager"])
def test_sleepy(infercheck):
    infercheck(sleepy(), torch.randn(2, 4))
"""
SAMPLES = ["--infer-min-iters=20"]


@pytest.fixture
def record_then_run(run_plugin, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """``record_then_run(source, VAR, recorded, current, *args)``: record a baseline with VAR=recorded, run with VAR=current."""
    baseline = pytester.path / "baseline.json"

    def run(source: str, variable: str, recorded: str, current: str, *args: str) -> pytest.RunResult:
        monkeypatch.setenv(variable, recorded)
        # Three blessed runs: the gate fails on latency once the history has measured the between-run noise.
        for _ in range(MIN_HISTORY):
            run_plugin(source, f"--infer-baseline={baseline}", "--infer-baseline-update",
                       *SAMPLES).assert_outcomes(passed=1)
        monkeypatch.setenv(variable, current)
        return run_plugin(source, f"--infer-baseline={baseline}", *SAMPLES, *args)

    return run


def test_latency_regression_fails_the_item_with_old_and_new_figures(record_then_run) -> None:
    result = record_then_run(SLEEPY, "SLEEP_MS", "1", "4")
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([
        "*eager-fp32 on cpu*failed:",
        "*regression: latency p50 * ms -> * ms (+*%, 98% CI *; allowed +3.0%; Mann-Whitney p=*",
        "  if the change is intended, bless this run: --infer-baseline-update (or infercheck baseline update "
        "REPORT.json --baseline FILE on a saved report)",
        "  at test_model.py:6 in test_sleepy: infercheck(sleepy(), torch.randn(2, 4))",  # the user's line
        "*1 compared, 1 regressed, 0 improved, 0 missing*",
        "*REGRESSION*test_sleepy[[]eager-fp32[]]*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_larger_allowance_lets_the_same_slowdown_pass(record_then_run) -> None:
    result = record_then_run(SLEEPY, "SLEEP_MS", "1", "2", "--infer-max-regression=500%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 compared, 0 regressed*"])


def test_improvement_is_reported_and_passes(record_then_run) -> None:
    result = record_then_run(SLEEPY, "SLEEP_MS", "4", "1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*1 compared, 0 regressed, 1 improved*",
                                 "*improved*test_sleepy[[]eager-fp32[]]: latency p50 * ms -> * ms (-*%*"])


# The small CNN on ONNX Runtime, its logits multiplied by SCALE, a plain attribute of the model (code and
# configuration, not a weight): a model change that leaves the relative error alone (so the absolute tolerance
# check still passes) and multiplies the absolute error.
SCALED_CNN = """
import os
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs

class Scaled(torch.nn.Module):
    def __init__(self, inner, scale):
        super().__init__()
        self.inner, self.scale = inner, scale
    def forward(self, x):
        return self.inner(x) * self.scale

@pytest.mark.infercheck(backends=["onnxruntime"], rtol=1e-3)
def test_cnn(infercheck):
    infercheck(Scaled(small_cnn(), float(os.environ.get("SCALE", "1"))), cnn_inputs())
"""

# The same model and inputs; only the engine's recipe changes: blessed with the convolutions alone
# quantized, then run with the classifier's Gemm quantized too. What a changed exporter, fusion or precision
# setting does to a deployed model, and what the accuracy gate is for.
RECIPE_CNN = """
import os
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(engines=["onnxruntime-int8"], int8_ops=os.environ["INT8_OPS"].split(","))
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""


def test_accuracy_regression_fails_within_tolerance_and_shows_old_and_new(record_then_run) -> None:
    """A change of the model's code (its output scaled: an attribute, not a weight) that grows its error."""
    result = record_then_run(SCALED_CNN, "SCALE", "1", "100000", "--infer-max-regression=100000%")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*regression: accuracy output max_abs * -> * (x*; allowed x2 above a floor of 1e-05) "
        "(the model changed since the baseline was recorded)",
    ])
    # The baseline block of the terminal summary says it too (it did not: newcomer trial 3).
    result.stdout.fnmatch_lines(["  REGRESSION test_model.py::test_cnn*: accuracy output max_abs * -> * "
                                 "(the model changed since the baseline was recorded)"])
    assert "accuracy: " not in result.stdout.str()  # the tolerance check itself passed


def test_an_engine_recipe_change_that_grows_the_error_regresses(record_then_run) -> None:
    """The same model and inputs; only the INT8 recipe changed (int8_ops): what a toolchain change does."""
    result = record_then_run(RECIPE_CNN, "INT8_OPS", "Conv", "Conv,Gemm", "--infer-max-regression=100000%")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*regression: accuracy output max_abs * -> * (x*; allowed x2 above a floor of 1e-05)",
    ])
    assert "model changed" not in result.stdout.str() and "not judged" not in result.stdout.str()


# Weights drawn at import from a generator the test does not seed (WEIGHT_SEED stands for the process): the
# plugin seeds the test body, not the module's import.
OTHER_WEIGHTS = """
import os
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs

torch.manual_seed(int(os.environ["WEIGHT_SEED"]))
MODEL = small_cnn()

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_cnn(infercheck):
    infercheck(MODEL, cnn_inputs())
"""


def test_accuracy_of_other_weights_is_undecided_not_a_regression(record_then_run) -> None:
    """A newcomer's model built with random weights at import got new weights in every process and failed an
    A/A gate on FP16 max_abs x2.05: another model's error figures cannot say the engine got worse. Undecided,
    said with the cause; --infer-baseline-strict fails it. (Seeds 1 and 7 give a grown error here.)"""
    result = record_then_run(OTHER_WEIGHTS, "WEIGHT_SEED", "1", "7", "--infer-max-regression=100000%",
                             "--infer-accuracy-factor=1.01")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert "REGRESSION" not in out and "1 undecided" in out
    result.stdout.fnmatch_lines(["*accuracy output * -> * (x*): not judged: the model's weights (its parameters and "
                                 "buffers) differ from the blessed run's*seed them (torch.manual_seed)*"])
    strict = record_then_run(OTHER_WEIGHTS, "WEIGHT_SEED", "1", "7", "--infer-max-regression=100000%",
                             "--infer-accuracy-factor=1.01", "--infer-baseline-strict")
    strict.assert_outcomes(failed=1)


UNSEEDED_INPUTS = """
import os
import pytest, torch
from fixtures.models import small_cnn

INPUTS = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(int(os.environ["INPUT_SEED"])))

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_cnn(infercheck):
    infercheck(small_cnn(), INPUTS * float(os.environ["INPUT_SEED"]))
"""


OTHER_CALIBRATION = """
import os
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
def test_cnn(infercheck):
    scale = float(os.environ["CALIB_SCALE"])
    calibration = [torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) * scale for i in range(4)]
    infercheck(small_cnn(), cnn_inputs(), calibration=calibration)
"""


def test_int8_accuracy_on_other_calibration_data_is_undecided(record_then_run) -> None:
    """The same model and example inputs, calibrated on data 6x wider: its INT8 scales (and error) differ."""
    result = record_then_run(OTHER_CALIBRATION, "CALIB_SCALE", "1", "6", "--infer-max-regression=100000%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*not judged: the example inputs' (or calibration data's) values differ*"])
    assert "REGRESSION" not in result.stdout.str()


def test_accuracy_on_other_input_values_is_undecided(record_then_run) -> None:
    """Inputs made at import with an unseeded generator differ in every process; the model hash holds their
    shapes only, so the inputs' values are compared on their own."""
    result = record_then_run(UNSEEDED_INPUTS, "INPUT_SEED", "1", "1000", "--infer-max-regression=100000%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*not judged: the example inputs' (or calibration data's) values differ from the blessed run's*"])
    assert "REGRESSION" not in result.stdout.str()


def test_accuracy_floor_keeps_tiny_errors_from_failing(record_then_run) -> None:
    result = record_then_run(SCALED_CNN, "SCALE", "1", "100000", "--infer-max-regression=100000%",
                             "--infer-accuracy-floor=1")
    result.assert_outcomes(passed=1)


def test_a_comparison_on_too_few_samples_is_undecided_said_and_strict_fails_it(record_then_run) -> None:
    """The issue's --infer-max-iters=4 with a model made slower: "1 compared, 0 regressed", exit 0, and
    nothing said. Now the comparison is undecided in the table, the summary and its own section."""
    few = ["--infer-min-iters=1", "--infer-max-iters=4", "--infer-min-time=0", "--infer-ci-width=0"]
    result = record_then_run(SLEEPY, "SLEEP_MS", "1", "10", *few)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*test_sleepy*eager-fp32*passed, undecided*",
        "undecided (1: the figures cannot tell pass from fail; --infer-baseline-strict (infercheck gate --strict) makes them fail):",
        "*test_sleepy[[]eager-fp32[]]: baseline latency p50 * ms -> * ms: too few samples for a verdict (* in the "
        "baseline vs * in this run; this run's under the 5 a comparison needs; run with more (--infer-max-iters, "
        "--infer-min-time))",
    ])
    strict = record_then_run(SLEEPY, "SLEEP_MS", "1", "10", *few, "--infer-baseline-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*undecided: baseline latency*too few samples*--infer-baseline-strict (infercheck gate --strict) makes this a failure*"])


def test_each_blessed_run_joins_the_entrys_history_up_to_its_bound(run_plugin, pytester: pytest.Pytester) -> None:
    """The between-run noise is measured from the runs the baseline has seen: each update adds one."""
    import json

    from pytest_infercheck.measure.regression import HISTORY

    baseline = pytester.path / "baseline.json"
    for _ in range(3):
        run_plugin(SLEEPY, f"--infer-baseline={baseline}", "--infer-baseline-update", *SAMPLES).assert_outcomes(passed=1)
    entry = json.loads(baseline.read_text())["entries"][0]
    assert len(entry["history"]) == 3 and all(run["p50_ms"] > 0 for run in entry["history"])
    assert entry["latency"]["probe_ms"] > 0 and len(entry["latency"]["block_medians_ms"]) == 5
    compared = run_plugin(SLEEPY, f"--infer-baseline={baseline}", *SAMPLES)
    compared.stdout.fnmatch_lines(["*1 compared*"])
    data = json.loads(baseline.read_text())
    data["entries"][0]["history"] = data["entries"][0]["history"] * 5  # 15 runs: more than an entry keeps
    baseline.write_text(json.dumps(data))
    run_plugin(SLEEPY, f"--infer-baseline={baseline}", "--infer-baseline-update", *SAMPLES).assert_outcomes(passed=1)
    assert len(json.loads(baseline.read_text())["entries"][0]["history"]) == HISTORY


def test_gate_strict_says_which_comparison_was_undecided(record_then_run, pytester: pytest.Pytester,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`infercheck gate --strict` on a run whose comparison is undecided: the FAILED line says why, not only
    "1 not compared (--strict)"."""
    from pytest_infercheck.cli import main

    few = ["--infer-min-iters=1", "--infer-max-iters=4", "--infer-min-time=0", "--infer-ci-width=0"]
    report = pytester.path / "report.json"
    record_then_run(SLEEPY, "SLEEP_MS", "1", "1", *few, f"--infer-report={report}").assert_outcomes(passed=1)
    capsys.readouterr()
    assert main(["gate", str(report), "--baseline", str(pytester.path / "baseline.json"), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "undecided: baseline latency" in out and "too few samples" in out, out
    # Counted as what it is (it was compared, and undecided), and its row does not read "regression".
    assert out.rstrip().endswith("gate FAILED: 1 undecided (--strict)"), out
    assert "failed (regression)" not in out and "failed (baseline)" in out, out

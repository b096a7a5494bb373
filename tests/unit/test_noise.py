"""The gate's run-to-run noise model (regression.RunNoise, compare_latency): a change must stand out
of the noise measured between runs, and a machine that moved makes the comparison undecided."""

from __future__ import annotations

import math
import random

from pytest_infercheck.measure.regression import MIN_HISTORY, RunNoise, compare_latency, run_noise
from pytest_infercheck.measure.stats import log_spread


def samples(p50: float, n: int = 200, jitter: float = 0.01, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [p50 * math.exp(rng.gauss(0.0, jitter)) for _ in range(n)]


def test_a_between_process_shift_inside_the_measured_noise_is_no_regression() -> None:
    """The issue's case: one process reads 3.15 ms, the next 5.77 ms. The samples of each run are tight
    (Mann-Whitney p ~ 1e-75), but the history shows p50s that far apart from run to run."""
    history = [3.15, 5.77, 4.1, 3.3, 5.2]
    noise = run_noise(history, [], [], None, None)
    assert noise.between_runs is not None and noise.margin > math.log(1.2)
    found = compare_latency(samples(5.77), samples(3.15, seed=1), max_regression=0.1, noise=noise)
    assert found.verdict == "undecided" and "exceeds the allowance" in found.why_undecided
    assert "noise margin +-" in found.describe() and "from the p50s of 5 blessed runs)" in found.describe()
    assert "5 of the 10 runs the baseline keeps measured it, and each blessed run measures it better" in found.why_undecided
    full = run_noise(history * 2, [], [], None, None)  # a full history: nothing more to gain from blessing
    assert "each blessed run" not in compare_latency(samples(5.77), samples(3.15, seed=1), max_regression=0.1,
                                                      noise=full).why_undecided


def test_a_steady_engine_is_held_to_its_allowance() -> None:
    """CUDA-graph engines moved < 1% between runs: a 5% slowdown is caught at a 3% allowance."""
    steady = run_noise([1.000, 1.002, 0.999, 1.001, 1.000], [1.0, 1.001, 1.0, 0.999, 1.0], [], None, None)
    assert steady.margin < math.log(1.03)
    found = compare_latency(samples(1.05, jitter=0.002), samples(1.0, jitter=0.002, seed=1), max_regression=0.03,
                            noise=steady)
    assert found.verdict == "regression"
    same = compare_latency(samples(1.0, jitter=0.002, seed=2), samples(1.0, jitter=0.002, seed=1),
                           max_regression=0.03, noise=steady)
    assert same.verdict == "within"


def test_without_history_the_within_run_drift_is_the_floor() -> None:
    drifting = run_noise([1.0], [1.0, 1.1, 1.25, 1.4, 1.6], [], None, None)
    assert drifting.between_runs is None and drifting.runs == 1 and drifting.within_run > 0.1
    found = compare_latency(samples(1.1), samples(1.0, seed=1), max_regression=0.03, noise=drifting)
    assert found.verdict == "undecided"
    assert f"from the drift between blocks within the runs; 1 of {MIN_HISTORY} blessed runs in the history" in found.describe()


def test_a_slower_machine_explains_a_slower_engine_and_the_comparison_is_undecided() -> None:
    machine = RunNoise(probe_change=math.log(1.5), probe_spread=0.01)
    found = compare_latency(samples(1.5), samples(1.0, seed=1), max_regression=0.03, noise=machine)
    assert found.verdict == "undecided" and "reference workload moved +50.0%" in found.why_undecided


def test_a_machine_that_got_faster_does_not_excuse_a_slower_engine() -> None:
    faster = RunNoise(between_runs=0.005, runs=3, probe_change=math.log(0.5), probe_spread=0.01)
    assert compare_latency(samples(2.0), samples(1.0, seed=1), max_regression=0.03, noise=faster).verdict == "regression"


def test_a_slowdown_beyond_what_the_machine_explains_is_still_a_regression() -> None:
    machine = RunNoise(between_runs=0.005, runs=3, probe_change=math.log(1.1), probe_spread=0.01)
    assert compare_latency(samples(3.0), samples(1.0, seed=1), max_regression=0.03, noise=machine).verdict == "regression"


def test_a_probe_within_its_own_noise_is_not_drift() -> None:
    shaky = RunNoise(probe_change=math.log(1.2), probe_spread=0.1)
    assert shaky.machine_drift(math.log(1.03)) == 0.0


def test_until_the_history_measures_the_between_run_noise_a_change_is_undecided() -> None:
    """The CPU A/A with two burners: one process read 0.67 ms, the next 0.95 ms, each run's blocks tight.
    With one run in the history nothing measures that spread: the comparison says so instead of failing."""
    one_run = run_noise([0.671], [0.647, 0.695, 0.678, 0.672, 0.679], [0.850, 0.909, 0.973, 0.923, 1.005],
                        0.354, 0.354)
    found = compare_latency(samples(0.945, seed=2), samples(0.671, seed=3), max_regression=0.03, noise=one_run)
    assert found.verdict == "undecided" and f"1 of {MIN_HISTORY} runs" in found.why_undecided
    measured = run_noise([0.671, 0.672, 0.670], [0.67] * 5, [0.67] * 5, 0.354, 0.354)
    assert compare_latency(samples(0.945, seed=2), samples(0.671, seed=3), max_regression=0.03,
                           noise=measured).verdict == "regression"


def test_too_few_samples_stay_insufficient_and_undecided() -> None:
    found = compare_latency([5.0] * 3, [1.0] * 3, max_regression=0.03)
    assert found.verdict == "insufficient" and found.undecided


def test_log_spread() -> None:
    assert log_spread([1.0]) is None
    assert abs(log_spread([1.0, math.e]) - math.sqrt(0.5)) < 1e-12


# -- a bursty neighbour on the CPU (the figures of a 2-core A/A beside one: docs/gate.md) --------------------


def test_the_probe_after_the_samples_sees_load_the_probe_before_missed() -> None:
    noise = run_noise([1.0, 1.0, 1.0], [1.0] * 5, [1.0] * 5, 0.354, 0.354, probe_after=0.4975)
    assert noise.probe_change == math.log(0.4975 / 0.354)
    assert run_noise([1.0] * 3, [1.0] * 5, [1.0] * 5, 0.50, 0.354, probe_after=0.36).probe_change == math.log(0.5 / 0.354)


def test_on_the_cpu_an_engine_moving_up_to_three_times_the_probe_is_undecided() -> None:
    """Probe +41%, engine +117% (seen: engines moved 1.7-2.3x the probe's change under the same load): once its
    own size the drift explains too little and the A/A failed; three times its size it explains it."""
    drift = math.log(1.41)
    once = RunNoise(between_runs=0.005, runs=3, probe_change=drift, probe_spread=0.003)
    cpu = RunNoise(between_runs=0.005, runs=3, probe_change=drift, probe_spread=0.003, amplification=3.0)
    current, blessed = samples(0.0538), samples(0.0248, seed=1)
    assert compare_latency(current, blessed, max_regression=0.25, noise=once).verdict == "regression"
    found = compare_latency(current, blessed, max_regression=0.25, noise=cpu)
    assert found.verdict == "undecided" and "up to 3x as much as the probe" in found.why_undecided
    # a slowdown far beyond three times the machine's drift is still a regression
    assert compare_latency(samples(0.0248 * 6), blessed, max_regression=0.25, noise=cpu).verdict == "regression"

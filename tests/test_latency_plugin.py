"""The sampling options as a user meets them: real pytest runs (pytester) of the plugin."""

from __future__ import annotations

SOURCE = '''
from fixtures.models import small_cnn, cnn_inputs
import pytest

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_cnn(infercheck):
    result = infercheck(small_cnn(), cnn_inputs())
    print("SAMPLES", result.latency.count)
'''


def test_ci_width_zero_samples_to_the_floors(run_plugin) -> None:
    result = run_plugin(SOURCE, "-s", "--infer-min-iters=7", "--infer-min-time=0", "--infer-ci-width=0",
                        "--infer-max-iters=9999", "--infer-max-time=60")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SAMPLES 7*"])


def test_an_unmeetable_width_runs_to_the_iteration_cap(run_plugin) -> None:
    result = run_plugin(SOURCE, "-s", "--infer-min-iters=5", "--infer-min-time=0", "--infer-ci-width=0.0000001%",
                        "--infer-max-iters=40", "--infer-max-time=60")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*SAMPLES 40*"])


def test_bad_sampling_options_are_usage_errors(run_plugin) -> None:
    result = run_plugin(SOURCE, "--infer-confidence=120%")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--infer-confidence*must be above 50% and below 100%*"])
    result = run_plugin(SOURCE, "--infer-ci-width=wide")
    result.stderr.fnmatch_lines(["*--infer-ci-width*'wide' is not a number; use a percentage such as 5%*"])

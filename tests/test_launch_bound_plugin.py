"""Launch-bound engines as a CPU user meets them: nothing changes.  Real pytest runs of the plugin
(pytester) and a real torch.profiler run; the GPU's kernel pass itself never runs on this machine
(tests/unit/test_launch_bound.py holds its logic to fake facts; scripts/gpu_check.sh runs it on a GPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_infercheck.baseline.store import BaselineStore
from pytest_infercheck.report.saved import load_report

SOURCE = '''
from fixtures.models import small_cnn, cnn_inputs
import pytest

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
'''


def test_cpu_runs_have_no_kernel_figures_and_the_same_verdicts(run_plugin, tmp_path: Path) -> None:
    baseline, report, junit = tmp_path / "base.json", tmp_path / "report.json", tmp_path / "junit.xml"
    lenient = "--infer-max-regression=100000%"  # a CPU's timing is not what this test is about
    for _ in range(3):  # three blessed runs: the history that arms the gate
        run_plugin(SOURCE, f"--infer-baseline={baseline}", "--infer-baseline-update").assert_outcomes(passed=2)
    result = run_plugin(SOURCE, f"--infer-baseline={baseline}", f"--infer-report={report}", f"--junitxml={junit}",
                        lenient, "--infer-kernel-tolerance=1%")
    result.assert_outcomes(passed=2)
    assert "GPU kernel time" not in result.stdout.str() and "launch-bound" not in result.stdout.str()
    for entry in BaselineStore.load(baseline).entries:
        assert entry.latency is not None and "kernel" not in entry.latency
        assert len(entry.history) == 3 and not any("kernel_ms" in run for run in entry.history)
    saved = load_report(report).results
    assert [r.latency.kernel for r in saved if r.latency is not None] == [None, None]
    assert all(r.baseline is not None and r.baseline.judged_on == "wall" and r.baseline.kernel is None for r in saved)
    assert all(r.settings["kernel_tolerance"] == {"value": 0.01, "source": "command line"} for r in saved)
    data = json.loads(report.read_text())
    assert all(r["latency"]["kernel"] is None for r in data["results"])
    assert ".kernel." not in junit.read_text() and "judged_on" not in junit.read_text()


def test_the_kernel_allowance_is_an_option_with_a_usage_error(run_plugin) -> None:
    result = run_plugin(SOURCE, "--infer-kernel-tolerance=5")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--infer-kernel-tolerance*'5' would mean 500%*"])


def test_the_profiler_reader_finds_each_iteration_in_a_real_torch_profile() -> None:
    """The CPU half of the kernel pass on a real torch.profiler trace: one range per iteration, and on the
    CPU no device work, which is no figure rather than a zero."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, record_function

    from pytest_infercheck.measure.kernel_time import ITERATION_RANGE, kernel_time_from, profiler_intervals

    left = torch.ones(32, 32)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(4):
            with record_function(ITERATION_RANGE):
                torch.mm(left, left)
    ranges, work = profiler_intervals(prof.profiler.kineto_results.events())
    assert len(ranges) == 4 and work == [] and all(start < end for start, end in ranges)
    assert ranges == sorted(ranges)
    with pytest.raises(ValueError, match="no kernel, copy or memset in 4 iterations"):
        kernel_time_from(ranges, work, wall_p50_ms=1.0, cuda_graph=False)

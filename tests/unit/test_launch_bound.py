"""Launch-bound GPU engines (kernel_time.py, baseline/comparison.py): the kernel time per iteration from the
profiler's intervals, the busy fraction and its label, their JSON and baseline round trips, and the gate
judging a launch-bound engine on its kernel time.

No GPU here: the kernel facts are fakes built by hand (``fake_*``), and the profiler's events are fake
kineto events (``FakeKinetoEvent``) shaped like ``prof.profiler.kineto_results.events()``.  The real
profiler's CPU side (the iteration ranges) runs in tests/test_launch_bound_plugin.py.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import pytest

from pytest_infercheck.baseline.comparison import compare_with_entry
from pytest_infercheck.baseline.offline import GateSettings, settings_for
from pytest_infercheck.baseline.store import BaselineStore, entry_from_result, update_baseline
from pytest_infercheck.baseline.summary import baseline_properties, status_cell
from pytest_infercheck.core.codec import DecodeError
from pytest_infercheck.judge.verdict import Thresholds, apply, verdict
from pytest_infercheck.measure.kernel_time import (
    ITERATION_RANGE,
    KERNEL_ITERATIONS,
    LAUNCH_BOUND_BELOW,
    MIN_KERNEL_ITERATIONS,
    KernelTime,
    busy_per_iteration,
    kernel_iterations,
    kernel_time_from,
    profiler_intervals,
    union_ns,
)
from pytest_infercheck.report.junit import junit_properties
from pytest_infercheck.report.markdown import render_markdown
from pytest_infercheck.report.saved import check_latency
from pytest_infercheck.report.table import engine_cell, kernel_lines
from pytest_infercheck.measure.results import AccuracyResult, CheckResult, LatencyStats
from pytest_infercheck.core.spec import Outcome, Stage
from pytest_infercheck.measure.timing import summarize

MS = 1_000_000  # ns


# -- the label ------------------------------------------------------------------------------------


def fake_kernel(p50: float, wall: float, *, graph: bool = False, n: int = 25, jitter: float = 0.002,
                seed: int = 0) -> KernelTime:
    rng = random.Random(seed)
    samples = [p50 * math.exp(rng.gauss(0.0, jitter)) for _ in range(n)]
    from pytest_infercheck.measure.stats import block_medians

    return KernelTime(samples_ms=tuple(samples), wall_p50_ms=wall, cuda_graph=graph,
                      block_medians_ms=tuple(block_medians(samples)))


def test_an_engine_whose_kernels_fill_under_half_its_wall_time_is_launch_bound() -> None:
    eager = fake_kernel(0.41, 3.2)
    assert eager.busy_fraction == pytest.approx(0.41 / 3.2, rel=0.01) and eager.launch_bound
    assert eager.describe() == "launch-bound: kernels 0.41 ms of 3.2 ms wall, 13% busy"
    busy = fake_kernel(3.0, 3.2)
    assert not busy.launch_bound and busy.describe().startswith("device-bound: kernels 3 ms of 3.2 ms wall, 94%")
    at_the_line = KernelTime([LAUNCH_BOUND_BELOW * 2.0] * 5, 2.0)
    assert not at_the_line.launch_bound  # below the threshold, not at it


def test_a_dense_cuda_graph_is_not_launch_bound_a_sparse_one_is() -> None:
    # A small MLP's graph kept the H100 busy 19% of its wall time and its wall p50 moved 1.5-2x between
    # processes: the replay's launch and the timing events are host work like any other launch.
    dense = fake_kernel(2.9, 3.0, graph=True)
    assert not dense.launch_bound and dense.describe().startswith("CUDA graph: kernels 2.9 ms of 3 ms wall, 97% busy")
    sparse = fake_kernel(0.3, 3.0, graph=True)
    assert sparse.busy_fraction < LAUNCH_BOUND_BELOW and sparse.launch_bound
    assert sparse.describe().startswith("CUDA graph, launch-bound: kernels 0.3 ms of 3 ms wall, 10% busy")


def test_the_kernel_pass_takes_25_iterations_fewer_for_a_slow_engine_never_under_5() -> None:
    assert kernel_iterations(3.0) == KERNEL_ITERATIONS
    assert kernel_iterations(50.0) == 10
    assert kernel_iterations(2000.0) == MIN_KERNEL_ITERATIONS
    assert kernel_iterations(math.nan) == KERNEL_ITERATIONS


# -- kernel time per iteration from the profiler's intervals ----------------------------------------


def test_union_counts_concurrent_work_once_and_gaps_never() -> None:
    assert union_ns([(0, 10), (5, 15), (20, 30)]) == 25
    assert union_ns([(20, 30), (0, 10), (2, 3)]) == 20
    assert union_ns([]) == 0


def test_each_interval_belongs_to_the_iteration_whose_window_it_starts_in() -> None:
    ranges = [(0, 10 * MS), (12 * MS, 20 * MS)]  # the windows meet in the middle of the gap: 11 ms
    work = [(-MS // 2, 0),  # a device clock a little early: still the first iteration's
            (1 * MS, 2 * MS), (3 * MS, 4 * MS), (3 * MS + MS // 2, 5 * MS),  # 1 + 2 (the overlap once)
            (10 * MS + MS // 2, 11 * MS + MS // 2),  # cut at the window's edge: 0.5
            (11 * MS + MS // 2, 13 * MS), (13 * MS, 14 * MS)]  # the second iteration's: 1.5 + 1
    assert busy_per_iteration(ranges, work) == pytest.approx([0.5 + 3.0 + 0.5, 2.5])
    assert busy_per_iteration([(0, MS)], [(0, 2 * MS)]) == [2.0]  # one iteration owns everything
    assert busy_per_iteration([], [(0, MS)]) == []


@dataclass
class FakeKinetoEvent:
    """A kineto event as torch.profiler's ``kineto_results.events()`` gives it (the methods the reader calls)."""

    kind: str
    start: int
    end: int
    on_gpu: bool
    label: str = "kernel"
    with_activity_type: bool = True

    def name(self) -> str:
        return self.label

    def device_type(self) -> str:
        return "DeviceType.CUDA" if self.on_gpu else "DeviceType.CPU"

    def start_ns(self) -> int:
        return self.start

    def end_ns(self) -> int:
        return self.end

    def is_user_annotation(self) -> bool:
        return self.kind in ("user_annotation", "gpu_user_annotation")

    def __getattr__(self, name: str) -> object:
        if name == "activity_type" and self.with_activity_type:
            return lambda: self.kind
        raise AttributeError(name)


def fake_trace(with_activity_type: bool = True) -> list[FakeKinetoEvent]:
    """Two iterations of a launch-bound engine: 1 ms of kernels in a 10 ms range, with the GPU mirror of each
    range (spanning the idle gaps) and a CPU op, which must not count."""
    events = []
    for start in (0, 20 * MS):
        events += [FakeKinetoEvent("user_annotation", start, start + 10 * MS, False, ITERATION_RANGE),
                   FakeKinetoEvent("gpu_user_annotation", start + MS, start + 9 * MS, True, ITERATION_RANGE),
                   FakeKinetoEvent("cpu_op", start + MS, start + 2 * MS, False, "aten::mm"),
                   FakeKinetoEvent("kernel", start + MS, start + MS + MS // 2, True),
                   FakeKinetoEvent("gpu_memset", start + 8 * MS, start + 8 * MS + MS // 2, True, "Memset")]
    return [replace(event, with_activity_type=with_activity_type) for event in events]


@pytest.mark.parametrize("with_activity_type", [True, False], ids=["activity_type", "older-torch"])
def test_the_profiler_reader_takes_kernels_and_copies_not_annotations(with_activity_type: bool) -> None:
    ranges, work = profiler_intervals(fake_trace(with_activity_type))
    assert ranges == [(0, 10 * MS), (20 * MS, 30 * MS)] and len(work) == 4
    fact = kernel_time_from(ranges, work, wall_p50_ms=10.0, cuda_graph=False)
    assert fact.samples_ms == (1.0, 1.0) and fact.busy_fraction == pytest.approx(0.1) and fact.launch_bound


def test_a_profiler_that_saw_nothing_gives_no_figure_rather_than_zero() -> None:
    with pytest.raises(ValueError, match="none of the"):
        kernel_time_from([], [(0, MS)], wall_p50_ms=1.0, cuda_graph=False)
    with pytest.raises(ValueError, match="no kernel, copy or memset"):
        kernel_time_from([(0, MS)], [], wall_p50_ms=1.0, cuda_graph=False)


# -- serialised: results JSON, saved reports, the baseline ------------------------------------------


def fake_gpu_result(wall: float, kernel: Optional[float], *, graph: bool = False, seed: int = 0,
                    n: int = 200) -> CheckResult:
    """A passing GPU check whose wall samples sit at ``wall`` ms and kernel samples at ``kernel`` ms."""
    rng = random.Random(seed)
    stats = summarize([wall * math.exp(rng.gauss(0.0, 0.01)) for _ in range(n)], timer="cuda-events",
                      batch_size=1, warmup=10)
    if kernel is not None:
        stats = replace(stats, kernel=fake_kernel(kernel, stats.p50_ms, graph=graph, seed=seed + 1000))
    return CheckResult(nodeid="t.py::test_gpt2[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                       cuda_graphs=graph, device="cuda", model_name="GPT2", model_hash="h",
                       machine={"device": "cuda", "gpu": "H200"}, accuracy=AccuracyResult([]), latency=stats)


def test_the_kernel_fact_round_trips_through_the_results_json() -> None:
    result = fake_gpu_result(3.2, 0.41)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["latency"]["kernel"]["launch_bound"] is True and data["latency"]["kernel"]["busy_fraction"] < 0.2
    back = CheckResult.from_dict(data)
    assert back.latency is not None and back.latency.kernel == result.latency.kernel  # type: ignore[union-attr]
    assert back.latency.kernel.launch_bound  # type: ignore[union-attr]


def test_a_report_written_before_kernel_time_reads_as_one_without_it() -> None:
    data = json.loads(json.dumps(fake_gpu_result(3.2, 0.41).to_dict()))
    del data["latency"]["kernel"]
    back = CheckResult.from_dict(data)
    assert back.latency is not None and back.latency.kernel is None


def test_a_saved_report_with_impossible_kernel_figures_is_refused() -> None:
    latency = fake_gpu_result(3.2, 0.41).latency
    assert latency is not None and latency.kernel is not None
    check_latency(latency, "results[0].latency")
    for bad in (replace(latency.kernel, samples_ms=(-1.0,)), replace(latency.kernel, samples_ms=()),
                replace(latency.kernel, wall_p50_ms=math.nan), replace(latency.kernel, launch_bound_below=2.0)):
        with pytest.raises(DecodeError, match=r"results\[0\].latency.kernel"):
            check_latency(replace(latency, kernel=bad), "results[0].latency")


def test_iterations_without_device_work_give_a_zero_block_the_report_and_baseline_accept(tmp_path: Path) -> None:
    """A launch-bound engine may launch nothing for several iterations in a row: its first block's median is
    0, a valid figure (samples may be 0 too), which neither the saved report nor the baseline may refuse."""
    ranges = [(i * 20 * MS, i * 20 * MS + 10 * MS) for i in range(25)]
    work = [(start + MS, start + 2 * MS) for start, _ in ranges[5:]]  # the first 5 iterations: no device work
    kernel = kernel_time_from(ranges, work, wall_p50_ms=10.0, cuda_graph=False)
    assert kernel.block_medians_ms[0] == 0.0 and kernel.samples_ms[0] == 0.0
    result = fake_gpu_result(10.0, 0.1)
    assert result.latency is not None
    result = replace(result, latency=replace(result.latency, kernel=kernel))
    check_latency(result.latency, "results[0].latency")  # what load_report checks of a saved report
    update_baseline(tmp_path / "base.json", [result])
    (entry,) = BaselineStore.load(tmp_path / "base.json").entries
    assert entry.latency is not None and entry.latency["kernel"]["block_medians_ms"][0] == 0.0


def test_the_baseline_keeps_the_kernel_time_and_its_history(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    for seed in range(2):
        update_baseline(path, [fake_gpu_result(3.2, 0.41, seed=seed)])
    (entry,) = BaselineStore.load(path).entries
    assert entry.latency is not None and entry.latency["kernel"]["launch_bound"] is True
    assert len(entry.latency["kernel"]["samples_ms"]) == 25 and len(entry.latency["kernel"]["block_medians_ms"]) == 5
    assert [round(run["kernel_ms"], 2) for run in entry.history] == [0.41, 0.41]
    old = entry_from_result(fake_gpu_result(3.2, None))  # a CPU engine, or one the profiler could not measure
    assert old is not None and old.latency is not None and "kernel" not in old.latency
    assert "kernel_ms" not in old.history[0]


def test_a_baseline_with_a_broken_kernel_entry_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "base.json"
    update_baseline(path, [fake_gpu_result(3.2, 0.41)])
    data = json.loads(path.read_text())
    data["entries"][0]["latency"]["kernel"]["launch_bound"] = "yes"
    path.write_text(json.dumps(data))
    with pytest.raises(pytest.UsageError, match="latency.kernel.launch_bound is 'yes', expected true or false"):
        BaselineStore.load(path)


# -- the gate: a launch-bound engine judged on its kernel time -------------------------------------


GATE = GateSettings(max_regression=0.03, kernel_tolerance=0.05, accuracy_factor=2.0, accuracy_floor=1e-5)


def blessed(tmp_path: Path, wall: float, kernel: Optional[float], graph: bool = False) -> BaselineStore:
    """A baseline of three blessed runs (the history that arms the noise model); each process lands its
    wall p50 elsewhere (the host), its kernel p50 within 0.5%."""
    path = tmp_path / "base.json"
    for seed, host in enumerate((1.6, 1.25, 1.0)):  # the last blessed: wall p50 at `wall`
        update_baseline(path, [fake_gpu_result(wall * host, None if kernel is None else kernel * (1 + 0.005 * seed),
                                               graph=graph, seed=seed)])
    return BaselineStore.load(path)


def judged(result: CheckResult, store: BaselineStore) -> CheckResult:
    compared = replace(result, baseline=compare_with_entry(result, store, GATE))
    return apply(compared, verdict(compared, Thresholds()))


def test_a_launch_bound_engine_whose_wall_time_moved_80_percent_with_steady_kernels_passes(tmp_path: Path) -> None:
    result = judged(fake_gpu_result(3.2 * 1.8, 0.41, seed=7), blessed(tmp_path, 3.2, 0.41))
    comparison = result.baseline
    assert comparison is not None and comparison.judged_on == "kernel"
    assert comparison.kernel is not None and comparison.kernel.verdict == "within"
    assert comparison.latency is not None and comparison.latency.change > 0.5  # reported, not judged
    assert result.outcome == Outcome.PASSED and not comparison.regressions and not result.undecided
    assert status_cell(result).startswith("kernel ") and status_cell(result).endswith(" ok")
    props = dict(baseline_properties(result))
    assert props["infercheck.eager-fp32.baseline.judged_on"] == "kernel"
    assert props["infercheck.eager-fp32.baseline.kernel.verdict"] == "within"


def test_a_launch_bound_engine_whose_kernels_got_10_percent_slower_regresses(tmp_path: Path) -> None:
    result = judged(fake_gpu_result(3.2, 0.41 * 1.10, seed=7), blessed(tmp_path, 3.2, 0.41))
    assert result.outcome == Outcome.FAILED and result.failures[0].stage == Stage.REGRESSION
    message = result.failures[0].message
    assert message.startswith("kernel time p50 0.41") and "allowed +5.0%" in message
    assert "launch-bound, so judged on GPU kernel time (--infer-kernel-tolerance)" in message
    assert status_cell(result).startswith("REGRESSION kernel time +")


def test_an_engine_busy_on_the_gpu_keeps_the_wall_time_judgement(tmp_path: Path) -> None:
    store = blessed(tmp_path, 3.2, 3.0)
    steady_kernels = judged(fake_gpu_result(3.2 * 1.8, 3.0, seed=7), store)
    assert steady_kernels.baseline is not None and steady_kernels.baseline.judged_on == "wall"
    assert steady_kernels.baseline.kernel is not None  # compared, shown, not judged
    # its history of wall p50s is noisy (1.6, 1.25, 1.0): the wall verdict says so, as it did before
    assert steady_kernels.baseline.latency is not None and steady_kernels.baseline.latency.verdict == "undecided"
    assert "baseline latency" in steady_kernels.undecided[0]


def test_a_dense_cuda_graph_engine_is_judged_on_wall_time_a_sparse_one_on_its_kernels(tmp_path: Path) -> None:
    (tmp_path / "dense").mkdir(), (tmp_path / "sparse").mkdir()
    dense = judged(fake_gpu_result(3.2, 3.0, graph=True, seed=7), blessed(tmp_path / "dense", 3.2, 3.0, graph=True))
    assert dense.baseline is not None and dense.baseline.judged_on == "wall"
    sparse = judged(fake_gpu_result(3.2, 0.3, graph=True, seed=7), blessed(tmp_path / "sparse", 3.2, 0.3, graph=True))
    assert sparse.baseline is not None and sparse.baseline.judged_on == "kernel"


def test_without_the_baselines_kernel_time_a_launch_bound_engine_is_judged_on_wall_time(tmp_path: Path) -> None:
    result = judged(fake_gpu_result(3.2, 0.41, seed=7), blessed(tmp_path, 3.2, None))
    assert result.baseline is not None and result.baseline.judged_on == "wall" and result.baseline.kernel is None


def test_the_kernel_allowance_is_an_option_the_gate_takes_like_the_others() -> None:
    result = fake_gpu_result(3.2, 0.41)
    assert settings_for(result, {}).kernel_tolerance == 0.05
    assert settings_for(result, {"kernel_tolerance": 0.2}).kernel_tolerance == 0.2
    result = replace(result, settings={"kernel_tolerance": {"value": 0.1, "source": "marker"}})
    assert settings_for(result, {"kernel_tolerance": 0.2}).kernel_tolerance == 0.1  # a test's own wins


# -- the reports ------------------------------------------------------------------------------------


def test_the_reports_name_the_launch_bound_engine_beside_its_wall_p50() -> None:
    result = fake_gpu_result(3.2, 0.41)
    assert engine_cell(result) == "eager-fp32 (launch-bound)"
    (line,) = kernel_lines([result])
    assert line.endswith("eager-fp32]: launch-bound: kernels 0.41 ms of 3.2 ms wall, 13% busy")
    assert "### GPU kernel time" in render_markdown([result])
    props = dict(junit_properties(result))
    assert props["infercheck.eager-fp32.latency.kernel.launch_bound"] is True
    assert props["infercheck.eager-fp32.latency.kernel.busy_fraction"] < 0.2
    cpu = fake_gpu_result(3.2, None)
    assert engine_cell(cpu) == "eager-fp32" and kernel_lines([cpu]) == []
    assert not any(".kernel." in name for name, _ in junit_properties(cpu))


def test_latency_stats_without_kernel_time_describe_as_before() -> None:
    stats = LatencyStats(samples_ms=(1.0,), timer="cpu", count=1, percentiles_ms={"p50": 1.0, "p90": 1.0, "p99": 1.0})
    assert stats.describe().endswith("over 1 samples (cpu)")
    stats = replace(stats, kernel=fake_kernel(0.41, 3.2))
    assert stats.describe().endswith("(cpu); launch-bound: kernels 0.41 ms of 3.2 ms wall, 13% busy")


# -- the GPU's own speed: a device probe beside the figures the device sets --------------------------


def with_probes(result: CheckResult, *, device_probe: Optional[float], host_probe: Optional[float] = 0.35,
                spread: float = 0.002) -> CheckResult:
    """``result`` with the GPU's probe (timing.device_probe, on its kernel fact) and the host's (machine_probe)."""
    latency = result.latency
    assert latency is not None and latency.kernel is not None
    kernel = replace(latency.kernel, device_probe_ms=device_probe, device_probe_spread=spread)
    return replace(result, latency=replace(latency, kernel=kernel, probe_ms=host_probe, probe_spread=spread))


def steady_history(tmp_path: Path, wall: float, kernel: float, *, graph: bool, device_probe: float) -> BaselineStore:
    """Three blessed runs within 0.4% of each other, wall and kernels alike, each with both probes."""
    path = tmp_path / "base.json"
    for seed in range(3):
        drift = 1 + 0.002 * seed
        run = fake_gpu_result(wall * drift, kernel * drift, graph=graph, seed=seed)
        update_baseline(path, [with_probes(run, device_probe=device_probe)])
    return BaselineStore.load(path)


def test_the_gpu_probe_rides_on_the_kernel_fact_into_reports_and_the_baselines_history(tmp_path: Path) -> None:
    result = with_probes(fake_gpu_result(0.57, 0.55, graph=True), device_probe=0.42)
    back = CheckResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.latency is not None and back.latency.kernel is not None
    assert back.latency.kernel.device_probe_ms == 0.42 and back.latency.kernel.device_probe_spread == 0.002
    update_baseline(tmp_path / "base.json", [result])
    (entry,) = BaselineStore.load(tmp_path / "base.json").entries
    assert entry.latency is not None and entry.latency["kernel"]["device_probe_ms"] == 0.42
    assert entry.history[0]["device_probe_ms"] == 0.42
    older = json.loads(json.dumps(fake_gpu_result(0.57, 0.55, graph=True).to_dict()))  # written before the probe
    del older["latency"]["kernel"]["device_probe_ms"], older["latency"]["kernel"]["device_probe_spread"]
    old = CheckResult.from_dict(older)
    assert old.latency is not None and old.latency.kernel is not None and old.latency.kernel.device_probe_ms is None


def test_impossible_gpu_probe_figures_are_refused_in_a_report_and_in_a_baseline(tmp_path: Path) -> None:
    result = with_probes(fake_gpu_result(0.57, 0.55, graph=True), device_probe=0.42)
    assert result.latency is not None and result.latency.kernel is not None
    for bad in (replace(result.latency.kernel, device_probe_ms=math.nan),
                replace(result.latency.kernel, device_probe_spread=-1.0)):
        with pytest.raises(DecodeError, match=r"results\[0\].latency.kernel.device_probe"):
            check_latency(replace(result.latency, kernel=bad), "results[0].latency")
    path = tmp_path / "base.json"
    update_baseline(path, [result])
    data = json.loads(path.read_text())
    data["entries"][0]["latency"]["kernel"]["device_probe_ms"] = -0.4
    path.write_text(json.dumps(data))
    with pytest.raises(pytest.UsageError, match="latency.kernel.device_probe_ms"):
        BaselineStore.load(path)


def test_the_gpus_probe_is_recorded_and_neither_changes_nor_joins_the_verdict(tmp_path: Path) -> None:
    """On the H100 (2026-12-07, 8 processes x 15 engines) the GPU's probe moved about 5.5% between processes
    and engines, 8 times the kernels' 0.7%, and not with them (correlation -0.2): a figure that moves by
    itself is not shown beside a verdict as if it explained it.  It stays in the facts and the history."""
    for graph, wall, kernel, factor in ((True, 0.57, 0.55, 1.2), (False, 3.2, 0.41, 1.1)):
        path = tmp_path / f"graph-{graph}"
        path.mkdir()
        store = steady_history(path, wall, kernel, graph=graph, device_probe=0.42)
        for gpu in (0.42 * factor, 0.42, 0.42 / factor):
            slower = judged(with_probes(fake_gpu_result(wall * (factor if graph else 1.0), kernel * factor, graph=graph,
                                                        seed=7), device_probe=gpu), store)
            comparison = slower.baseline
            assert comparison is not None and comparison.judged is not None
            assert comparison.judged.verdict == "regression" and slower.outcome == Outcome.FAILED
            assert comparison.judged_on == ("wall" if graph else "kernel")
            assert "reference workload" not in slower.failures[0].message.replace("machine's reference workload", "")
        (entry,) = store.entries
        assert [run["device_probe_ms"] for run in entry.history] == [0.42] * 3


# -- a dense engine's wall verdict, corroborated by its kernels (baseline/comparison.corroborate) -------


def odd_process_history(tmp_path: Path, wall: float, kernel: float) -> BaselineStore:
    """Three blessed runs of a dense CUDA graph whose second process ran 26% slower on wall time with its
    kernels unchanged (what one H100 process of eight did to an Inductor CUDA graph, 2026-12-07)."""
    path = tmp_path / "base.json"
    for seed, host in enumerate((1.0, 1.26, 1.002)):
        update_baseline(path, [fake_gpu_result(wall * host, kernel * (1 + 0.001 * seed), graph=True, seed=seed)])
    return BaselineStore.load(path)


def test_a_dense_graph_whose_wall_moved_and_kernels_did_not_is_undecided_not_a_regression(tmp_path: Path) -> None:
    store = steady_history(tmp_path, 0.102, 0.093, graph=True, device_probe=0.42)
    odd = judged(fake_gpu_result(0.102 * 1.26, 0.093, graph=True, seed=7), store)
    comparison = odd.baseline
    assert comparison is not None and comparison.judged_on == "wall" and comparison.latency is not None
    assert comparison.kernel is not None and comparison.kernel.verdict == "within"
    # The wall time's own verdict is kept (reports show it); the verdict reads it with the kernels.
    assert comparison.latency.verdict == "regression" and comparison.corroboration == "kernels did not move"
    assert comparison.judged is not None and comparison.judged.verdict == "undecided" and not comparison.regressions
    assert odd.outcome == Outcome.PASSED and odd.undecided  # said, and --infer-baseline-strict fails it
    assert "its GPU kernel time did not move" in odd.undecided[0] and "(+25." in odd.undecided[0]
    assert status_cell(odd).startswith("undecided +25.")


def test_a_dense_graphs_wall_and_kernels_moving_opposite_ways_is_undecided_either_way(tmp_path: Path) -> None:
    """The review's case: the wall 20% slower while the kernels got 10% faster is the host's change even more
    clearly than with steady kernels; and a faster wall with slower kernels is no improvement to report."""
    store = steady_history(tmp_path, 0.102, 0.093, graph=True, device_probe=0.42)
    for wall, kernel in ((1.2, 0.9), (0.8, 1.1)):
        moved = judged(fake_gpu_result(0.102 * wall, 0.093 * kernel, graph=True, seed=7), store)
        comparison = moved.baseline
        assert comparison is not None and comparison.latency is not None and comparison.kernel is not None
        assert comparison.latency.verdict == ("regression" if wall > 1 else "improvement")
        assert comparison.kernel.verdict == ("improvement" if wall > 1 else "regression")
        assert comparison.judged is not None and comparison.judged.verdict == "undecided"
        assert not comparison.regressions and not comparison.improvements and moved.outcome == Outcome.PASSED
        assert "its GPU kernel time moved the other way" in moved.undecided[0]


def test_a_dense_graph_whose_wall_and_kernels_both_slowed_regresses_on_wall_time(tmp_path: Path) -> None:
    store = steady_history(tmp_path, 0.102, 0.093, graph=True, device_probe=0.42)
    slower = judged(fake_gpu_result(0.102 * 1.2, 0.093 * 1.2, graph=True, seed=7), store)
    assert slower.baseline is not None and slower.baseline.judged_on == "wall"
    assert slower.outcome == Outcome.FAILED and slower.failures[0].stage == Stage.REGRESSION
    assert slower.failures[0].message.startswith("latency p50 ") and "its GPU kernel time moved too (+19." in (
        slower.failures[0].message)


def test_where_the_wall_history_is_too_noisy_a_dense_graphs_slower_kernels_decide(tmp_path: Path) -> None:
    store = odd_process_history(tmp_path, 0.102, 0.093)
    slower = judged(fake_gpu_result(0.102 * 1.05, 0.093 * 1.05, graph=True, seed=7), store)
    comparison = slower.baseline
    assert comparison is not None and comparison.latency is not None and comparison.latency.verdict == "undecided"
    assert comparison.judged_on == "kernel" and comparison.kernel is not None
    assert comparison.corroboration == "kernels decided"
    assert comparison.kernel.verdict == "regression" and comparison.kernel.max_regression == 0.03  # the wall's allowance
    message = slower.failures[0].message
    assert slower.outcome == Outcome.FAILED and message.startswith("kernel time p50 0.09")
    assert "its wall time could not decide (its noise margin" in message and "so its GPU kernel time decided" in message
    same = judged(fake_gpu_result(0.102, 0.093, graph=True, seed=8), store)  # nothing changed: still undecided
    assert same.outcome == Outcome.PASSED and same.undecided and same.baseline is not None
    assert same.baseline.judged_on == "wall"


def test_faster_kernels_do_not_decide_a_dense_graphs_undecided_wall(tmp_path: Path) -> None:
    """Not the mirror: when the kernels get faster, the host may set the pace, so the wall need not follow."""
    store = odd_process_history(tmp_path, 0.102, 0.093)
    faster = judged(fake_gpu_result(0.102 * 0.95, 0.093 * 0.9, graph=True, seed=7), store)
    assert faster.baseline is not None and faster.baseline.judged_on == "wall"
    assert faster.baseline.kernel is not None and faster.baseline.kernel.verdict == "improvement"
    assert faster.undecided and not faster.baseline.improvements


def test_the_reports_say_why_a_dense_graph_was_judged_as_it_was(tmp_path: Path) -> None:
    from pytest_infercheck.report.html import baseline_notes

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    decided = judged(fake_gpu_result(0.102 * 1.05, 0.093 * 1.05, graph=True, seed=7),
                     odd_process_history(tmp_path / "a", 0.102, 0.093))
    notes = " ".join(baseline_notes(decided))
    assert "dense GPU engine whose wall time could not decide: judged on GPU kernel time" in notes
    assert "launch-bound" not in notes  # it is 91% busy: not what the launch-bound note says
    props = dict(baseline_properties(decided))
    assert props["infercheck.eager-fp32.baseline.corroboration"] == "kernels decided"
    assert props["infercheck.eager-fp32.baseline.judged_on"] == "kernel"
    host = judged(fake_gpu_result(0.102 * 1.26, 0.093, graph=True, seed=7),
                  steady_history(tmp_path / "b", 0.102, 0.093, graph=True, device_probe=0.42))
    notes = " ".join(baseline_notes(host))
    assert "the host's share moved, so undecided" in notes and "GPU kernel time -" in notes
    props = dict(baseline_properties(host))
    assert props["infercheck.eager-fp32.baseline.latency.verdict"] == "regression"  # the wall's own verdict
    assert props["infercheck.eager-fp32.baseline.verdict"].startswith("undecided")  # what the gate made of it

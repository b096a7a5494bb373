"""The kernel pass on a real GPU (kernel_time.measure_kernel_time): run on a CUDA machine (`pytest -m gpu`).

Skipped without CUDA (CI has none); scripts/gpu_check.sh runs them on the lent machine.  The workloads
are launch-bound or device-bound by construction (a host sleep between kernels, or none), so the label
is checked with wide margins, never a speed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run scripts/gpu_check.sh)")]


def timed(run: Callable[[], object], iterations: int = 10) -> float:
    """The wall p50 of ``run`` by the plugin's CUDA-event timer."""
    from pytest_infercheck.measure.timing import CudaEventTimer, TimingPlan

    plan = TimingPlan(warmup=3, min_iters=iterations, max_iters=iterations, min_time=0.0, max_time=60.0)
    return CudaEventTimer().measure(run, plan, batch_size=1).p50_ms


def kernels_alone_ms(x: torch.Tensor, count: int) -> float:
    """``count`` matrix products back to back, timed by CUDA events: the device time with no host gap."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    for _ in range(3):
        torch.mm(x, x)
    times = []
    for _ in range(7):
        start.record()
        for _ in range(count):
            torch.mm(x, x)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return sorted(times)[len(times) // 2]


def test_a_host_that_holds_the_gpu_idle_makes_an_engine_launch_bound_and_its_kernel_time_excludes_the_gaps() -> None:
    from pytest_infercheck.measure.kernel_time import measure_kernel_time

    x = torch.randn(2048, 2048, device="cuda")

    def run() -> None:
        for _ in range(4):
            torch.mm(x, x)
            time.sleep(0.002)  # the host keeps the GPU waiting between launches

    wall = timed(run)
    kernel = measure_kernel_time(run, "cuda", None, wall_p50_ms=wall, cuda_graph=False)
    alone = kernels_alone_ms(x, 4)
    assert len(kernel.samples_ms) >= 5 and kernel.launch_bound and kernel.busy_fraction < 0.5
    assert 0.7 < kernel.p50_ms / alone < 1.3, (kernel.describe(), alone)  # the four products, not the sleeps


def test_an_engine_that_keeps_the_gpu_busy_is_not_launch_bound() -> None:
    from pytest_infercheck.measure.kernel_time import measure_kernel_time

    x = torch.randn(4096, 4096, device="cuda")

    def run() -> None:
        for _ in range(4):
            torch.mm(x, x)

    wall = timed(run)
    kernel = measure_kernel_time(run, "cuda", None, wall_p50_ms=wall, cuda_graph=False)
    assert not kernel.launch_bound and kernel.busy_fraction > 0.5, kernel.describe()
    assert kernel.describe().startswith("device-bound: kernels ")


SOURCE = """
import pytest
from fixtures.models import tiny_encoder, token_inputs

@pytest.mark.infercheck(engines=["eager-fp32", "eager-fp32-cudagraph"])
def test_encoder(infercheck):
    infercheck(tiny_encoder(), token_inputs())
"""


def test_the_plugin_measures_kernel_time_and_gates_a_launch_bound_engine_on_it(run_plugin, tmp_path: Path) -> None:
    """Every GPU engine carries its kernel time, a CUDA graph's labelled as one; against a baseline of three
    blessed runs, an engine is judged on kernel time exactly when it is launch-bound (in this run or the entry),
    a CUDA graph as any other (a sparse graph's replay is host-bound too)."""
    baseline, report = tmp_path / "base.json", tmp_path / "report.json"
    for _ in range(3):
        run_plugin(SOURCE, "--infer-device=cuda", f"--infer-baseline={baseline}",
                   "--infer-baseline-update").assert_outcomes(passed=2)
    result = run_plugin(SOURCE, "--infer-device=cuda", f"--infer-baseline={baseline}", f"--infer-report={report}",
                        "--infer-max-regression=100000%", "--infer-kernel-tolerance=100000%")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*GPU kernel time*", "*eager-fp32-cudagraph]: CUDA graph*: kernels * ms wall, *% busy"])
    entries = json.loads(baseline.read_text())["entries"]
    assert all(entry["latency"]["kernel"]["p50_ms"] > 0 and len(entry["history"]) == 3 for entry in entries)
    results = {r["spec_id"]: r for r in json.loads(report.read_text())["results"]}
    graph, eager = results["eager-fp32-cudagraph"], results["eager-fp32"]
    recorded = {entry["spec_id"]: entry["latency"]["kernel"]["launch_bound"] for entry in entries}
    for spec_id, judged in (("eager-fp32-cudagraph", graph), ("eager-fp32", eager)):
        launch_bound = judged["latency"]["kernel"]["launch_bound"] or recorded[spec_id]
        assert judged["baseline"]["judged_on"] == ("kernel" if launch_bound else "wall"), spec_id
    assert graph["latency"]["kernel"]["label"] == ("CUDA graph, launch-bound" if graph["latency"]["kernel"]["launch_bound"]
                                                   else "CUDA graph")
    assert eager["baseline"]["kernel"]["n_current"] >= 5


def test_the_warm_up_runs_the_engine_for_its_settle_time_before_sampling_and_none_with_warmup_0():
    """On a real GPU, sampling begins only after the warm-up has run the engine for settle_s (timings settle
    over hundreds of milliseconds after idle), and ``warmup=0`` runs no call beyond the samples, as the option
    says.  The stability rule after the settle time is tests/test_timing.py's (a fake device and clock)."""
    from pytest_infercheck.measure.timing import CudaEventTimer, TimingPlan

    x = torch.randn(256, 256, device="cuda")
    calls: list[float] = []

    def run() -> None:
        calls.append(time.perf_counter())
        torch.mm(x, x)

    plan = TimingPlan(warmup=3, min_iters=20, max_iters=20, min_time=0.0, max_time=60.0)
    started = time.perf_counter()
    stats = CudaEventTimer(settle_s=0.3).measure(run, plan, batch_size=1)
    sampling_began = calls[-stats.count]  # the first timed call: the warm-up's calls came before it
    assert stats.count == 20
    assert sampling_began - started >= 0.3, f"sampling began {sampling_began - started:.3f} s after the start"
    assert len(calls) > 20 + 3, "the warm-up ran only its fixed iterations"

    calls.clear()
    stats = CudaEventTimer(settle_s=0.3).measure(run, TimingPlan(warmup=0, min_iters=20, max_iters=20,
                                                               min_time=0.0, max_time=60.0), batch_size=1)
    assert len(calls) == stats.count == 20

#!/usr/bin/env python3
"""Does the plugin's CPU timer agree with torch.utils.benchmark, and how long does the demo take?

For each CPU engine of the example CNN, the same engine object is timed twice in this run: by the
plugin's CpuTimer (per-iteration perf_counter samples: p50 and mean) and by
``torch.utils.benchmark.Timer.blocked_autorange`` (median of block means, i.e. a mean per call).
The two alternate in short paired rounds, and the table shows the median over rounds of each
round's ratio: a shared machine drifts over seconds, and pairing keeps the drift out of the ratio.
Target: plugin p50 / autorange median within 0.95 to 1.05.  The p50 sits below a mean by the
skew of the distribution, so the mean's ratio is printed beside it: it separates timer overhead
(both ratios off) from skew (only the p50's).  Then the demo (`pytest fixtures/demo`)
is run twice against a fresh engine cache: cold, then warm.

    python benchmarks/cpu_overhead.py [--rounds 5] [--min-time 1.0] [--skip-demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ENGINES = [("eager", "fp32"), ("eager", "bf16"), ("inductor", "fp32"), ("inductor", "bf16"),
           ("onnxruntime", "fp32"), ("onnxruntime", "fp16"), ("onnxruntime", "int8")]


def build_engine(backend: str, precision: str, cache_dir: Path):
    import torch

    from fixtures.models import calibration_batches, cnn_inputs, small_cnn
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    torch.manual_seed(0)
    model = ModelUnderTest.create(small_cnn(), cnn_inputs())
    request = BuildRequest(spec=EngineSpec(backend, precision), device="cpu",
                           artifacts=ModelArtifacts(model, EngineCache(cache_dir)))
    if precision == "int8":
        request.calibration = [(batch,) for batch in calibration_batches()]
    engine = create_backend(backend).build(request)
    return engine, engine.prepare(model.inputs), model.batch_size


def plugin_stats(engine, prepared, batch: int, min_time: float) -> tuple[float, float]:
    from pytest_infercheck.measure.timing import CpuTimer, TimingPlan

    plan = TimingPlan(warmup=20, min_iters=100, max_iters=1_000_000, min_time=min_time)
    stats = CpuTimer().measure(lambda: engine.run(prepared), plan, batch_size=batch)
    return stats.p50_ms, stats.mean_ms


def autorange_median(engine, prepared, min_time: float) -> float:
    import torch
    from torch.utils.benchmark import Timer

    # Timer runs on 1 thread unless told otherwise: give it the threads the plugin's timing had.
    timer = Timer(stmt="engine.run(prepared)", globals={"engine": engine, "prepared": prepared},
                  num_threads=torch.get_num_threads())
    return timer.blocked_autorange(min_run_time=min_time).median * 1000.0


def timer_fidelity(rounds: int, min_time: float) -> list[tuple[str, float, float, float, float, float]]:
    """Per engine: median p50, mean, autorange; median paired ratio p50/autorange and mean/autorange."""
    cache_dir = Path(tempfile.mkdtemp(prefix="infercheck-bench-"))
    rows = []
    try:
        for backend, precision in ENGINES:
            engine, prepared, batch = build_engine(backend, precision, cache_dir)
            p50s, means, theirs = [], [], []
            for _ in range(rounds):  # paired rounds: drift on a shared machine hits both alike
                p50, mean = plugin_stats(engine, prepared, batch, min_time)
                p50s.append(p50)
                means.append(mean)
                theirs.append(autorange_median(engine, prepared, min_time))
            median = statistics.median
            rows.append((f"{backend}-{precision}", median(p50s), median(means), median(theirs),
                         median(a / b for a, b in zip(p50s, theirs)), median(a / b for a, b in zip(means, theirs))))
            engine.close()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    return rows


def demo_seconds(cache_dir: Path) -> tuple[float, int]:
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache_dir / "inductor"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "fixtures/demo", "-q", "-p", "no:randomly",
                           f"--infer-cache-dir={cache_dir}"], cwd=ROOT, env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--min-time", type=float, default=0.3, help="seconds per timing in each round")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"{args.rounds} interleaved rounds of {args.min_time}s each\n")
    rows = timer_fidelity(args.rounds, args.min_time)
    print(f"{'engine':<18} {'plugin p50':>10} {'plugin mean':>11} {'autorange':>10} {'p50/auto':>9} {'mean/auto':>9}"
          "  p50 ratio in 0.95-1.05")
    for name, p50, mean, theirs, p50_ratio, mean_ratio in rows:
        verdict = "yes" if 0.95 <= p50_ratio <= 1.05 else "NO"
        print(f"{name:<18} {p50:>10.4f} {mean:>11.4f} {theirs:>10.4f} {p50_ratio:>9.3f} {mean_ratio:>9.3f}  {verdict}")
    print("(ms; ratios are medians over rounds of each round's ratio)")
    if args.skip_demo:
        return
    cache_dir = Path(tempfile.mkdtemp(prefix="infercheck-demo-cache-"))
    try:
        cold, cold_rc = demo_seconds(cache_dir)
        warm, warm_rc = demo_seconds(cache_dir)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    print(f"\ndemo time to verdict (pytest fixtures/demo, exit codes {cold_rc}/{warm_rc}):")
    print(f"  cold cache {cold:6.1f} s")
    print(f"  warm cache {warm:6.1f} s   ({warm / cold:.0%} of cold)")


if __name__ == "__main__":
    main()

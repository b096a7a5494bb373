#!/usr/bin/env python3
"""Does the plugin's CPU timer agree with torch.utils.benchmark, and how long does the demo take?

For each CPU engine of the example CNN, the same engine object is timed twice in this run: by the
plugin's CpuTimer (per-iteration perf_counter samples, p50) and by
``torch.utils.benchmark.Timer.blocked_autorange`` (median of block means).  The two are
interleaved over several rounds so that drift on a noisy machine hits both alike; the table
prints the medians and their ratio (target 0.95 to 1.05).  Then the demo (`pytest fixtures/demo`)
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
    from pytest_infercheck.artifacts import ModelArtifacts
    from pytest_infercheck.backends import get_backend
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.cache import EngineCache
    from pytest_infercheck.model import ModelUnderTest
    from pytest_infercheck.spec import EngineSpec

    torch.manual_seed(0)
    model = ModelUnderTest.create(small_cnn(), cnn_inputs())
    request = BuildRequest(spec=EngineSpec(backend, precision), device="cpu",
                           artifacts=ModelArtifacts(model, EngineCache(cache_dir)))
    if precision == "int8":
        request.calibration = [(batch,) for batch in calibration_batches()]
    engine = get_backend(backend).build(request)
    return engine, engine.prepare(model.inputs), model.batch_size


def plugin_p50(engine, prepared, batch: int, min_time: float) -> float:
    from pytest_infercheck.timing import CpuTimer, TimingPlan

    plan = TimingPlan(warmup=20, min_iters=100, max_iters=1_000_000, min_time=min_time)
    return CpuTimer().measure(lambda: engine.run(prepared), plan, batch_size=batch).p50_ms


def autorange_median(engine, prepared, min_time: float) -> float:
    from torch.utils.benchmark import Timer

    timer = Timer(stmt="engine.run(prepared)", globals={"engine": engine, "prepared": prepared})
    return timer.blocked_autorange(min_run_time=min_time).median * 1000.0


def timer_fidelity(rounds: int, min_time: float) -> list[tuple[str, float, float]]:
    cache_dir = Path(tempfile.mkdtemp(prefix="infercheck-bench-"))
    rows = []
    try:
        for backend, precision in ENGINES:
            engine, prepared, batch = build_engine(backend, precision, cache_dir)
            ours, theirs = [], []
            for _ in range(rounds):  # interleaved: drift on a shared machine hits both alike
                ours.append(plugin_p50(engine, prepared, batch, min_time))
                theirs.append(autorange_median(engine, prepared, min_time))
            rows.append((f"{backend}-{precision}", statistics.median(ours), statistics.median(theirs)))
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per timing in each round")
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()

    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cores; "
          f"{args.rounds} interleaved rounds of {args.min_time}s each\n")
    rows = timer_fidelity(args.rounds, args.min_time)
    print(f"{'engine':<18} {'plugin p50 ms':>14} {'autorange ms':>13} {'ratio':>7}  within 0.95-1.05")
    for name, ours, theirs in rows:
        ratio = ours / theirs
        print(f"{name:<18} {ours:>14.4f} {theirs:>13.4f} {ratio:>7.3f}  {'yes' if 0.95 <= ratio <= 1.05 else 'NO'}")
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

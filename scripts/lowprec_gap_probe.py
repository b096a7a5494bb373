#!/usr/bin/env python3
"""Why the plugin's INT8/FP8 Inductor engine of the ViT-ish stack differs from the hand recipe (a probe).

On the H100 (2026-12-07, docs/benchmarks.md) benchmarks/gpu_lowprec.py put the ViT-ish INT8 engine's GPU
kernel time 9.7% over the hand recipe's (every other engine within 2%), and this probe's wall figures
went with the compile settings, not the quantized module.  Its reading: the fixture then restored
torchao's settings right after compiling the hand recipe, Dynamo's global-state guard (``allow_tf32``)
failed at its first timed call, and the hand recipe ran a recompile under Inductor's *defaults*.  The
fixture now compiles and times the hand recipe inside ``torchao_process_settings()``, and each variant
here is compiled and timed under one setting, in one process:

  plugin engine           the plugin's own engine (check flow, grabbed by its engine_probe hook): torchao's
                          Inductor options patched for its compile only, TF32 off
  plugin module, torchao  that engine's quantized module, compiled and run under torchao's process-wide
                          settings (its options and TF32 "high"), as a user's process has them
  hand                    the hand recipe (fixtures/torchao_hand.py), the same settings
  hand module, defaults   the hand recipe's quantized module under Inductor's defaults (TF32 off): what
                          the fixture timed before
  hand module, plugin     the hand recipe's quantized module compiled the plugin's way

and prints, per variant: p50 (fixtures' CUDA-event timer), Triton's do_bench, host time per call (right
after a synchronise: a hint of host work, not a proof), GPU kernel time per iteration (the plugin's
kernel pass: the figure the host does not move), the graphs its timed calls compiled ("graphs in timing", 0 expected now),
the Dynamo graphs/recompiles/breaks of its compile; last, the kernels whose time per call differs most
between the plugin's engine and the hand recipe, and between the hand recipe and its defaults twin.
Where "hand module, defaults" alone is fast, torchao's recommended options cost time on this model.

    python scripts/lowprec_gap_probe.py [--model vit] [--precision int8]      # CUDA only
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def compiled(module: Any, inputs: tuple[Any, ...], settings: Any) -> tuple[Callable[..., Any], dict[str, int]]:
    """``module`` compiled in its first call under ``settings`` (a context the caller holds open, or one
    for the compile only); the Dynamo counters that compile moved."""
    import torch
    from torch._dynamo.utils import counters

    def count() -> dict[str, int]:
        return {"graphs": counters["stats"]["unique_graphs"], "recompiles": sum(counters["recompiles"].values()),
                "breaks": sum(counters["graph_break"].values())}

    torch._dynamo.reset()
    before = count()
    fn = torch.compile(module)
    with settings, torch.inference_mode():
        fn(*inputs)
    return fn, {key: value - before[key] for key, value in count().items()}


PROFILED_CALLS = 20


def timings(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> tuple[float, float, float, float, int]:
    """(cuda_p50_ms, do_bench ms, host ms per call, kernel ms per call, recompiles) of ``fn(*inputs)``
    under inference mode.  The host figure is the median time one call takes to return right after a
    synchronise (the GPU idle): close to the p50, the host's work (Python, dispatch, launches) weighs at
    this size.  The kernel figure is the plugin's kernel pass (measure/kernel_time.py), as
    benchmarks/gpu_lowprec.py reads it; the last: the graphs the timed calls themselves compiled."""
    import statistics
    import time

    import torch
    from torch._dynamo.utils import counters
    from triton.testing import do_bench

    from fixtures.torchao_hand import cuda_p50_ms
    from pytest_infercheck.measure.kernel_time import measure_kernel_time

    # Graphs Dynamo compiled during the timed calls: a failed global-state guard (TF32 switched since the
    # compile) compiles a new graph without moving counters["recompiles"] (seen on torch 2.13), and every
    # recompile compiles a graph, so the graphs are the count.
    def compiles() -> int:
        return counters["stats"]["unique_graphs"]

    before = compiles()
    host = []
    with torch.inference_mode():
        bench = float(do_bench(lambda: fn(*inputs), return_mode="median"))
        for _ in range(50):
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn(*inputs)
            host.append((time.perf_counter() - start) * 1000.0)
        torch.cuda.synchronize()
    p50 = cuda_p50_ms(fn, inputs)
    with torch.inference_mode():
        kernel = measure_kernel_time(lambda: fn(*inputs), "cuda", None, wall_p50_ms=p50, cuda_graph=False).p50_ms
    return p50, bench, statistics.median(host), kernel, compiles() - before


def kernels_by_name(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> dict[str, tuple[float, float]]:
    """{kernel name: (device ms per call, launches per call)} over PROFILED_CALLS calls (torch.profiler)."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        fn(*inputs)
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(PROFILED_CALLS):
                fn(*inputs)
            torch.cuda.synchronize()
    table: dict[str, tuple[float, float]] = {}
    for event in prof.key_averages():
        if event.device_type == DeviceType.CUDA:
            total_us = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)
            table[event.key] = (total_us / 1000.0 / PROFILED_CALLS, event.count / PROFILED_CALLS)
    return table


def print_kernel_differences(first: dict[str, tuple[float, float]], second: dict[str, tuple[float, float]],
                             labels: tuple[str, str], top: int = 12) -> None:
    """The kernels whose time per call differs most between two variants (``labels`` name them)."""
    a, b = labels
    print(f"\nkernels per call: {a} {sum(c for _, c in first.values()):.0f} launches, "
          f"{sum(t for t, _ in first.values()):.3f} ms; {b} {sum(c for _, c in second.values()):.0f} launches, "
          f"{sum(t for t, _ in second.values()):.3f} ms")
    names = sorted(set(first) | set(second),
                   key=lambda n: -abs(first.get(n, (0.0, 0.0))[0] - second.get(n, (0.0, 0.0))[0]))
    print(f"{a + ' ms':>12} {b + ' ms':>12} {a + ' n':>10} {b + ' n':>10}  kernel (largest differences first)")
    for name in names[:top]:
        mine, theirs = first.get(name, (0.0, 0.0)), second.get(name, (0.0, 0.0))
        print(f"{mine[0]:12.4f} {theirs[0]:12.4f} {mine[1]:10.1f} {theirs[1]:10.1f}  {name[:100]}")


def main() -> None:
    import torch

    from gpu import check_one
    from gpu_lowprec import MODELS

    from fixtures.torchao_hand import hand_recipe, torchao_process_settings
    from pytest_infercheck.backends import torchao_quant
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.check.reference import tf32_setting
    from pytest_infercheck.plugin.session import RunState

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit", choices=sorted(MODELS))
    parser.add_argument("--precision", default="int8", choices=("int8", "fp8"))
    args = parser.parse_args()
    if not torch.cuda.is_available():  # the hand recipe and the plugin's torchao engines run on CUDA only
        raise SystemExit("scripts/lowprec_gap_probe.py needs a CUDA GPU")
    model, inputs = MODELS[args.model]()
    rows: list[tuple[str, float, float, float, float, int, dict[str, int], str]] = []
    kernel_tables: dict[str, dict[str, tuple[float, float]]] = {}

    grabbed: dict[str, Any] = {}
    import gpu

    original_probe_hook = gpu.do_bench_median

    def keep_engine(engine: Any, prepared: Any) -> float:  # check_one's engine_probe calls this on CUDA
        grabbed["engine"], grabbed["prepared"] = engine, prepared
        grabbed["p50"] = timings(engine.fn, tuple(prepared))
        kernel_tables["plugin"] = kernels_by_name(engine.fn, tuple(prepared))
        grabbed["module"] = getattr(engine.fn, "_orig_mod", None)
        return original_probe_hook(engine, prepared)

    gpu.do_bench_median = keep_engine
    try:
        with tempfile.TemporaryDirectory() as directory:
            row = check_one(f"inductor-{args.precision}", model, inputs, EngineCache(Path(directory)), RunState(),
                            "default", "cuda")
    finally:
        gpu.do_bench_median = original_probe_hook
    print(f"plugin check: {row.get('outcome')} p50 {row.get('p50_ms')} ms, rel err {row.get('rel_err')}; "
          f"{row.get('message', '')[:200]}", flush=True)
    if "engine" in grabbed:
        rows.append(("plugin engine", *grabbed["p50"], {}, "the plugin's compiled function, its own first compile"))
        module = grabbed["module"]
        if module is not None:
            with torchao_process_settings():
                fn, moved = compiled(module, tuple(grabbed["prepared"]), contextlib.nullcontext())
                rows.append(("plugin module, torchao", *timings(fn, tuple(grabbed["prepared"])), moved,
                             "compiled and run under torchao's process-wide settings"))
        grabbed["engine"].close()

    with torchao_process_settings():
        fn, cast = hand_recipe(model, inputs, args.precision)
        rows.append(("hand", *timings(fn, cast), {}, "fixtures/torchao_hand.py, under torchao's settings"))
        kernel_tables["hand"] = kernels_by_name(fn, cast)
    hand_module = getattr(fn, "_orig_mod", None)
    if hand_module is not None:
        with tf32_setting("cuda", False):
            again, moved = compiled(hand_module, cast, contextlib.nullcontext())
            rows.append(("hand module, defaults", *timings(again, cast), moved,
                         "Inductor's defaults, TF32 off (the fixture's timing before 2026-12-07 evening)"))
            kernel_tables["defaults"] = kernels_by_name(again, cast)
            again, moved = compiled(hand_module, cast, torchao_quant.compile_options())
            rows.append(("hand module, plugin", *timings(again, cast), moved,
                         "options patched for the compile only, TF32 off"))

    print(f"\n{args.model} {args.precision} on cuda, torch {torch.__version__}")
    print(f"{'variant':24} {'p50 ms':>9} {'do_bench':>9} {'host ms':>8} {'kernel ms':>9} "
          f"{'graphs in timing':>16}  dynamo (graphs/recompiles/breaks)  note")
    for name, p50, bench, host, kernel, recompiled, moved, note in rows:
        counts = "/".join(str(moved.get(key, "-")) for key in ("graphs", "recompiles", "breaks"))
        print(f"{name:24} {p50:9.3f} {bench:9.3f} {host:8.3f} {kernel:9.3f} {recompiled:>16}  {counts:>33}  {note}")
    if "plugin" in kernel_tables and "hand" in kernel_tables:
        print_kernel_differences(kernel_tables["plugin"], kernel_tables["hand"], ("plugin", "hand"))
    if "hand" in kernel_tables and "defaults" in kernel_tables:
        print_kernel_differences(kernel_tables["hand"], kernel_tables["defaults"], ("hand", "defaults"))


if __name__ == "__main__":
    main()

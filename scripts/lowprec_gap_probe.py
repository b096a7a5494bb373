#!/usr/bin/env python3
"""Why the plugin's INT8/FP8 Inductor engine of the ViT-ish stack is slower than the hand recipe (a probe).

On the H100 (2026-12-07, docs/benchmarks.md) benchmarks/gpu_lowprec.py gave, for its ViT-ish model, the
plugin's inductor-int8 p50 3.69 ms against the hand recipe's 2.50 ms (fp8: 3.43 against 2.39), with the
same rel err; on the MLP the two were within 20%.  On the CPU the plugin's quantized ViT compiles to one
graph, no break, no recompile.  This probe separates the candidates in one process, each timed by the same
timer (fixtures/torchao_hand.py's cuda_p50_ms) and by Triton's do_bench:

  plugin engine        the plugin's own engine (check flow, grabbed by its engine_probe hook)
  plugin module, hand  that engine's quantized module, compiled again the hand recipe's way
                       (torchao's process-wide Inductor settings and TF32 matmul precision "high")
  hand                 the hand recipe (quantize_ with torchao's defaults, torch.compile)
  hand module, plugin  the hand recipe's quantized module compiled the plugin's way (the options patched
                       for this compile only, TF32 off as the plugin's engines are built)

and prints the Dynamo graphs and recompiles each compile made (and any recompile its timed calls made:
torchao's settings are restored before timing, and Dynamo's global-state guards may then compile again),
each variant's GPU kernel time per iteration (the plugin's own kernel pass; the figure the host does not
move), its kernels' count per call, and, last, the kernels whose time per call differs most between the
plugin's engine and the hand recipe (torch.profiler's device time by kernel name), and each variant's host time per call
(the time one call takes to return, right after a synchronise): close to its p50, host work matters at
that size (a hint, not a proof: the synchronise can lengthen the call after it; kernel time settles
it).  Where "plugin module, hand" is fast, the compile settings explain the gap; where it stays slow,
the quantized module differs.

    python scripts/lowprec_gap_probe.py [--model vit] [--precision int8]      # CUDA only
"""
from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


@contextlib.contextmanager
def torchao_global_settings() -> Iterator[None]:
    """torchao's recommended_inductor_config_setter, as quantize_'s default turns it on, restored after."""
    import torch
    from torchao.quantization.utils import recommended_inductor_config_setter

    saved_config, saved_matmul = torch._inductor.config.save_config(), torch.get_float32_matmul_precision()
    try:
        recommended_inductor_config_setter()
        yield
    finally:
        torch._inductor.config.load_config(saved_config)
        torch.set_float32_matmul_precision(saved_matmul)


def compiled(module: Any, inputs: tuple[Any, ...], settings: Any) -> tuple[Callable[..., Any], dict[str, int]]:
    """``module`` compiled in its first call under ``settings``; the Dynamo counters that compile moved."""
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
    benchmarks/gpu_lowprec.py reads it; recompiles: those the timed calls themselves made."""
    import statistics
    import time

    import torch
    from torch._dynamo.utils import counters
    from triton.testing import do_bench

    from fixtures.torchao_hand import cuda_p50_ms
    from pytest_infercheck.measure.kernel_time import measure_kernel_time

    before = sum(counters["recompiles"].values())
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
    return p50, bench, statistics.median(host), kernel, sum(counters["recompiles"].values()) - before


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


def print_kernel_differences(plugin: dict[str, tuple[float, float]], hand: dict[str, tuple[float, float]],
                             top: int = 12) -> None:
    """The kernels whose time per call differs most between the plugin's engine and the hand recipe."""
    print(f"\nkernels per call: plugin {sum(c for _, c in plugin.values()):.0f} launches, "
          f"{sum(t for t, _ in plugin.values()):.3f} ms; hand {sum(c for _, c in hand.values()):.0f} launches, "
          f"{sum(t for t, _ in hand.values()):.3f} ms")
    names = sorted(set(plugin) | set(hand),
                   key=lambda n: -abs(plugin.get(n, (0.0, 0.0))[0] - hand.get(n, (0.0, 0.0))[0]))
    print(f"{'plugin ms':>10} {'hand ms':>9} {'plugin n':>9} {'hand n':>7}  kernel (largest differences first)")
    for name in names[:top]:
        mine, theirs = plugin.get(name, (0.0, 0.0)), hand.get(name, (0.0, 0.0))
        print(f"{mine[0]:10.4f} {theirs[0]:9.4f} {mine[1]:9.1f} {theirs[1]:7.1f}  {name[:110]}")


def main() -> None:
    import torch

    from gpu import check_one
    from gpu_lowprec import MODELS

    from fixtures.torchao_hand import hand_recipe
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
            fn, moved = compiled(module, tuple(grabbed["prepared"]), torchao_global_settings())
            rows.append(("plugin module, hand", *timings(fn, tuple(grabbed["prepared"])), moved,
                         "compiled again under torchao's process-wide settings"))
        grabbed["engine"].close()

    fn, cast = hand_recipe(model, inputs, args.precision)
    rows.append(("hand", *timings(fn, cast), {}, "fixtures/torchao_hand.py"))
    kernel_tables["hand"] = kernels_by_name(fn, cast)
    hand_module = getattr(fn, "_orig_mod", None)
    if hand_module is not None:
        with tf32_setting("cuda", False):
            again, moved = compiled(hand_module, cast, torchao_quant.compile_options())
            rows.append(("hand module, plugin", *timings(again, cast), moved,
                         "options patched for the compile only, TF32 off"))

    print(f"\n{args.model} {args.precision} on cuda, torch {torch.__version__}")
    print(f"{'variant':22} {'p50 ms':>9} {'do_bench':>9} {'host ms':>8} {'kernel ms':>9} "
          f"{'recompiled timing':>17}  dynamo (graphs/recompiles/breaks)  note")
    for name, p50, bench, host, kernel, recompiled, moved, note in rows:
        counts = "/".join(str(moved.get(key, "-")) for key in ("graphs", "recompiles", "breaks"))
        print(f"{name:22} {p50:9.3f} {bench:9.3f} {host:8.3f} {kernel:9.3f} {recompiled:>17}  {counts:>33}  {note}")
    if len(kernel_tables) == 2:
        print_kernel_differences(kernel_tables["plugin"], kernel_tables["hand"])


if __name__ == "__main__":
    main()

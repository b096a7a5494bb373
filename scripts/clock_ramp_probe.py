#!/usr/bin/env python3
"""How long a GPU takes to settle after idle, and whether the timer's warm-up waits long enough (a probe).

The gate's A/A on the H100 (2026-12-07 night, docs/benchmarks.md) saw the dense CUDA graphs' wall-time
blocks fall by 2-4% *within* every run (the first block slowest, some in one step of about 2%), over a
sampling window of about 120 ms that began a few milliseconds after the engine's warm-up rule was met.
Whether that is the GPU's clock coming up from idle (or from the GPU probe's matrix products just before)
is measured here, on the A/A's own models (benchmarks/gate_aa/test_aa_models.py), FP16 in a CUDA graph:

  idle->run      1 s idle, then 2 s of back-to-back replays: the median per 100 ms window and the SM clock
                 NVML reports at the window's end (pynvml; "-" without it)
  probe->run     1 s idle, the plugin's GPU probe (timing.device_probe), then 1 s of replays, as the plugin
                 orders them
  timer          1 s idle, the probe, then the plugin's CudaEventTimer with the default plan, its warm-up's
                 settle time 0 (the rule alone, as before) and defaults.CUDA_SETTLE_S: its block medians
                 (the figure whose drift the gate reads), p50 and the seconds it took

    python scripts/clock_ramp_probe.py          # CUDA only
"""
from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WINDOW_S = 0.1


def aa_models() -> Any:
    spec = importlib.util.spec_from_file_location("aa_models", ROOT / "benchmarks" / "gate_aa" / "test_aa_models.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def graphed(model: Any, example: Any) -> Callable[[], None]:
    """``model`` in FP16 on CUDA, captured in a CUDA graph (fixtures/torchao_hand.graphed): its replay."""
    from fixtures.torchao_hand import graphed as captured

    model = model.half().cuda().eval()
    x = example.cuda() if not example.is_floating_point() else example.half().cuda()
    return captured(model, (x,))


def clock() -> Callable[[], str]:
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        return lambda: str(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
    except Exception:
        return lambda: "-"


def windows(replay: Callable[[], None], seconds: float, sm_clock: Callable[[], str]) -> list[tuple[float, str]]:
    """Median ms per replay in each WINDOW_S window of back-to-back replays, and the SM clock at its end."""
    import numpy as np
    import torch

    out = []
    end_at = time.perf_counter() + seconds
    while time.perf_counter() < end_at:
        window_end = time.perf_counter() + WINDOW_S
        times = []
        while time.perf_counter() < window_end:
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(20)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(20)]
            for start, stop in zip(starts, ends):
                start.record()
                replay()
                stop.record()
            torch.cuda.synchronize()
            times.extend(s.elapsed_time(e) for s, e in zip(starts, ends))
        out.append((float(np.median(times)), sm_clock()))
    return out


def show(label: str, rows: list[tuple[float, str]]) -> None:
    first = rows[0][0]
    print(f"  {label:<11} " + " ".join(f"{m / first:.3f}" for m, _ in rows)
          + f"   (window 1: {first:.4f} ms; last/first {rows[-1][0] / first:.3f})")
    print(f"  {'SM MHz':<11} " + " ".join(c for _, c in rows))


def main() -> int:
    import torch

    from types import SimpleNamespace

    from pytest_infercheck.core import defaults
    from pytest_infercheck.measure.timing import CudaEventTimer, device_probe, plan_from_settings

    if not torch.cuda.is_available():
        print("CUDA only")
        return 2
    models = aa_models()
    torch.manual_seed(0)
    cases = {"convmixer": (models.ConvMixer().eval(), torch.randn(8, 3, 64, 64)),
             "tiny_decoder": (models.TinyDecoder().eval(), torch.randint(0, 1000, (1, 32))),
             "mlp": (models.mlp().eval(), torch.randn(16, 512))}
    sm_clock = clock()
    check_defaults = SimpleNamespace(warmup=defaults.WARMUP, min_iters=defaults.MIN_ITERS, max_iters=defaults.MAX_ITERS,
                                    min_time=defaults.MIN_TIME_S, max_time=defaults.MAX_TIME_S,
                                    ci_width=defaults.CI_WIDTH, confidence=defaults.CONFIDENCE, budget=None)
    print(f"{torch.cuda.get_device_name(0)}; ratios are each {WINDOW_S * 1000:.0f} ms window's median over the first's")
    for name, (model, example) in cases.items():
        replay = graphed(model, example)
        print(f"{name} (FP16, CUDA graph)")
        time.sleep(1.0)
        show("idle->run", windows(replay, 2.0, sm_clock))
        time.sleep(1.0)
        device_probe("cuda:0")
        show("probe->run", windows(replay, 1.0, sm_clock))
        for settle_s in (0.0, defaults.CUDA_SETTLE_S):
            time.sleep(1.0)
            device_probe("cuda:0")
            started = time.perf_counter()
            stats = CudaEventTimer(settle_s=settle_s).measure(replay, plan_from_settings(check_defaults), batch_size=1)
            took = time.perf_counter() - started
            blocks = stats.block_medians_ms
            print(f"  timer, settle {settle_s:.1f} s: blocks {' '.join(f'{b:.4f}' for b in blocks)} ms "
                  f"(first/last {blocks[0] / blocks[-1]:.3f}); p50 {stats.p50_ms:.4f} ms, {stats.count} samples, "
                  f"{took:.2f} s with its warm-up")
    return 0


if __name__ == "__main__":
    sys.exit(main())

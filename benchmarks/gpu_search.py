#!/usr/bin/env python3
"""Largest batch within a budget (search vs a hand scan of every batch) and device memory vs nvidia-smi.

    python benchmarks/gpu_search.py                       # H100: resnet50 and BERT-base, eager FP16
    python benchmarks/gpu_search.py --quick --device cpu  # smoke test: the example CNN on the CPU

max-batch: ``find_max_batch`` (powers of two, then bisection, each batch judged by the budget's
confidence decision) against a hand search that times every batch from 1 to the limit with the
same timer and plan and keeps the largest whose decision holds; printed: both answers, the
batches each timed, and their wall times.

memory: per engine (eager FP16, ONNX Runtime FP16 where its CUDA provider loads), the plugin's
DeviceMemoryTracker figures (method named) beside ``nvidia-smi --query-compute-apps`` for this
process, read while the engine is still alive, and torch's allocator peak.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# model -> (budget, search limit) for eager FP16 on the H100 (anchors: resnet50 b1 ~4 ms, BERT b1 ~6 ms, launch-bound)
TARGETS = {"resnet50": ("p90:15ms", 256), "bert": ("p90:15ms", 128), "smallcnn": ("p90:20ms", 16)}


def make_model(name: str, device: str) -> tuple[Any, tuple[Any, ...]]:
    import torch

    torch.manual_seed(0)
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None).eval(), (torch.randn(1, 3, 224, 224),)
    if name == "bert":
        from transformers import BertConfig, BertModel

        return BertModel(BertConfig()).eval(), (torch.randint(0, BertConfig().vocab_size, (1, 128)),)
    from fixtures.models import cnn_inputs, small_cnn

    return small_cnn(), (cnn_inputs(1),)


def build(backend: str, precision: str, model: Any, inputs: Any, device: str, cache_dir: Path) -> Any:
    from pytest_infercheck.backends.artifacts import ModelArtifacts
    from pytest_infercheck.backends import create_backend, descriptor_of
    from pytest_infercheck.backends.base import BuildRequest
    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.model.under_test import ModelUnderTest
    from pytest_infercheck.core.spec import EngineSpec

    mut = ModelUnderTest.create(model, inputs, dynamic_batch=True)
    spec = EngineSpec(backend, precision)
    engine_backend = create_backend(backend)
    reason = descriptor_of(backend).unavailable_reason(spec, device) or engine_backend.unavailable_reason(spec, device)
    if reason:
        raise RuntimeError(reason)
    return engine_backend.build(BuildRequest(spec=spec, device=device,
                                             artifacts=ModelArtifacts(mut, EngineCache(cache_dir))))


def plan_and_timer(device: str, quick: bool) -> tuple[Any, Any]:
    from types import SimpleNamespace

    from pytest_infercheck.config.options import OPTIONS
    from pytest_infercheck.measure.timing import plan_from_settings, timer_for

    settings = {option.name: option.default for option in OPTIONS} | ({"max_time": 0.2, "min_iters": 20} if quick else {})
    return plan_from_settings(SimpleNamespace(**settings)), timer_for(device)


def max_batch(name: str, args: argparse.Namespace, cache_dir: Path) -> list[str]:
    from pytest_infercheck.measure.budget import decide_budget
    from pytest_infercheck.measure.max_batch import engine_batch_runner, find_max_batch
    from pytest_infercheck.config.options import parse_budget

    budget_text, limit = TARGETS[name]
    budget, limit = parse_budget(args.budget or budget_text), args.limit or limit
    model, inputs = make_model(name, args.device)
    engine = build("eager", args.precision, model, inputs, args.device, cache_dir)
    plan, timer = plan_and_timer(args.device, args.quick)
    timed: list[int] = []
    inner = engine_batch_runner(lambda batch: engine, inputs, timer, plan, close_each=False)

    def runner(batch: int) -> list[float]:
        timed.append(batch)
        return inner(batch)

    start = time.perf_counter()
    found = find_max_batch(runner, budget, limit)
    search_s, searched = time.perf_counter() - start, list(timed)
    start, timed[:] = time.perf_counter(), []
    step = max(1, limit // args.scan_points) if args.scan_points else 1
    scan, fails = {}, 0
    for b in range(1, limit + 1, step):  # stops after 4 decided fails in a row: far past the answer
        scan[b] = decide_budget(runner(b), budget)
        fails = fails + 1 if scan[b].decision.value == "fail" else 0
        if fails >= 4:
            break
    # "holds" as the search reads it (measure/max_batch.BatchTrial.holds): undecided by the estimate's side
    hand = max((b for b, verdict in scan.items() if verdict.passed and verdict.estimate_within), default=None)
    scan_s = time.perf_counter() - start
    engine.close()
    return [f"{name} eager {args.precision} on {args.device}, {budget}, limit {limit}:",
            f"  search: {found.describe()}  [{len(searched)} batches timed: {searched}; {search_s:.1f} s]",
            f"  hand scan of every {'' if step == 1 else f'{step}th '}batch 1..{limit}: largest holding {hand} "
            f"[{len(scan)} batches, to {max(scan)}; {scan_s:.1f} s]",
            f"  agree: {found.batch == hand}" + ("" if step == 1 else f" (within the scan's step of {step})")]


def nvidia_smi_mib() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi unavailable ({exc})"
    mine = [line.split(",")[1].strip() for line in out.splitlines() if line.split(",")[0].strip() == str(os.getpid())]
    return f"{mine[0]} MiB" if mine else f"no entry for pid {os.getpid()} ({out.strip()[:100] or 'empty'})"


def memory(name: str, args: argparse.Namespace, cache_dir: Path) -> list[str]:
    from pytest_infercheck.measure.memory import DeviceMemoryTracker, torch_allocator_figures

    lines = []
    model, inputs = make_model(name, args.device)
    for backend in ("eager", "onnxruntime"):
        before_smi = nvidia_smi_mib() if args.device.startswith("cuda") else "-"
        tracker = DeviceMemoryTracker.start(args.device)
        if args.device.startswith("cuda"):
            import torch

            torch.cuda.reset_peak_memory_stats()
        try:
            engine = build(backend, args.precision, model, inputs, args.device, cache_dir)
        except Exception as exc:
            lines.append(f"{name} {backend}: not built ({str(exc)[:120]})")
            continue
        if tracker:
            tracker.mark_build()
        plan, timer = plan_and_timer(args.device, args.quick)
        prepared = engine.prepare(inputs)
        timer.measure(lambda: engine.run(prepared), plan, batch_size=1)
        peak, reserved = torch_allocator_figures(args.device)
        figure = tracker.result(torch_peak_bytes=peak, torch_reserved_bytes=reserved).describe() if tracker else "no device (CPU)"
        after_smi = nvidia_smi_mib() if args.device.startswith("cuda") else "-"
        lines.append(f"{name} {backend} {args.precision}: {figure}; nvidia-smi for this process: before build "
                     f"{before_smi}, with the engine alive {after_smi}")
        engine.close()
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="resnet50,bert")
    parser.add_argument("--precision", default="fp16")
    parser.add_argument("--budget", default="", help="override each model's budget, e.g. p90:10ms")
    parser.add_argument("--limit", type=int, default=0, help="override each model's search limit")
    parser.add_argument("--scan-points", type=int, default=0, help="hand scan: about this many batches (0: every batch)")
    parser.add_argument("--what", default="max-batch,memory")
    parser.add_argument("--quick", action="store_true", help="smoke test: the example CNN, short timing runs")
    args = parser.parse_args()
    if args.quick:
        args.models, args.precision = "smallcnn", ("fp32" if args.device == "cpu" else args.precision)
    cache_dir = Path(tempfile.mkdtemp(prefix="infercheck-gpu-search-"))
    print(f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; device {args.device}", flush=True)
    jobs: dict[str, Callable[[str, argparse.Namespace, Path], list[str]]] = {"max-batch": max_batch, "memory": memory}
    for what in args.what.split(","):
        for name in args.models.split(","):
            for line in jobs[what](name, args, cache_dir):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

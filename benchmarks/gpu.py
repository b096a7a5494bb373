#!/usr/bin/env python3
"""GPU engines through the plugin's own check flow, side by side with an independent timer.

For torchvision resnet50 (random weights) at batch 1 and 32 and a BERT-base-shaped encoder
(transformers BertModel(BertConfig()), random weights, sequence 128) at batch 1, each engine spec
is checked exactly as a test item would be (build or cache load, accuracy against eager FP32 with
TF32 off, CUDA-event timing), and the very same engine object is then timed by
``triton.testing.do_bench`` (median) before it closes.

Everything runs twice, in two fresh processes sharing one new engine cache: "cold" builds every
engine, "warm" loads what it can from the cache.  Printed per engine: p50/p99, speedup over eager
FP32, relative error, cold and warm build seconds, do_bench median and plugin p50 / do_bench;
then each model's whole cold and warm wall time, with and without the do_bench cross-check (the
benchmark's instrument, which a user's rerun does not pay).

    python benchmarks/gpu.py --out DIR [--models resnet50-b1,resnet50-b32,bert-b1] [--mode default]

A cold matrix that would not fit one call of the GPU machine (max-autotune builds take minutes
each) can be split: ``--phase cold --cache DIR --rows A`` then ``--phase cold --cache DIR --rows B``
add up into one cold record kept in DIR, and ``--phase warm --cache DIR`` reruns all of its rows
against the same cache and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The rows of each model's matrix.  No AOTInductor rows: on the lent H100 (torch 2.11+cu130)
# aoti_load_package crashes for every package (scripts/aoti_probe.py shows it for the canonical
# sequence), so an aoti row would be a compile of a minute or two ending in that same failed item.
BATCH1_ROWS = ["eager-fp32", "eager-fp16", "eager-fp16-cudagraph", "eager-bf16-cudagraph",
               "inductor-fp16", "inductor-fp16-cudagraph", "inductor-bf16-cudagraph",
               "onnxruntime-fp16", "tensorrt-fp16"]
MATRICES = {
    "resnet50-b1": BATCH1_ROWS,
    "resnet50-b32": ["eager-fp32", "eager-fp16", "eager-fp16-cudagraph", "inductor-fp16", "inductor-fp16-cudagraph"],
    "bert-b1": ["eager-fp32", "eager-fp16", "eager-fp16-cudagraph", "inductor-fp16", "inductor-fp16-cudagraph"],
}


def make_model(name: str) -> tuple[Any, tuple[Any, ...]]:
    import torch

    torch.manual_seed(0)
    if name.startswith("resnet50"):
        import torchvision

        batch = int(name.split("-b")[1])
        return torchvision.models.resnet50(weights=None).eval(), (torch.randn(batch, 3, 224, 224),)
    if name == "bert-b1":
        from transformers import BertConfig, BertModel

        model = BertModel(BertConfig()).eval()
        return model, (torch.randint(0, BertConfig().vocab_size, (1, 128)),)
    if name == "smallcnn-b4":  # the fixture CNN: smoke-tests this script in seconds
        from fixtures.models import cnn_inputs, small_cnn

        return small_cnn(), (cnn_inputs(4),)
    raise SystemExit(f"unknown model {name!r}; known: {', '.join(MATRICES)}, smallcnn-b4")


def do_bench_median(engine: Any, prepared: Any) -> float:
    """triton's timer on the engine's own stream (events on another stream would not bound its work)."""
    import torch
    from triton.testing import do_bench

    stream = engine.stream or torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        return float(do_bench(lambda: engine.run(prepared), warmup=100, rep=500, return_mode="median"))


# Where a row's wall time goes: these stage functions of the check are wrapped with a timer (a few
# microseconds a call, outside any timed loop).  What no stage covers is "other".
STAGE_TIMERS = {
    "model": ("pytest_infercheck.check.reference", "model_under_test"),
    "reference": ("pytest_infercheck.check.reference", "eager_reference"),
    "export": ("pytest_infercheck.check.build", "export_in_time"),
    "audit": ("pytest_infercheck.check.prebuild", "audit_before_build"),
    "predicted": ("pytest_infercheck.check.prebuild", "predicted_gaps"),
    "build": ("pytest_infercheck.check.flow", "build_stage"),
    "accuracy": ("pytest_infercheck.check.flow", "check_outputs"),
    "timing": ("pytest_infercheck.check.flow", "time_engine"),
    "ref timing": ("pytest_infercheck.check.latency", "reference_latency"),
}
stage_seconds: dict[str, float] = {}


def time_stages() -> None:
    """Wrap each STAGE_TIMERS function so that its calls add their seconds to ``stage_seconds``."""
    import functools
    import importlib

    for label, (module_name, attribute) in STAGE_TIMERS.items():
        module = importlib.import_module(module_name)
        function = getattr(module, attribute)

        @functools.wraps(function)
        def timed(*args: Any, _function: Any = function, _label: str = label, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _function(*args, **kwargs)
            finally:
                stage_seconds[_label] = stage_seconds.get(_label, 0.0) + time.perf_counter() - start

        setattr(module, attribute, timed)


# fixed: the earlier runs' plan (300 samples and 1 s per engine at least); adaptive: the plugin's
# defaults, stopping once p50 is known to +-1% (docs/latency.md), 1 s at most.
SAMPLING = {
    "fixed": {"min_iters": 300, "min_time": 1.0, "ci_width": 0.0},
    "adaptive": {"min_iters": 50, "min_time": 0.1, "max_time": 1.0, "ci_width": 0.01},
}


def check_one(spec_id: str, model: Any, inputs: Any, cache: Any, run: Any, mode: str, device: str,
              sampling: str = "adaptive") -> dict[str, Any]:
    import pytest

    from contextlib import nullcontext

    from pytest_infercheck.backends import engine_spec
    from pytest_infercheck.check import CheckContext, Infercheck
    from pytest_infercheck.core.progress import ProgressReporter

    independent: dict[str, float] = {}

    def probe(engine: Any, prepared: Any) -> None:
        if device == "cuda":
            probe_start = time.perf_counter()
            independent["do_bench_ms"] = do_bench_median(engine, prepared)
            independent["probe_s"] = time.perf_counter() - probe_start

    settings = {"device": device, "warmup": 10, "max_iters": 5000, "compile_mode": mode, "build_timeout": 540.0,
                **SAMPLING[sampling]}
    context = CheckContext(nodeid=f"benchmarks/gpu.py::{spec_id}", spec=engine_spec(spec_id),
                           layers=[("benchmark", settings)], cache=cache, run=run, record=lambda r: None,
                           timing_lock=lambda device: nullcontext(),
                           progress=ProgressReporter(lambda line: print(line, flush=True)), engine_probe=probe)
    check = Infercheck(context)
    stage_seconds.clear()
    start = time.perf_counter()
    try:
        check(model, inputs, raise_on_failure=False)
    except pytest.skip.Exception:
        pass
    result = check.results[-1]
    row = {"spec": spec_id, "mode": mode, "outcome": result.outcome, "message": result.message,
           "build_s": result.build_seconds, "wall_s": time.perf_counter() - start, "cache": result.cache,
           "speedup": result.speedup, "stages": dict(stage_seconds), **independent}
    if result.latency:
        row.update(p50_ms=result.latency.p50_ms, p99_ms=result.latency.p99_ms, count=result.latency.count,
                   peak_mib=(result.latency.peak_memory_bytes or 0) / 2**20)
        if result.latency.kernel is not None:  # GPU kernel time per iteration, and whether the host bounds it
            row.update(kernel_ms=result.latency.kernel.p50_ms, launch_bound=result.latency.kernel.launch_bound)
    if result.accuracy is not None and result.accuracy.outputs:  # (an AccuracyResult is falsy when it failed)
        row["rel_err"] = max(output.rel_l2 for output in result.accuracy.outputs)
    if result.gpu:
        row["gpu"] = result.gpu
    if result.latency and result.latency.device_memory:
        row["device_mib"] = (result.latency.device_memory.run_bytes or 0) / 2**20
    return row


def worker(args: argparse.Namespace) -> None:
    import torch

    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.plugin.session import RunState

    time_stages()
    cache = EngineCache(Path(args.cache))
    report: dict[str, Any] = {"phase": args.phase, "models": {}}
    for name in args.models.split(","):
        model, inputs = make_model(name)
        run = RunState()  # one model's rows share the reference and its timing, as a test's items do
        start = time.perf_counter()
        rows = []
        for spec_id in args.rows.split(",") if args.rows else MATRICES.get(name, BATCH1_ROWS):
            print(f"[{args.phase}] {name} {spec_id}", flush=True)
            rows.append(check_one(spec_id, model, inputs, cache, run, args.mode, args.device, args.sampling))
            if args.device == "cuda":
                torch.cuda.empty_cache()
        report["models"][name] = {"wall_s": time.perf_counter() - start, "rows": rows}
    Path(args.json).write_text(json.dumps(report, indent=1, default=str))


def run_phase(phase: str, args: argparse.Namespace, cache: Path, out: Path, rows: str) -> dict[str, Any]:
    target = out / f"gpu-{phase}.json"
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"), PYTHONUNBUFFERED="1")
    command = [sys.executable, "-X", "faulthandler", __file__, "--worker", "--phase", phase, "--cache", str(cache), "--json", str(target),
               "--models", args.models, "--mode", args.mode, "--device", args.device, "--rows", rows,
               "--sampling", args.sampling]
    with open(out / f"gpu-{phase}.log", "a") as log:
        code = subprocess.call(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    if code != 0 or not target.exists():
        print(f"{phase} run failed (exit {code}); see {out / f'gpu-{phase}.log'}")
        print((out / f"gpu-{phase}.log").read_text()[-3000:])
        raise SystemExit(1)
    return json.loads(target.read_text())


def merge_cold(earlier: Optional[dict[str, Any]], part: dict[str, Any]) -> dict[str, Any]:
    """One cold record from cold runs split by rows: rows appended, wall times added."""
    if earlier is None:
        return part
    for name, model in part["models"].items():
        if name not in earlier["models"]:
            earlier["models"][name] = model
            continue
        known = earlier["models"][name]
        known["rows"] = [row for row in known["rows"] if row["spec"] not in {r["spec"] for r in model["rows"]}]
        known["rows"] += model["rows"]
        known["wall_s"] += model["wall_s"]
        known["parts"] = known.get("parts", 1) + 1
    return earlier


def fmt(value: Optional[float], pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def own_time(model: dict[str, Any]) -> float:
    """A matrix's wall time less the benchmark's own do_bench timing of each engine."""
    return model["wall_s"] - sum(row.get("probe_s", 0.0) for row in model["rows"])


def table(cold: dict[str, Any], warm: dict[str, Any]) -> list[str]:
    lines = []
    header = ("| model | engine | verdict at default tolerances | p50 ms | p99 ms | n (warm) | speedup vs eager fp32 | rel err | build cold s | "
              "build warm s | do_bench ms | p50 / do_bench |")
    for name, model in cold["models"].items():
        lines += [f"\n{name} (whole matrix: cold {model['wall_s']:.1f} s, warm {warm['models'][name]['wall_s']:.1f} s, "
                  f"warm/cold {warm['models'][name]['wall_s'] / model['wall_s']:.1%})", "", header,
                  "|" + " --- |" * 12]
        warm_rows = {row["spec"]: row for row in warm["models"][name]["rows"]}
        for row in model["rows"]:
            again = warm_rows.get(row["spec"], {})
            ratio = row["p50_ms"] / row["do_bench_ms"] if row.get("p50_ms") and row.get("do_bench_ms") else None
            outcome = row["outcome"] if row["outcome"] != "skipped" else "skipped: " + row["message"].split(": ", 1)[-1][:60]
            lines.append(f"| {name} | {row['spec']} | {outcome} | {fmt(row.get('p50_ms'), '.3f')} | "
                         f"{fmt(row.get('p99_ms'), '.3f')} | {fmt(again.get('count'), 'd')} | {fmt(row.get('speedup'), '.2f')}x | "
                         f"{fmt(row.get('rel_err'), '.1e')} | {fmt(row.get('build_s'), '.1f')} | "
                         f"{fmt(again.get('build_s'), '.1f')} | {fmt(row.get('do_bench_ms'), '.3f')} | "
                         f"{fmt(ratio, '.3f')} |")
        again_model = warm["models"][name]
        cold_own, warm_own = own_time(model), own_time(again_model)
        lines.append(f"without the do_bench cross-check: cold {cold_own:.1f} s, warm {warm_own:.1f} s, "
                     f"warm/cold {warm_own / cold_own:.1%}"
                     + (f" (cold run in {model['parts']} processes)" if model.get("parts") else ""))
        lines += stage_table("cold", model) + stage_table("warm", again_model)
        failures = [row for row in model["rows"] if row["outcome"] == "failed"]
        for row in failures:
            lines.append(f"  {row['spec']} failed: {row['message'][:400]}")
    return lines


def stage_table(phase: str, model: dict[str, Any]) -> list[str]:
    """Where each row's wall time went in one phase: seconds per stage, the do_bench probe, the rest."""
    labels = list(STAGE_TIMERS)
    lines = [f"\n{phase}: seconds per stage (rows: engines; 'other' is the wall time no stage covers)", "",
             "| engine | wall s | " + " | ".join(labels) + " | do_bench | other |",
             "|" + " --- |" * (len(labels) + 4)]
    totals: dict[str, float] = {}
    for row in model["rows"]:
        stages = {**{label: row.get("stages", {}).get(label, 0.0) for label in labels}, "do_bench": row.get("probe_s", 0.0)}
        stages["other"] = row["wall_s"] - sum(stages.values())
        for label, seconds in {"wall": row["wall_s"], **stages}.items():
            totals[label] = totals.get(label, 0.0) + seconds
        lines.append(f"| {row['spec']} | {row['wall_s']:.2f} | " + " | ".join(f"{v:.2f}" for v in stages.values()) + " |")
    lines.append(f"| all rows | {totals.get('wall', 0.0):.2f} | "
                 + " | ".join(f"{totals.get(label, 0.0):.2f}" for label in [*labels, "do_bench", "other"]) + " |")
    return lines


def cold_run(record: Path, args: argparse.Namespace, cache: Path, out: Path) -> dict[str, Any]:
    """Build ``args.rows`` cold; with ``--phase cold`` added to the record an earlier part left in ``record``."""
    earlier = json.loads(record.read_text()) if args.phase == "cold" and record.exists() else None
    if earlier is not None and earlier.get("mode") != args.mode:
        raise SystemExit(f"the cold record in {cache} was built with --mode {earlier.get('mode')}, not {args.mode}")
    cold = merge_cold(earlier, run_phase("cold", args, cache, out, args.rows))
    cold["mode"] = args.mode
    record.write_text(json.dumps(cold, indent=1, default=str))
    return cold


def warm_rerun(cold: dict[str, Any], args: argparse.Namespace, cache: Path, out: Path) -> dict[str, Any]:
    """Every model's rows of the cold record again, against the same cache (``args.mode``: the cold run's)."""
    warm: dict[str, Any] = {"phase": "warm", "models": {}}
    for name, model in cold["models"].items():
        rerun = argparse.Namespace(**{**vars(args), "models": name})
        rows = ",".join(row["spec"] for row in model["rows"])
        warm["models"].update(run_phase("warm", rerun, cache, out, rows)["models"])
    return warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MATRICES))
    parser.add_argument("--mode", default="default", help="torch.compile mode for inductor and aoti")
    parser.add_argument("--rows", default="", help="comma-separated engine ids instead of each model's matrix")
    parser.add_argument("--device", default="cuda", help="cpu only to smoke-test this script without a GPU")
    parser.add_argument("--sampling", choices=tuple(SAMPLING), default="adaptive",
                        help="adaptive: the plugin's stopping rule (default); fixed: 300 samples and 1 s per engine")
    parser.add_argument("--phase", choices=("both", "cold", "warm"), default="both",
                        help="cold: build into --cache and keep the record there; warm: rerun that record's rows")
    parser.add_argument("--cache", help="engine cache directory (default: a new temporary one; needed by --phase)")
    parser.add_argument("--out", default=os.environ.get("OUT", "."))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.phase != "both" and not args.cache:
        raise SystemExit("--phase cold/warm needs --cache DIR, the engine cache the two phases share")
    cache = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="infercheck-gpu-bench-"))
    cache.mkdir(parents=True, exist_ok=True)
    record = cache / "benchmark-cold.json"
    if args.phase == "warm":
        if not record.exists():
            raise SystemExit(f"no cold record in {cache}: run --phase cold --cache {cache} first")
        cold = json.loads(record.read_text())
        args.mode = cold.get("mode", args.mode)  # the printed table names the mode the engines were built in
        warm = warm_rerun(cold, args, cache, out)
    else:
        cold = cold_run(record, args, cache, out)
        if args.phase == "cold":
            print(f"cold record in {record}: " + "; ".join(
                f"{name} {len(model['rows'])} rows, {model['wall_s']:.1f} s" for name, model in cold["models"].items()))
            return
        warm = run_phase("warm", args, cache, out, args.rows)
    gpu = next((row["gpu"] for m in cold["models"].values() for row in m["rows"] if row.get("gpu")), None)
    lines = [f"date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; GPU {json.dumps(gpu)}; "
             f"compile mode {args.mode}; sampling {args.sampling}"] + table(cold, warm)
    (out / "gpu-bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Profiles that add up (issue 25, item 5): does "where the time goes" sum to the measured time?

A ConvNeXt (torchvision ``convnext_tiny``, random weights; ``--model convnext-ish`` for the smaller
stand-in of benchmarks/gpu_lowprec.py, ``smallcnn`` for a seconds-long smoke run on the CPU) is
checked through the plugin's own flow with ``profile=True`` (build, accuracy, timing, then the
profile against the timing's p50), once per engine: eager FP32, inductor FP16 without and with the
plugin's CUDA graph.  Printed per engine: the measured p50 per iteration, the rows' sum, their
ratio, the share of the rows' time with a module named, the profiled loop's time per iteration,
and the table's top rows and totals.

Done when (the issue): the CUDA-graph engine's rows are within 10% of its measured time, with
modules named.  The exit status is 0 either way; the table says which rows met it.

    python benchmarks/gpu_profile.py [--model convnext_tiny] [--batch 1] [--device cuda] [--engines ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ENGINES = ("eager-fp32", "inductor-fp16", "inductor-fp16-cudagraph")


def make_model(name: str, batch: int) -> tuple[Any, tuple[Any, ...]]:
    import torch

    torch.manual_seed(0)
    if name == "convnext_tiny":
        import torchvision

        model = torchvision.models.convnext_tiny(weights=None).eval()
        return model, (torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(0)),)
    if name == "convnext-ish":
        from gpu_lowprec import convnext

        return convnext(batch)
    if name == "smallcnn":
        from fixtures.models import cnn_inputs, small_cnn

        return small_cnn(), (cnn_inputs(batch),)
    raise SystemExit(f"unknown model {name!r}: convnext_tiny, convnext-ish, smallcnn")


def check_one(spec_id: str, model: Any, inputs: Any, cache: Any, run: Any, device: str) -> dict[str, Any]:
    import pytest

    from pytest_infercheck.backends import engine_spec
    from pytest_infercheck.check import CheckContext, Infercheck
    from pytest_infercheck.core.progress import ProgressReporter

    settings = {"device": device, "warmup": 10, "min_iters": 50, "min_time": 0.1, "max_time": 1.0, "ci_width": 0.01,
                "profile": True, "build_timeout": 300.0}
    context = CheckContext(nodeid=f"benchmarks/gpu_profile.py::{spec_id}", spec=engine_spec(spec_id),
                           layers=[("benchmark", settings)], cache=cache, run=run, record=lambda r: None,
                           timing_lock=lambda device: nullcontext(),
                           progress=ProgressReporter(lambda line: print(line, flush=True)))
    check = Infercheck(context)
    start = time.perf_counter()
    try:
        check(model, inputs, raise_on_failure=False)
    except pytest.skip.Exception as skip:
        return {"spec": spec_id, "outcome": "skipped", "message": str(skip)}
    result = check.results[-1]
    row: dict[str, Any] = {"spec": spec_id, "outcome": str(result.outcome), "wall_s": round(time.perf_counter() - start, 1),
                           "warnings": [w for w in result.warnings if "profil" in w]}
    table = result.profile
    if table is None:
        row["message"] = result.message or "no profile"
        return row
    row.update(measured_ms=table.measured_ms, measured_by=table.measured_by, rows_ms=table.total_ms,
               ratio=table.total_ms / table.measured_ms if table.measured_ms > 0 else float("nan"),
               mapped=table.mapped_share(), wall_ms=table.wall_ms, rows=len(table.rows), method=table.method,
               note=table.note, summary=table.summary(8),
               top=[{"name": r.name, "op": r.op_type, "module": r.module, "ms": r.total_ms} for r in table.rows[:40]])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="convnext_tiny")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--cache", default="", help="engine cache directory (default: a new temporary one)")
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args()

    import torch

    from pytest_infercheck.backends.cache import EngineCache
    from pytest_infercheck.plugin.session import RunState

    print(f"torch {torch.__version__}", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA",
          flush=True)
    cache = EngineCache(Path(args.cache or tempfile.mkdtemp(prefix="infercheck-profile-")))
    model, inputs = make_model(args.model, args.batch)
    run = RunState()
    rows = []
    for spec_id in args.engines.split(","):
        print(f"== {args.model} b{args.batch} {spec_id}", flush=True)
        row = check_one(spec_id, model, inputs, cache, run, args.device)
        rows.append(row)
        if "summary" in row:
            print(row["summary"], flush=True)
            if row["note"]:
                print("      note:", row["note"], flush=True)
        else:
            print("  ", row.get("outcome"), row.get("message", ""), flush=True)
        for warning in row.get("warnings", []):
            print("   warning:", warning, flush=True)

    print(f"\n{args.model} batch {args.batch} on {args.device}: rows against the measured time per iteration")
    print(f"{'engine':26} {'measured ms':>11} {'rows ms':>9} {'rows/measured':>13} {'module named':>12} "
          f"{'profiled loop ms':>16}  within 10%")
    for row in rows:
        if "rows_ms" not in row:
            print(f"{row['spec']:26} {row.get('outcome', '')}: {row.get('message', '')[:80]}")
            continue
        within = abs(row["ratio"] - 1.0) <= 0.10
        print(f"{row['spec']:26} {row['measured_ms']:11.4f} {row['rows_ms']:9.4f} {row['ratio']:13.1%} "
              f"{row['mapped']:12.1%} {row['wall_ms']:16.4f}  {'yes' if within else 'no'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "batch": args.batch, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The mixed-precision repair on a model whose reduced-precision engines fail for a real numerical reason
(issue 24, item 4): what failed, the keep-list the plugin found, and the rebuilt engine's error and p50.

The model (fixtures/problem_models.py, ``positions_in_low_precision``): a token encoder whose sinusoidal
positional encoding is computed on the fly in the activations' dtype, as hand-written encoders and early
rotary-embedding ports do.  In FP16 an angle ``position * frequency`` of a few hundred radians is rounded
to 0.25-1 rad and BF16 cannot count positions by one past 256, so the sines and cosines added to the
embeddings are wrong and the error reaches the output whatever the weights.  Nothing tells the plugin
where: the repair finds it from the per-module comparison and proves the answer by rebuilding the engine.

    python benchmarks/repair.py                          # the CPU: eager-fp16/bf16, onnxruntime-fp16
    python benchmarks/repair.py --device cuda            # the GPU: eager and inductor fp16/bf16 too
    python benchmarks/repair.py --lengths 512,1536 --engines onnxruntime-fp16

Each length is one pytest process (``repair_precision=True``) writing --infer-report; one row per engine:
the failing engine's rel err, the keep-list, the repaired engine's rel err, its p50 against the failing
engine's (both under the repair's short plan), how many lists were built and the search's seconds.
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

ROOT = Path(__file__).resolve().parents[1]

TEST = '''
import pytest
from fixtures.problem_models import positions_in_low_precision, token_ids


@pytest.mark.infercheck(engines={engines!r}, repair_precision=True, repair_time={cap})
def test_positions(infercheck):
    infercheck(positions_in_low_precision(), token_ids({length}), raise_on_failure=False)
'''

ENGINES = {"cpu": ["eager-fp16", "eager-bf16", "onnxruntime-fp16"],
           "cuda": ["eager-fp16", "eager-bf16", "inductor-fp16", "inductor-bf16", "onnxruntime-fp16"]}


def run(length: int, engines: list[str], device: str, cap: float, work: Path, cache: Path) -> list[dict]:
    folder = work / f"len{length}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_repair_positions.py").write_text(TEST.format(engines=engines, cap=cap, length=length))
    report = folder / "report.json"
    command = [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               f"--infer-device={device}", f"--infer-report={report}", f"--infer-cache-dir={cache}",
               f"--rootdir={folder}"]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    (folder / "pytest.log").write_text(done.stdout + done.stderr)
    if not report.exists():
        print(f"length {length}: no report (pytest exit {done.returncode}); last lines:")
        print("\n".join((done.stdout + done.stderr).splitlines()[-15:]))
        return []
    rows = json.loads(report.read_text())["results"]
    print(f"length {length}: pytest exit {done.returncode} in {time.time() - started:.0f} s", flush=True)
    return [dict(row, length=length) for row in rows]


def table(rows: list[dict]) -> list[str]:
    head = ("tokens", "engine", "outcome", "rel err as built", "keep_fp32 found", "rel err repaired",
            "p50 ms built -> repaired", "lists built", "search s")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for row in sorted(rows, key=lambda r: (r["length"], r["spec_id"])):
        repair = row.get("repair") or {}
        if row["outcome"] == "skipped":
            lines.append(f"| {row['length']} | {row['spec_id']} | skipped: {row['message'][:80]} |" + " |" * 6)
            continue
        built_p50 = repair.get("failing_p50_ms")  # the same short plan as the repaired engine's (check/repair.py)
        keep = repair.get("keep_fp32")
        lines.append("| " + " | ".join([
            str(row["length"]), row["spec_id"], row["outcome"] + (f" ({row['stage']})" if row.get("stage") else ""),
            f"{repair['failing_rel_err']:.3g}" if repair else "-",
            (json.dumps(keep) + (" (verified)" if repair.get("passed") else " (best, fails)")) if keep else "-",
            f"{repair['rel_err']:.3g}" if repair.get("rel_err") is not None else "-",
            (f"{built_p50:.3f} -> {repair['p50_ms']:.3f} ({repair['p50_change']:+.0%})"
             if built_p50 and repair.get("p50_ms") else "-"),
            str(repair.get("tried", "-")), f"{repair['seconds']:.1f}" if repair else "-"]) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--lengths", default="512,1536", help="token counts, comma-separated (default 512,1536)")
    parser.add_argument("--engines", default="", help="engine ids, comma-separated (default: per device)")
    parser.add_argument("--cap", type=float, default=120.0, help="repair_time per engine, seconds")
    parser.add_argument("--out", type=Path, default=None, help="keep the work folder and write table.md there")
    args = parser.parse_args()
    engines = [e for e in args.engines.split(",") if e] or ENGINES[args.device]
    work = args.out or Path(tempfile.mkdtemp(prefix="infercheck-repair-"))
    cache = Path(tempfile.mkdtemp(prefix="infercheck-repair-cache-"))  # never under --out: engines are large
    rows: list[dict] = []
    for length in (int(x) for x in args.lengths.split(",")):
        rows += run(length, engines, args.device, args.cap, work, cache)
    lines = table(rows)
    print("\n".join(lines))
    (work / "table.md").write_text("\n".join(lines) + "\n")
    repaired = [r for r in rows if (r.get("repair") or {}).get("passed")]
    failed = [r for r in rows if r["outcome"] == "failed"]
    print(f"{len(failed)} engine(s) failed accuracy as built; {len(repaired)} repaired by a verified keep-list")
    return 0 if rows else 1


if __name__ == "__main__":
    raise SystemExit(main())

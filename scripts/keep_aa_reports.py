#!/usr/bin/env python3
"""Keep a GPU A/A call's reports in the repository, small enough to live there (tests/reference/README.md).

From the reports of `scripts/gpu_check.sh aa` (benchmarks/gate_aa.py), unpacked into SOURCE: the CUDA-graph
engines' results only; each one's latency samples reduced to the MAX_SAMPLES the gate compares
(`baseline.store.subsample`, rounded to 1 ns: CUDA events resolve 0.5 us); the eager reference's timings
and the run's own baseline comparison dropped; the counts and the content hash remade. The block medians,
the GPU kernel figures and the probes stay as measured, so `benchmarks/gate_aa.py --reports DEST` gives
the verdicts of the full reports for these engines.

    python scripts/keep_aa_reports.py SOURCE DEST
"""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def kept(report: dict) -> dict:
    from pytest_infercheck.baseline.store import subsample
    from pytest_infercheck.report.json_report import HASH_FIELD, content_hash

    results = []
    for result in report["results"]:
        if not result.get("cuda_graphs") or not result.get("latency"):
            continue
        latency = dict(result["latency"])
        latency["samples_ms"] = [round(value, 6) for value in subsample(latency["samples_ms"])]
        results.append({**result, "latency": latency, "reference_latency": None, "baseline": None})
    out = {**report, "results": results, "counts": dict(Counter(result["outcome"] for result in results))}
    out.pop(HASH_FIELD, None)
    out[HASH_FIELD] = content_hash(out)
    return out


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    source, dest = Path(sys.argv[1]), Path(sys.argv[2])
    dest.mkdir(parents=True, exist_ok=True)
    for report in sorted(source.glob("run*.json")):
        data = kept(json.loads(report.read_text()))
        (dest / report.name).write_text(json.dumps(data, separators=(",", ":")))
        print(f"{report.name}: {len(data['results'])} CUDA-graph results kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())

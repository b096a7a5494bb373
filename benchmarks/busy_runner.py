"""The demo on a busy CPU runner: green runs out of N, and p50/p90 per engine, before and after.

    python benchmarks/busy_runner.py --runs 10 --before bbdc546

Runs ``fixtures/demo`` N times with each source tree (``--before REV`` is extracted from git into a
temporary directory; "after" is this checkout) while ``--burners`` CPU-bound processes (default 2)
spin, alternating before/after so that the machine's other load weighs on both alike.  Each side
has its own engine cache, warmed by one unmeasured run, so builds do not count.  Prints, per side,
the green runs (exit code 0), the runs whose only failures are not latency failures, and per engine
the median p50 and the worst p90 over the runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def burn(stop: Any) -> None:
    """One core's worth of pure-Python work until told to stop."""
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x += 1


def extract(rev: str, into: Path) -> Path:
    """``rev``'s plugin and fixtures, from git, in ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pytest_infercheck", "fixtures"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def run_demo(source: Path, cache: Path, report: Path) -> dict[str, Any]:
    """One demo run from ``source``: exit code and the JSON report's results."""
    command = [sys.executable, "-m", "pytest", "fixtures/demo", "-p", "no:randomly", "-p", "no:cacheprovider", "-q",
               f"--infer-cache-dir={cache}", f"--infer-report={report}"]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=source, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(source)})
    results = json.loads(report.read_text())["results"] if report.exists() else []
    # The 1-minute load average at the end: what else ran besides the burners (a shared machine).
    return {"exit": done.returncode, "seconds": time.perf_counter() - started, "results": results,
            "load_1min": os.getloadavg()[0]}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    green = sum(run["exit"] == 0 for run in runs)
    no_latency_failure = sum(not any(r["outcome"] == "failed" and r.get("stage") == "latency" for r in run["results"])
                             for run in runs)
    rows: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for result in run["results"]:
            latency = result.get("latency") or {}
            if latency.get("p50_ms") is None:
                continue
            key = result["nodeid"].split("::", 1)[1]
            row = rows.setdefault(key, {"p50": [], "p90": []})
            row["p50"].append(latency["p50_ms"])
            row["p90"].append(latency["p90_ms"])
    return {"runs": len(runs), "green": green, "no_latency_failure": no_latency_failure,
            "rows": {key: {"p50_median": statistics.median(v["p50"]), "p90_worst": max(v["p90"])}
                     for key, v in sorted(rows.items())}}


def table(before: dict[str, Any], after: dict[str, Any]) -> str:
    lines = [f"green runs: before {before['green']}/{before['runs']}, after {after['green']}/{after['runs']}",
             f"runs without a latency failure: before {before['no_latency_failure']}/{before['runs']}, "
             f"after {after['no_latency_failure']}/{after['runs']}", "",
             "| item | before p50 ms (median) | before p90 ms (worst) | after p50 ms (median) | after p90 ms (worst) |",
             "|---|---|---|---|---|"]
    for key in sorted(set(before["rows"]) | set(after["rows"])):
        b, a = before["rows"].get(key, {}), after["rows"].get(key, {})
        cells = [f"{row[stat]:.3f}" if stat in row else "-" for row in (b, a) for stat in ("p50_median", "p90_worst")]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--before", default="HEAD~1", help="git revision of the 'before' plugin")
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes running meanwhile")
    parser.add_argument("--json", type=Path, help="write every run's figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="busy-runner-") as temp:
        work = Path(temp)
        sources = {"before": extract(args.before, (work / "before-src").resolve()), "after": ROOT}
        for label, source in sources.items():  # warm each side's engine cache: builds are not what we measure
            run_demo(source, work / f"cache-{label}", work / f"warm-{label}.json")
        stop = multiprocessing.Event()
        burners = [multiprocessing.Process(target=burn, args=(stop,), daemon=True) for _ in range(args.burners)]
        for process in burners:
            process.start()
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        try:
            for index in range(args.runs):
                for label, source in sources.items():
                    run = run_demo(source, work / f"cache-{label}", work / f"{label}-{index}.json")
                    runs[label].append(run)
                    print(f"run {index + 1}/{args.runs} {label}: exit {run['exit']} in {run['seconds']:.0f} s, "
                          f"load {run['load_1min']:.1f}", flush=True)
                    if args.json:  # after every run: a long benchmark cut short keeps what it measured
                        args.json.write_text(json.dumps({"runs": runs}))
        finally:
            stop.set()
            for process in burners:
                process.join(timeout=5)
    summary = {label: summarise(side) for label, side in runs.items()}
    print(table(summary["before"], summary["after"]))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

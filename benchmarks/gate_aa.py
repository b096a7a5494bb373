#!/usr/bin/env python3
"""Cross-process A/A for the latency gate: does it stay quiet when nothing changed, and catch a slowdown?

Runs benchmarks/gate_aa/test_aa_models.py (3 models the tests do not use; on CUDA 5 engines each,
CUDA-graph and launch-bound ones) with pytest in N separate processes sharing one engine cache
(run 1 compiles: cold; later runs load: warm), each writing --infer-report. The first --seed-runs (3)
are blessed into a baseline, whose history then measures the between-run noise; each later run is
gated against it as `infercheck gate` does (baseline/offline.gate_results: the one verdict), and
blessed in turn with --bless-each (what a main branch's CI does). Injected
slowdowns scale that run's samples, wall and GPU kernel time alike (+5% on CUDA-graph engines, +10% on
launch-bound ones, a sparse CUDA graph labelled launch-bound among them, and on CPU engines): the decision on real run-to-run noise, not new work inside the call
(benchmarks/gate_power.py does that within one process).  A launch-bound GPU engine (its kernels busy
the GPU under half its wall time: kernel_time.py) is judged on its kernel time, the others on wall time
corroborated by their kernel time (a wall change the kernels do not share is undecided; a slowdown the
noisy wall cannot decide is decided by the kernels), as the gate does (docs/gate.md, "Launch-bound
engines" and "Dense GPU engines").

    python benchmarks/gate_aa.py --runs 9                 # CPU, quiet: 3 blessed, 6 gated
    python benchmarks/gate_aa.py --runs 9 --burners 2     # CPU with two busy processes beside it
    python benchmarks/gate_aa.py --runs 9 --burners 2 --bursty   # ... that come and go, beside the gated runs
    python benchmarks/gate_aa.py --runs 9                 # on the GPU machine: CUDA engines
    python benchmarks/gate_aa.py --reports DIR --seed-runs 3   # judge a former call's reports again, here
    python benchmarks/gate_aa.py --reports DIR --rotations     # ... once per rotation of the blessed runs

Prints one table: per engine, its GPU busy fraction (median over the runs; "-" on the CPU) and what
the gate judged it on (wall or kernel time), A/A verdicts (regressed / undecided), what the wall-time
judgement alone would have said of the same A/A pairs, detections of the injected slowdowns, and
warm against cold on the figure the gate judges (kernel p50 for a launch-bound engine, else wall p50):
the cold run 1 over the median of the warm runs 2..N, beside the warm runs' own spread around that
median (the noise between processes that no cache state explains); "yes" when the cold run lies
within that spread or within the allowance.  The same ratio and spread on wall p50 follow: a warm load's
host cost (issue 25's precompiled engine) shows only there when the gate judges kernel time.  Last,
the cold/warm ratio of GPU kernel time per iteration: where a wall-judged CUDA graph's cold run differs
and its kernels' does not, the difference is the host's (the replay, the wait), not the kernels'.
"""

from __future__ import annotations

import argparse
import dataclasses
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
sys.path.insert(0, str(ROOT))
MODELS = ROOT / "benchmarks" / "gate_aa" / "test_aa_models.py"


def burn(stop_at: float, bursty: bool = False, seed: int = 0) -> None:
    """Keep a core busy until ``stop_at``; ``bursty``: busy for 0.1-0.6 s, idle for 0.1-0.6 s, at random, a
    neighbour whose load comes and goes around one engine's samples (0.1-1 s)."""
    import random

    rng = random.Random(seed)
    while time.time() < stop_at:
        busy_until = time.time() + (rng.uniform(0.1, 0.6) if bursty else 3600.0)
        while time.time() < min(busy_until, stop_at):
            sum(i * i for i in range(10_000))
        if bursty:
            time.sleep(rng.uniform(0.1, 0.6))


def slowed(result: Any) -> Any:
    """The result with the injected slowdown (+5% on CUDA-graph engines that are not launch-bound, +10% on the
    others): every wall and kernel-time figure of the run scaled, in a new record, as every record is frozen."""
    latency = result.latency
    if latency is None:
        return result
    factor = injected(result)
    kernel = latency.kernel
    if kernel is not None:
        kernel = dataclasses.replace(kernel, samples_ms=tuple(v * factor for v in kernel.samples_ms),
                                     block_medians_ms=tuple(v * factor for v in kernel.block_medians_ms),
                                     wall_p50_ms=kernel.wall_p50_ms * factor)
    return dataclasses.replace(result, latency=dataclasses.replace(
        latency, samples_ms=tuple(v * factor for v in latency.samples_ms),
        block_medians_ms=tuple(v * factor for v in latency.block_medians_ms), kernel=kernel))


def injected(result: Any) -> float:
    """The slowdown this engine gets: +5% where the wall time is the kernels' (a dense CUDA graph), +10% on a
    launch-bound engine (judged on its kernels, under --infer-kernel-tolerance) and on CPU engines."""
    kernel = result.latency.kernel if result.latency is not None else None
    return 1.05 if result.cuda_graphs and not (kernel is not None and kernel.launch_bound) else 1.10


def judged_figure(result: Any) -> float:
    """The p50 the gate judges: the kernel p50 of a launch-bound engine, else the wall p50."""
    kernel = result.latency.kernel
    return kernel.p50_ms if kernel is not None and kernel.launch_bound else result.latency.p50_ms


def one_run(index: int, work: Path, extra: list[str]) -> Path:
    report = work / f"run{index}.json"
    command = [sys.executable, "-m", "pytest", str(MODELS), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               "-n", "0", f"--infer-cache-dir={work / 'cache'}", f"--infer-report={report}", *extra]
    started = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    print(f"run {index}: exit {done.returncode} in {time.time() - started:.0f} s", flush=True)
    if not report.exists():
        print(done.stdout[-3000:], done.stderr[-2000:])
        raise SystemExit(f"run {index} wrote no report")
    return report


def kept_reports(folder: Path) -> list[Path]:
    """run1.json, run2.json, ... of a former call, in run order (run 1 the cold one)."""
    found = sorted(folder.glob("run*.json"), key=lambda path: int(path.stem[3:]) if path.stem[3:].isdigit() else 0)
    if len(found) < 2:
        raise SystemExit(f"--reports {folder}: no run1.json, run2.json, ... there")
    return found


def new_row(rows: dict[str, dict[str, list]], result: Any) -> dict[str, list]:
    return rows.setdefault(result.nodeid, {"aa": [], "slowed": [], "aa_wall": [], "slowed_wall": [],
                                           "busy": [], "judged_on": [], "graph": [result.cuda_graphs], "kernel": [],
                                           "injected": [], "figures": [], "wall": [], "probe": [], "gpu_probe": [], "why": []})


def judge(reports: list[Path], seed_runs: int, bless_each: bool, given: dict[str, Any],
          baseline: Path) -> dict[str, dict[str, list]]:
    """Bless the first ``seed_runs`` reports into ``baseline``, then gate each later one as measured (A/A) and
    with the injected slowdown, as `infercheck gate` does: the verdicts and figures per engine, by node id."""
    from pytest_infercheck.baseline.offline import gate_results
    from pytest_infercheck.baseline.store import BaselineStore, update_baseline
    from pytest_infercheck.report.saved import load_report

    for seed in reports[:seed_runs]:
        update_baseline(baseline, [r for r in load_report(seed).results if r.outcome == "passed"])
    rows: dict[str, dict[str, list]] = {}
    for report in reports:  # the judged figure of every run, run 1 (cold) first
        for result in load_report(report).results:
            if result.latency is not None:
                row = new_row(rows, result)
                row["figures"].append(judged_figure(result))
                row["wall"].append(result.latency.p50_ms)  # the wall p50 too: a warm load's host cost shows only there
                if result.latency.kernel is not None:  # and the kernels': a cold/warm gap there is not the host's
                    row["kernel"].append(result.latency.kernel.p50_ms)
                row["probe"].append(result.latency.probe_ms)
                kernel_fact = result.latency.kernel
                row["gpu_probe"].append(kernel_fact.device_probe_ms if kernel_fact is not None else None)
    for report in reports[seed_runs:]:
        results = load_report(report).results
        for scenario in ("aa", "slowed"):
            judged = [slowed(result) if scenario == "slowed" else result for result in results]
            outcome = gate_results(judged, BaselineStore.load(baseline), given, strict=False)
            for result in outcome.judged:
                comparison = result.baseline
                latency = comparison.judged if comparison else None
                row = new_row(rows, result)
                row[scenario].append(latency.verdict if latency else "none")
                if latency is not None and latency.why_undecided:
                    row["why"].append(f"{scenario} run {reports.index(report) + 1}: {latency.why_undecided}")
                row[f"{scenario}_wall"].append(comparison.latency.verdict if comparison and comparison.latency else "none")
                row["judged_on"].append(comparison.judged_on if comparison else "-")
                kernel = result.latency.kernel if result.latency is not None else None
                if scenario == "aa" and kernel is not None:
                    row["busy"].append(kernel.busy_fraction)
                if scenario == "slowed":
                    row["injected"].append(injected(result))
        if bless_each:
            update_baseline(baseline, [r for r in results if r.outcome == "passed"])
    return rows


def print_rotations(reports: list[Path], seed_runs: int, bless_each: bool, given: dict[str, Any], work: Path) -> int:
    """The same processes judged with each cyclic rotation of their order (runs k, k+1, ... blessed first): whether
    the detection and the false-alarm rate hold whichever runs happened to be blessed, not only the first ones."""
    print(f"{len(reports)} rotations of {len(reports)} processes, {seed_runs} blessed first, bless each: {bless_each}")
    print(f"{'blessed':>12} {'A/A false':>10} {'A/A und':>8} {'dense +5% caught':>17} {'others +10% caught':>19}")
    sums = [0, 0, 0, 0, 0, 0]
    for shift in range(len(reports)):
        order = reports[shift:] + reports[:shift]
        rows = judge(order, seed_runs, bless_each, given, work / f"baseline-rotation{shift + 1}.json")
        aa = [v for row in rows.values() for v in row["aa"]]
        slowed = [(v, f) for row in rows.values() for v, f in zip(row["slowed"], row["injected"])]
        dense = [v for v, f in slowed if f < 1.075]
        others = [v for v, f in slowed if f >= 1.075]
        figures = (aa.count("regression"), sum(v in ("undecided", "insufficient") for v in aa),
                   dense.count("regression"), others.count("regression"))
        blessed = ",".join(path.stem[3:] for path in order[:seed_runs])
        print(f"{blessed:>12} {figures[0]:>6}/{len(aa):<3} {figures[1]:>4}/{len(aa):<3} {figures[2]:>13}/{len(dense):<3} "
              f"{figures[3]:>15}/{len(others):<3}")
        for i, value in enumerate((*figures, len(dense), len(others))):
            sums[i] += value
    print(f"\nall rotations: A/A false regressions {sums[0]}, undecided {sums[1]}; dense CUDA graphs +5% caught "
          f"{sums[2]} of {sums[4]} ({sums[2] / max(sums[4], 1):.1%}); the others +10% caught {sums[3]} of {sums[5]}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--burners", type=int, default=0, help="busy processes running beside every run")
    parser.add_argument("--bursty", action="store_true",
                        help="the burners come and go (busy, then idle, 0.1-0.6 s each, at random) and start after "
                             "the blessed runs: quiet blessings, gated runs beside a bursty neighbour")
    parser.add_argument("--max-regression", default="3%")
    parser.add_argument("--seed-runs", type=int, default=3,
                        help="runs blessed into the baseline before any is gated (its history; 3 arms the noise model)")
    parser.add_argument("--bless-each", action="store_true", help="also bless each gated run that passed")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--reports", type=Path, default=None,
                        help="judge the run*.json reports a former call left in this folder (the tarball "
                             "`scripts/gpu_check.sh aa` brings back, unpacked) instead of running pytest: "
                             "the same table, on the same GPU processes, under this checkout's gate")
    parser.add_argument("--rotations", action="store_true",
                        help="judge the runs once per cyclic rotation of their order (each run blessed in turn): "
                             "does the table hold whichever runs were blessed")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()

    from pytest_infercheck.config.options import OPTIONS_BY_NAME

    if args.reports is not None:
        reports = kept_reports(args.reports)
        work = Path(tempfile.mkdtemp(prefix="gate-aa-judged-"))  # the baseline made here; the kept files stay as they are
    else:
        work = args.work or Path(tempfile.mkdtemp(prefix="gate-aa-"))
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()):  # a cache left there would make the "cold" run warm
            raise SystemExit(f"--work {work} is not empty: give an empty or new directory (its first run must be cold)")
        burners = [multiprocessing.Process(target=burn, args=(time.time() + 24 * 3600, args.bursty, index), daemon=True)
                   for index in range(args.burners)]
        reports = []
        try:
            for i in range(1, args.runs + 1):
                if i == (args.seed_runs + 1 if args.bursty else 1):
                    for process in burners:
                        process.start()
                reports.append(one_run(i, work, args.pytest_args))
        finally:
            for process in burners:
                if process.is_alive():
                    process.terminate()
    given = {"max_regression": OPTIONS_BY_NAME["max_regression"].parse(args.max_regression)}
    if args.rotations:
        return print_rotations(reports, args.seed_runs, args.bless_each, given, work)
    rows = judge(reports, args.seed_runs, args.bless_each, given, work / "baseline.json")

    print(f"\n{len(reports)} processes, {args.seed_runs} blessed first, allowance {args.max_regression}, "
          f"bless each: {args.bless_each}, "
          f"burners: {args.burners}{' (bursty, after the blessed runs)' if args.bursty else ''}; "
          f"reports in {args.reports or work}")
    print(f"{'engine':58} {'busy':>5} {'judged on':>9} {'A/A regr':>8} {'A/A und':>7} {'wall-only A/A regr':>18} "
          f"{'injected':>8} {'slowed caught':>13} {'slow und':>8} {'cold/warm':>9} {'warm spread':>12} {'cold within':>11} "
          f"{'wall cold/warm':>14} {'wall spread':>12} {'kernel cold/warm':>16}")
    allowance = given["max_regression"]
    totals = {"aa": 0, "aa_regr": 0, "aa_und": 0, "aa_wall_regr": 0, "slow": 0, "caught": 0, "slow_und": 0,
              "engines": 0, "cold_within": 0, "cold_inside": 0, "wall_inside": 0}
    for nodeid, row in sorted(rows.items()):
        aa, slow_verdicts = row["aa"], row["slowed"]
        regr, und = aa.count("regression"), sum(v in ("undecided", "insufficient") for v in aa)
        wall_regr = row["aa_wall"].count("regression")
        caught = slow_verdicts.count("regression")
        slow_und = sum(v in ("undecided", "insufficient") for v in slow_verdicts)
        cold_within, cold_ratio, spread = warm_against_cold(row["figures"], allowance)
        _, wall_ratio, wall_spread = warm_against_cold(row["wall"], allowance)
        kernel_ratio = warm_against_cold(row["kernel"], allowance)[1] if len(row["kernel"]) == len(row["wall"]) else "-"
        totals["engines"] += 1
        totals["cold_within"] += cold_within
        totals["cold_inside"] += inside(row["figures"])
        totals["wall_inside"] += inside(row["wall"])
        injected_by = "/".join(sorted({f"+{f - 1:.0%}" for f in row["injected"]})) or "-"
        busy = f"{statistics.median(row['busy']):.0%}" if row["busy"] else "-"
        judged_on = "/".join(sorted(set(row["judged_on"]))) or "-"
        name = nodeid.split("::")[-1] + (" (graph)" if row["graph"][0] else "")
        print(f"{name:58} {busy:>5} {judged_on:>9} {regr:>4}/{len(aa):<3} {und:>3}/{len(aa):<3} "
              f"{wall_regr:>14}/{len(aa):<3} {injected_by:>8} {caught:>7}/{len(slow_verdicts):<5} {slow_und:>4}/{len(slow_verdicts):<3} "
              f"{cold_ratio:>9} {spread:>12} {'yes' if cold_within else 'NO':>11} {wall_ratio:>14} {wall_spread:>12} "
              f"{kernel_ratio:>16}")
        totals["aa"] += len(aa)
        totals["aa_regr"] += regr
        totals["aa_und"] += und
        totals["aa_wall_regr"] += wall_regr
        totals["slow"] += len(slow_verdicts)
        totals["caught"] += caught
        totals["slow_und"] += slow_und
    print(f"\nA/A: {totals['aa_regr']} false regressions, {totals['aa_und']} undecided in {totals['aa']} comparisons "
          f"(wall time alone: {totals['aa_wall_regr']} false regressions); "
          f"injected slowdown: caught {totals['caught']} of {totals['slow']}, undecided {totals['slow_und']}; "
          f"cold within the warm runs' spread or the allowance: {totals['cold_within']} of {totals['engines']} engines "
          f"(inside the warm runs' range: {totals['cold_inside']} on the judged figure, {totals['wall_inside']} on wall p50)")
    print_runs(rows)
    (work / "summary.json").write_text(json.dumps({"rows": rows, "totals": totals}, default=str))
    return 0


def print_runs(rows: dict[str, dict[str, list]]) -> None:
    """Per engine that was undecided or missed a slowdown: every run's judged figure over run 1's, its wall and
    kernel p50, the machine probe and the GPU probe, and why the gate could not decide (the first reason of each kind), so
    that a log kept from the GPU machine says which run moved and whether the machine moved with it."""
    shown = False
    for nodeid, row in sorted(rows.items()):
        if not row["figures"] or not (row["why"] or row["slowed"].count("regression") < len(row["slowed"])):
            continue  # no latency in any run (nothing to show), or decided every time
        if not shown:
            print("\nper run (1 = cold; judged figure / run 1's, wall p50 ms, k: kernel p50 ms, p: machine probe ms, "
                  "g: GPU probe ms):")
            shown = True
        first = row["figures"][0]
        runs = []
        for index, figure in enumerate(row["figures"]):
            kernel = row["kernel"][index] if len(row["kernel"]) == len(row["figures"]) else None
            probe = row["probe"][index] if index < len(row["probe"]) else None
            gpu_probe = row["gpu_probe"][index] if index < len(row["gpu_probe"]) else None
            runs.append(f"{index + 1}: {figure / first:.3f} {row['wall'][index]:.4g}"
                        + (f" k{kernel:.4g}" if kernel else "") + (f" p{probe:.3g}" if probe else "")
                        + (f" g{gpu_probe:.4g}" if gpu_probe else ""))
        print(f"  {nodeid.split('::')[-1]}: " + "; ".join(runs))
        reasons: dict[str, str] = {}
        for why in row["why"]:
            reasons.setdefault(why.split(": ", 1)[1].split(" (")[0][:60], why)
        for why in reasons.values():
            print(f"    undecided, {why}")


def inside(figures: list[float]) -> bool:
    """The cold run (first) inside the warm runs' range: no allowance, the strict reading of "within noise"."""
    return len(figures) >= 3 and min(figures[1:]) <= figures[0] <= max(figures[1:])


def warm_against_cold(figures: list[float], allowance: float) -> tuple[bool, str, str]:
    """(cold within noise, "cold/warm", "warm spread") from the judged figure of run 1 (cold) and runs 2..N
    (warm): the cold run over the warm runs' median, and the warm runs' own range around that median."""
    if len(figures) < 3:
        return True, "-", "-"
    cold, warm = figures[0], figures[1:]
    middle = statistics.median(warm)
    low, high = min(warm) / middle, max(warm) / middle
    ratio = cold / middle
    within = inside(figures) or abs(ratio - 1.0) <= allowance
    return within, f"{ratio:.3f}", f"{low:.3f}..{high:.3f}"


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Warm equals cold (issue 25, item 1): the same engines' p50 built in the run (cold) and loaded from
the engine cache (warm), each in its own pytest process, side by side.

    python benchmarks/warm_cold.py --pairs 4                 # 4 fresh caches: a cold run, then a warm one
    python benchmarks/warm_cold.py --pairs 2 --warm-runs 2   # the issue's shape: cold, then two warm runs
    python benchmarks/warm_cold.py --unfixed                 # precompiled loads as before the fix (A/B)
    python benchmarks/warm_cold.py --pairs 2 -- -k convnext  # after --: pytest arguments (a subset)
    python benchmarks/warm_cold.py --calls                   # per-call host cost of the compiled functions

Runs (the default): benchmarks/warm_cold/test_warm_cold_models.py (launch-bound models; on CUDA also
ConvNeXt-tiny, with and without the plugin's CUDA graph) in separate processes, cold and warm
alternating so that the machine's load weighs on both alike.  Per engine: the median cold and warm
p50, warm/cold (median, and its range over the pairs), the control's range (the same test's eager
engine, which no cache touches: its warm/cold ratios are the noise between processes), whether the
median lies within it, whether every run took the same host path (the report's call_path), and the
CPU seconds child processes spent during its timed loops, cold/warm (Inductor's compile workers
starting up beside a timing show there; the per-run JSON lines have more), and on CUDA the warm/cold
ratio of GPU kernel time per iteration and the SM clock during the timed loops, cold/warm (nvidia-smi,
read only): where the wall time moves with the kernels at the same clock, the kernels differ; with the
clock, the GPU did.

--calls: one MLP at batch 1 (host overhead dominates; --device cuda: host time per call, without a
sync), per-call time (perf_counter, interleaved rounds, right after the load) of eager, plain
torch.compile, the precompiled function as compiled (what cold engines ran before the fix), loaded
back in the same process (what they run now) and loaded in a fresh process (what warm engines run),
with the guard check alone and each one's Python calls per call.
"""

from __future__ import annotations

import argparse
import json
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
MODELS = ROOT / "benchmarks" / "warm_cold" / "test_warm_cold_models.py"


def one_run(work: Path, cache: Path, name: str, extra: list[str], unfixed: bool) -> dict[str, Any]:
    report, probe = work / f"{name}.json", work / f"{name}.probe.jsonl"
    env = dict(os.environ, WARM_COLD_PROBE=str(probe), PYTHONPATH=str(ROOT), WARM_COLD_UNFIXED="1" if unfixed else "0")
    command = [sys.executable, "-m", "pytest", str(MODELS), "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
               "-n", "0", f"--infer-cache-dir={cache}", f"--infer-report={report}", *extra]
    started = time.time()
    with GpuClockLog(work / f"{name}.smi.csv") as clocks:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    print(f"{name}: exit {done.returncode} in {time.time() - started:.0f} s", flush=True)
    if not report.exists():
        print(done.stdout[-3000:], done.stderr[-2000:])
        raise SystemExit(f"{name} wrote no report")
    probes = {}
    if probe.exists():
        for line in probe.read_text().splitlines():
            record = json.loads(line)
            probes[record["nodeid"].split("::")[-1]] = record
    rows = {}
    for result in json.loads(report.read_text())["results"]:
        latency = result.get("latency") or {}
        item_probe = probes.get(result["nodeid"].split("::")[-1], {})
        rows[result["nodeid"]] = {"outcome": result["outcome"], "cache": result.get("cache") or {},
                                  "p50_ms": latency.get("p50_ms"),
                                  "kernel_p50_ms": (latency.get("kernel") or {}).get("p50_ms"),
                                  "sm_clock_mhz": clocks.mean_over(item_probe.get("timed_windows", [])),
                                  "path": result.get("call_path"), "probe": item_probe}
    return rows


class GpuClockLog:
    """nvidia-smi's SM clock every 100 ms while one run lasts (where nvidia-smi exists), so that a cold
    run's figures can be told apart from a GPU that ran at another clock: ``mean_over`` the item's timed
    windows (the probe's wall-clock times).  Reads the clock only: the machine's settings stay as they are."""

    def __init__(self, path: Path) -> None:
        self.path, self.process, self.samples = path, None, []

    def __enter__(self) -> "GpuClockLog":
        import shutil

        if shutil.which("nvidia-smi"):
            self.handle = open(self.path, "w", encoding="utf-8")
            # The GPU the runs use: the first of CUDA_VISIBLE_DEVICES when it names an index, else 0.
            first = os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0].strip()
            self.process = subprocess.Popen(["nvidia-smi", "-i", first if first.isdigit() else "0",
                                             "--query-gpu=timestamp,clocks.sm", "--format=csv,noheader,nounits",
                                             "-lms", "100"], stdout=self.handle, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait()
        self.handle.close()
        import datetime

        for line in self.path.read_text().splitlines():
            try:
                stamp, mhz = (part.strip() for part in line.split(","))
                when = datetime.datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S.%f").timestamp()
                self.samples.append((when, float(mhz)))
            except ValueError:
                continue

    def mean_over(self, windows: list[list[float]]) -> Any:
        inside = [mhz for when, mhz in self.samples if any(start <= when <= end for start, end in windows)]
        return round(statistics.mean(inside)) if inside else None


def pair_ratios(cold: list[dict[str, Any]], warm: list[list[dict[str, Any]]], nodeid: str,
                figure: str = "p50_ms") -> list[float]:
    """Each warm run's ``figure`` (wall p50, or kernel_p50_ms) over its own cold run's."""
    return [w[nodeid][figure] / run[nodeid][figure] for run, pair in zip(cold, warm) for w in pair
            if w[nodeid].get(figure) and run[nodeid].get(figure)]


def kernel_ratio(cold: list[dict[str, Any]], warm: list[list[dict[str, Any]]], nodeid: str) -> str:
    """The median of warm/cold GPU kernel time per iteration (the report's latency.kernel): where the wall
    ratio moves and this one does not, the host moved; where both move alike, the kernels or the clock did."""
    ratios = pair_ratios(cold, warm, nodeid, "kernel_p50_ms")
    return f"{statistics.median(ratios):.3f}" if ratios else "-"


def clock_pair(cold: list[dict[str, Any]], warm: list[list[dict[str, Any]]], nodeid: str) -> str:
    """The median SM clock during the item's timed loops, cold/warm (nvidia-smi, every 100 ms)."""
    cold_mhz = [run[nodeid]["sm_clock_mhz"] for run in cold if run[nodeid].get("sm_clock_mhz")]
    warm_mhz = [w[nodeid]["sm_clock_mhz"] for pair in warm for w in pair if w[nodeid].get("sm_clock_mhz")]
    return f"{statistics.median(cold_mhz):.0f}/{statistics.median(warm_mhz):.0f}" if cold_mhz and warm_mhz else "-"


def control_of(nodeid: str, rows: dict[str, Any]) -> Any:
    """The same test's eager engine: no cache touches it, so its warm/cold ratios are the noise
    between processes that the cached engines are judged against."""
    test = nodeid.split("[")[0]
    return next((other for other in rows if other.startswith(test + "[eager-") and rows[other]["p50_ms"]), None)


def runs(args: argparse.Namespace) -> int:
    work = args.work or Path(tempfile.mkdtemp(prefix="warm-cold-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):  # a cache left there would make the "cold" run warm
        raise SystemExit(f"--work {work} is not empty: give an empty or new directory (its first run must be cold)")
    cold: list[dict[str, Any]] = []
    warm: list[list[dict[str, Any]]] = []
    for pair in range(1, args.pairs + 1):
        cache = work / f"cache{pair}"
        cold.append(one_run(work, cache, f"cold{pair}", args.pytest_args, args.unfixed))
        warm.append([one_run(work, cache, f"warm{pair}.{k}", args.pytest_args, args.unfixed)
                     for k in range(1, args.warm_runs + 1)])
    (work / "summary.json").write_text(json.dumps({"cold": cold, "warm": warm}, default=str))
    print(f"\n{args.pairs} fresh caches x (1 cold + {args.warm_runs} warm) processes; "
          f"{'UNFIXED loads; ' if args.unfixed else ''}reports in {work}")
    table(cold, warm)
    return 0


def table(cold: list[dict[str, Any]], warm: list[list[dict[str, Any]]]) -> None:
    print(f"{'engine':46} {'cold p50':>9} {'warm p50':>9} {'warm/cold':>9} {'range':>11} {'control range':>13} "
          f"{'within':>6} {'same path':>9} {'children CPU s in timing':>24} {'kernel w/c':>10} {'SM MHz c/w':>11}")
    verdicts = []
    for nodeid, first in cold[0].items():
        if first["p50_ms"] is None:
            print(f"{nodeid.split('::')[-1]:46} {first['outcome']}")
            continue
        ratios = pair_ratios(cold, warm, nodeid)
        control = control_of(nodeid, cold[0])
        control_ratios = pair_ratios(cold, warm, control) if control else []
        ratio = statistics.median(ratios)
        if control is None or control == nodeid or "[eager-" in nodeid:  # no cache touches an eager engine
            within, noise = "ctrl", "-"
        else:
            within = "yes" if min(control_ratios) <= ratio <= max(control_ratios) else "NO"
            noise = f"{min(control_ratios):.2f}-{max(control_ratios):.2f}"
            verdicts.append(within == "yes")
        runs_of = [*cold, *(w for pair in warm for w in pair)]
        paths = {json.dumps(r[nodeid]["path"], sort_keys=True) for r in runs_of}
        child_cold = statistics.median(run[nodeid]["probe"].get("timing_children_cpu_s", 0.0) for run in cold)
        child_warm = statistics.median(w[nodeid]["probe"].get("timing_children_cpu_s", 0.0)
                                       for pair in warm for w in pair)
        hits = {w[nodeid]["cache"].get("inductor", "-") for pair in warm for w in pair}
        name = nodeid.split("::")[-1] + ("" if hits <= {"-", "hit"} else f" (warm cache: {'/'.join(sorted(hits))})")
        print(f"{name:46} {statistics.median(run[nodeid]['p50_ms'] for run in cold):9.4f} "
              f"{statistics.median(w[nodeid]['p50_ms'] for pair in warm for w in pair):9.4f} {ratio:9.3f} "
              f"{min(ratios):5.2f}-{max(ratios):<5.2f} {noise:>13} {within:>6} "
              f"{'yes' if len(paths) == 1 else 'NO':>9} {child_cold:10.1f}/{child_warm:<10.1f} "
              f"{kernel_ratio(cold, warm, nodeid):>10} {clock_pair(cold, warm, nodeid):>11}")
    print(f"\nwarm/cold within the control's range: {sum(verdicts)} of {len(verdicts)} cached engines")
    differences(cold[0], warm[0][0])


def differences(cold: dict[str, Any], warm: dict[str, Any]) -> None:
    """For the first cold and warm run: per engine, the host functions whose call counts differ in one
    call (where the digests differ), and the Triton kernels whose launcher or config differ
    (WARM_COLD_KERNELS=1: every kernel alive after the item, by name)."""
    for nodeid, first in cold.items():
        other = warm.get(nodeid)
        if other is None:
            continue
        rows_cold, rows_warm = first["probe"].get("path_rows", {}), other["probe"].get("path_rows", {})
        changed = {key: (rows_cold.get(key, 0), rows_warm.get(key, 0)) for key in {*rows_cold, *rows_warm}
                   if rows_cold.get(key, 0) != rows_warm.get(key, 0)}
        if changed:
            shown = ", ".join(f"{key} {c}->{w}" for key, (c, w) in sorted(changed.items())[:12])
            print(f"{nodeid.split('::')[-1]}: host calls cold->warm: {shown}")
        kernels_cold, kernels_warm = first["probe"].get("kernels", {}), other["probe"].get("kernels", {})
        both = sorted(set(kernels_cold) & set(kernels_warm))
        differ = [name for name in both if kernels_cold[name] != kernels_warm[name]]
        if kernels_cold or kernels_warm:
            print(f"{nodeid.split('::')[-1]}: kernels {len(kernels_cold)} cold, {len(kernels_warm)} warm, "
                  f"{len(both)} by the same name, {len(differ)} of them launched differently")
            for name in differ[:6]:
                print(f"    {name}: cold {kernels_cold[name]} | warm {kernels_warm[name]}")


# --- calls: the per-call host cost of the compiled functions themselves ---

def calls_worker(phase: str, entry: Path, rounds: int, per_round: int, device: str, unfixed: bool) -> None:
    import contextlib

    import torch

    from pytest_infercheck.measure import call_path
    from pytest_infercheck.backends import precompile
    from pytest_infercheck.model.inputs import as_model_inputs

    sys.path.insert(0, str(ROOT / "benchmarks" / "warm_cold"))
    from test_warm_cold_models import MLP  # noqa: E402

    if unfixed:
        precompile.without_compile_workers = contextlib.nullcontext  # type: ignore[assignment]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    module, x = MLP().eval().to(device), torch.randn(1, 256, device=device)
    variants: dict[str, Any] = {}
    if phase == "cold":
        fresh = precompile.precompile(module, as_model_inputs([x]), mode=None, dynamic=None)
        precompile.save(fresh, entry)
        variants["eager"] = module
        plain = torch.compile(MLP().eval().to(device))
        with torch.no_grad():
            plain(x)
        variants["torch.compile"] = plain
        variants["precompiled, as compiled"] = precompile.PrecompiledForward(fresh, module, plain)
        back = precompile.load(entry)  # what save() loaded back
        variants["precompiled, loaded back"] = precompile.PrecompiledForward(back, module, plain)
        variants["guard check alone"] = lambda a: back.guard_check(module, a)
    else:
        loaded = precompile.load(entry)
        variants["precompiled, loaded (fresh process)"] = precompile.PrecompiledForward(loaded, module, None)
        variants["guard check alone (loaded)"] = lambda a: loaded.guard_check(module, a)
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with torch.no_grad():
        for fn in variants.values():
            for _ in range(200):
                fn(x)
        for _ in range(rounds):  # interleaved, so that the machine's load weighs on each alike
            for name, fn in variants.items():
                for _ in range(per_round):
                    start = time.perf_counter()
                    fn(x)
                    samples[name].append(time.perf_counter() - start)
        paths = {name: call_path.measure(fn, lambda fn=fn: fn(x)) for name, fn in variants.items()}
    for name, values in samples.items():
        print(json.dumps({"variant": name, "p50_us": statistics.median(values) * 1e6,
                          "python_calls": paths[name].python_calls, "digest": paths[name].digest}), flush=True)


def calls(args: argparse.Namespace) -> int:
    work = args.work or Path(tempfile.mkdtemp(prefix="warm-cold-calls-"))
    print(f"MLP at batch 1 on {args.device}{', UNFIXED loads' if args.unfixed else ''}; {args.rounds} rounds x "
          f"{args.per_round} calls per variant, per process")
    print(f"{'variant':40} {'p50 us/call':>12} {'Python calls':>13} {'path digest':>17}")
    for repeat in range(args.pairs):
        entry = work / f"entry{repeat}"
        entry.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=str(work / f"inductor{repeat}"), PYTHONPATH=str(ROOT))
        for phase in ("cold", "warm"):
            done = subprocess.run([sys.executable, __file__, "calls-worker", phase, str(entry), str(args.rounds),
                                   str(args.per_round), args.device, "unfixed" if args.unfixed else "fixed"],
                                  capture_output=True, text=True, env=env, cwd=ROOT)
            if done.returncode:
                print(done.stdout[-2000:], done.stderr[-3000:])
                return 1
            for line in done.stdout.splitlines():
                if line.startswith("{"):
                    row = json.loads(line)
                    print(f"{row['variant']:40} {row['p50_us']:12.2f} {row['python_calls']:13d} {row['digest']:>17}")
        print()
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "calls-worker":
        calls_worker(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
                     sys.argv[7] == "unfixed")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", action="store_true", help="the per-call host cost of the compiled functions")
    parser.add_argument("--pairs", type=int, default=3, help="fresh caches, or repeats (--calls)")
    parser.add_argument("--warm-runs", type=int, default=1, help="warm processes after each cold one")
    parser.add_argument("--unfixed", action="store_true", help="precompiled loads as before the fix (the pool may start)")
    parser.add_argument("--rounds", type=int, default=20, help="--calls: interleaved rounds")
    parser.add_argument("--per-round", type=int, default=500, help="--calls: calls per variant per round")
    parser.add_argument("--device", default="cpu", help="--calls: cpu, or cuda (host time per call, no sync)")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--table", type=Path, default=None, help="print the table of an earlier run's summary.json")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args()
    if args.table:
        summary = json.loads(args.table.read_text())
        table(summary["cold"], summary["warm"])
        return 0
    return calls(args) if args.calls else runs(args)


if __name__ == "__main__":
    sys.exit(main())

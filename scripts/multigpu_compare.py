"""The GPU test matrix with 1 xdist worker and with 2, side by side (docs/multi-gpu.md).

    python scripts/multigpu_compare.py [--workers 1,2] [--warm] [--out DIR] [-- extra pytest args]

For each worker count, runs the matrix of tests/test_gpu_engines.py (MATRIX) as a pytest file with
``-n N --infer-device=cuda`` and its own fresh engine cache (``--warm``: one shared cache, filled by
a first untimed pass), then prints wall time, items and outcomes per run, and checks:

- every item's verdict (outcome and stage) is the same in every run;
- no two timed loops overlapped on one GPU (each loop's lock turn is logged through
  INFERCHECK_GPU_LOCK_LOG), and with several workers, the GPUs each run used (their UUIDs).

A run already in ``--out`` (its ``nN/run.json``) is read back, not run again: with ``--workers 1``
in one call and ``--workers 1,2`` in the next, each call stays within a 10-minute limit.

Exit status 0 when the verdicts agree and no loop overlapped, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

REPO = Path(__file__).resolve().parents[1]


def matrix_source() -> str:
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_gpu_engines import MATRIX
    finally:
        sys.path.remove(str(REPO / "tests"))
    return MATRIX


def verdicts(report: Path) -> dict[str, tuple[str, str]]:
    """``nodeid|spec_id`` -> (outcome, stage) of every item in a JSON report."""
    results = json.loads(report.read_text())["results"]
    return {f"{r['nodeid']}|{r['spec_id']}": (r["outcome"], r.get("stage") or "") for r in results}


def verdict_differences(runs: dict[int, dict[str, tuple[str, str]]]) -> list[str]:
    """One line per item whose verdict is not the same in every run (or that is missing from one)."""
    items = sorted(set().union(*runs.values())) if runs else []
    lines = []
    for item in items:
        seen = {workers: found.get(item, ("absent", "")) for workers, found in runs.items()}
        if len(set(seen.values())) > 1:
            lines.append(f"{item}: " + ", ".join(f"-n {n}: {'/'.join(v for v in verdict if v)}"
                                                 for n, verdict in seen.items()))
    return lines


def lock_turns(log: Path) -> list[tuple[str, int, float, float]]:
    """(GPU key, pid, start, end) of every timed loop, from the INFERCHECK_GPU_LOCK_LOG file."""
    if not log.exists():
        return []
    turns = []
    for line in log.read_text().splitlines():
        key, pid, start, end = line.split("\t")
        turns.append((key, int(pid), float(start), float(end)))
    return turns


def overlaps(turns: Iterable[tuple[str, int, float, float]]) -> list[str]:
    """Timed loops that ran at the same time on the same GPU: one line each (none if the lock held)."""
    by_gpu: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for key, pid, start, end in turns:
        by_gpu[key].append((start, end, pid))
    found = []
    for key, spans in by_gpu.items():
        spans.sort()
        for (start_a, end_a, pid_a), (start_b, end_b, pid_b) in zip(spans, spans[1:]):
            if start_b < end_a:
                found.append(f"{key}: pid {pid_a} [{start_a:.3f}, {end_a:.3f}] and pid {pid_b} "
                             f"[{start_b:.3f}, {end_b:.3f}]")
    return found


# Written beside the matrix in each run's directory: when each process was ready and when each item
# ran, so that the table can say which part of the wall time a second worker could not halve.
TIMELINE_CONFTEST = """
import atexit, inspect, os, time
import pytest

def _log(*fields):
    with open(os.environ["INFERCHECK_ITEM_LOG"], "a") as handle:
        handle.write("\\t".join([os.environ.get("PYTEST_XDIST_WORKER", "main"), *map(str, fields)]) + "\\n")

_log("ready", "", time.time(), time.time())

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    start = time.time()
    yield
    _log("item", item.nodeid, start, time.time())

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    start = time.time()
    yield
    _log("finish", "", start, time.time())

@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_unconfigure(config):
    start = time.time()
    yield
    _log("unconfigure", "", start, time.time())
    atexit.register(lambda: _log("exit-begins", "", time.time(), time.time()))  # the first atexit handler to run

atexit.register(lambda: _log("exit-handlers-done", "", time.time(), time.time()))  # the last one to run

def _timed(label, function):
    def _done(start):
        if time.time() - start >= 0.05:
            _log("hook", label, start, time.time())
    if inspect.isgeneratorfunction(function):  # a wrapper: its span holds the implementations inside it
        def timed(*args):
            start = time.time()
            try:
                return (yield from function(*args))
            finally:
                _done(start)
    else:
        def timed(*args):
            start = time.time()
            try:
                return function(*args)
            finally:
                _done(start)
    return timed

@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session):
    # Which plugin's implementation takes the seconds after the last item (every plugin is registered now).
    for name in ("pytest_sessionfinish", "pytest_terminal_summary", "pytest_unconfigure"):
        for impl in getattr(session.config.pluginmanager.hook, name).get_hookimpls():
            impl.function = _timed(f"{name}:{impl.plugin_name}", impl.function)

try:  # the controller's own reports, apart from the wait for its workers to exit
    import pytest_infercheck.plugin.session_files as _files
    _write = _files.write_outputs
    def _timed_write(*args, **kwargs):
        start = time.time()
        try:
            return _write(*args, **kwargs)
        finally:
            _log("write-outputs", "", start, time.time())
    _files.write_outputs = _timed_write
except ImportError:
    pass
"""


# What the timeline conftest logs besides items: spans (began, and the key for when they ended) and points.
SPANS = {"finish": "finished", "unconfigure": "unconfigured", "write-outputs": "written"}
POINTS = ("ready", "exit-begins", "exit-handlers-done")


def timeline(log: Path, started: float) -> dict[str, dict[str, float]]:
    """Per process: seconds from the run's start until it was ready, until its first item began and
    its last ended, and the seconds its items took (from the INFERCHECK_ITEM_LOG lines)."""
    processes: dict[str, dict[str, float]] = {}
    if not log.exists():
        return processes
    for line in log.read_text().splitlines():
        worker, kind, _, start, end = line.split("\t")
        facts = processes.setdefault(worker, {"ready": float("nan"), "first": float("inf"), "last": 0.0, "busy": 0.0})
        if kind in SPANS:  # e.g. finish -> "finish" (began) and "finished" (ended)
            facts[kind] = float(start) - started
            facts[SPANS[kind]] = float(end) - started
        elif kind in POINTS:
            facts[kind] = float(start) - started
        elif kind == "item":
            facts["first"] = min(facts["first"], float(start) - started)
            facts["last"] = max(facts["last"], float(end) - started)
            facts["busy"] += float(end) - float(start)
    return processes


def slow_hooks(log: Path) -> list[str]:
    """The hook implementations (sessionfinish, terminal summary, unconfigure) that took 0.05 s or more."""
    if not log.exists():
        return []
    return [f"{worker} {name}: {float(end) - float(start):.2f} s"
            for worker, kind, name, start, end in (line.split("\t") for line in log.read_text().splitlines())
            if kind == "hook"]


def run_matrix(workers: int, where: Path, cache: Path, extra: Sequence[str], source: str) -> dict[str, Any]:
    """One run of the test file ``source`` with ``workers`` xdist workers; its wall time, verdicts and lock turns."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "test_matrix.py").write_text(source)
    (where / "conftest.py").write_text(TIMELINE_CONFTEST)
    report, log, items = where / "report.json", where / "locks.tsv", where / "items.tsv"
    log.unlink(missing_ok=True)
    items.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "INFERCHECK_GPU_LOCK_LOG": str(log), "INFERCHECK_ITEM_LOG": str(items)}
    command = [sys.executable, "-m", "pytest", "-p", "xdist", "-n", str(workers), "-p", "no:randomly", "-q",
               "--infer-device=cuda", f"--infer-report={report}", f"--infer-cache-dir={cache}",
               "--infer-build-timeout=240", *extra, "test_matrix.py"]
    start, started = time.perf_counter(), time.time()
    completed = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (where / "pytest.log").write_text(completed.stdout + completed.stderr)
    if not report.exists():
        raise SystemExit(f"-n {workers}: no report (exit {completed.returncode}); see {where / 'pytest.log'}")
    results = json.loads(report.read_text())["results"]
    facts = {"workers": workers, "wall_s": wall, "exit": completed.returncode,
             "gpus": sorted({(r.get("gpu") or {}).get("uuid") for r in results if r.get("gpu")}),
             "timeline": timeline(items, started), "slow_hooks": slow_hooks(items)}
    (where / "run.json").write_text(json.dumps(facts))
    return load_run(where)


def load_run(where: Path) -> dict[str, Any]:
    """A finished run read back: a later call (the device tool allows 10 minutes a call) resumes from it."""
    facts = json.loads((where / "run.json").read_text())
    return {**facts, "verdicts": verdicts(where / "report.json"), "turns": lock_turns(where / "locks.tsv")}


def table(runs: Sequence[dict[str, Any]]) -> list[str]:
    first = runs[0]["wall_s"]
    lines = ["| workers | wall s | x vs first | items | passed | failed | skipped | GPUs used | timed loops |",
             "|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        outcomes = [verdict[0] for verdict in run["verdicts"].values()]
        lines.append(f"| {run['workers']} | {run['wall_s']:.1f} | {first / run['wall_s']:.2f} | {len(outcomes)} | "
                     f"{outcomes.count('passed')} | {outcomes.count('failed')} | {outcomes.count('skipped')} | "
                     f"{len(run['gpus'])} | {len(run['turns'])} |")
    lines += ["", "Per process (seconds from the run's start): ready = pytest and the plugin loaded, first/last = its "
              "first item's start and last item's end, busy = the seconds its items took, session end = when its "
              "pytest_sessionfinish began and ended (main: after every worker is gone), unconfigured = its "
              "pytest_unconfigure ended, exit = its atexit handlers began and ended (a worker's are reached once "
              "the controller lets it go), reports = the controller writing the plugin's reports.", "",
              "| workers | process | ready | first item | last item ends | busy | session end | unconfigured | exit "
              "| reports |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in runs:
        for worker, facts in sorted(run.get("timeline", {}).items()):
            items = (f"{facts['first']:.1f} | {facts['last']:.1f} | {facts['busy']:.1f}" if facts["busy"]
                     else "- | - | -")
            ended = f"{facts['finish']:.1f}-{facts['finished']:.1f}" if "finish" in facts else "-"
            unconfigured = f"{facts['unconfigured']:.1f}" if "unconfigured" in facts else "-"
            exits = (f"{facts['exit-begins']:.1f}-{facts['exit-handlers-done']:.1f}"
                     if "exit-begins" in facts and "exit-handlers-done" in facts else "-")
            reports = f"{facts['write-outputs']:.1f}-{facts['written']:.1f}" if "write-outputs" in facts else "-"
            lines.append(f"| {run['workers']} | {worker} | {facts['ready']:.1f} | {items} | {ended} | {unconfigured} "
                         f"| {exits} | {reports} |")
    return lines


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--warm", action="store_true", help="share one engine cache, filled by an untimed pass")
    parser.add_argument("--out", type=Path, default=None,
                        help="where each run's report, log and lock turns go; a run found there is not run again")
    parser.add_argument("--source", type=Path, default=None,
                        help="a pytest file to run instead of tests/test_gpu_engines.py's MATRIX")
    parser.add_argument("extra", nargs="*", help="more pytest arguments, after --")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",")]
    out = args.out or Path(tempfile.mkdtemp(prefix="multigpu-"))
    source = args.source.read_text() if args.source else matrix_source()
    if args.warm and not (out / "prime" / "run.json").exists():
        run_matrix(max(counts), out / "prime", out / "cache", args.extra, source)
    runs = [load_run(out / f"n{n}") if (out / f"n{n}" / "run.json").exists() else
            run_matrix(n, out / f"n{n}", out / ("cache" if args.warm else f"cache-n{n}"), args.extra, source)
            for n in counts]
    print("\n".join(table(runs)))
    for run in runs:
        if run.get("slow_hooks"):
            print(f"-n {run['workers']}, hook implementations of 0.05 s or more: " + "; ".join(run["slow_hooks"]))
    different = verdict_differences({run["workers"]: run["verdicts"] for run in runs})
    overlapping = [line for run in runs for line in overlaps(run["turns"])]
    print(f"verdicts identical: {'yes' if not different else 'NO'}; timed loops overlapping on one GPU: "
          f"{len(overlapping)}; GPUs per run: " + ", ".join(f"-n {r['workers']}: {', '.join(r['gpus'])}" for r in runs))
    for line in different + overlapping:
        print("  " + line)
    print(f"logs and reports: {out}")
    return 1 if different or overlapping else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Saved reports and baselines from the second hostile attack on issue 23: numbers and keys that
Python's JSON parser reads but no report holds, impossible latency figures with a recomputed hash,
baseline paths that are neither a file nor missing, and a baseline that cannot be written.

Each was a traceback (exit 1, the gate's "regressed"), a silent pass, or a baseline read as empty;
each is now one line and exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from test_gate_cli import _refused_by_every_command, blessed, infercheck, rehashed

# clean_report (conftest.py): saved_reports.CLEAN's report, as in test_gate_cli.py.


@pytest.mark.parametrize("edit, message", [
    # 1e999 reads as inf with no NaN/Infinity token; the hash check then raised ValueError (traceback)
    (lambda text: text.replace('"results": [', '"big": 1e999, "results": [', 1), "too large for a float"),
    (lambda text: text.replace('"results": [', '"big": ' + "9" * 5000 + ', "results": [', 1), "5000 digits"),
    # a key given twice: Python keeps the last ("passed"), other readers the first ("failed")
    (lambda text: text.replace('"outcome": "passed"', '"outcome": "failed", "outcome": "passed"', 1),
     "'outcome' twice"),
])
def test_json_no_report_holds_is_refused_with_exit_2(clean_report: Path, tmp_path: Path,
                                                     edit: Callable[[str], str], message: str) -> None:
    bad = tmp_path / "report.json"
    bad.write_text(edit(clean_report.read_text()))
    _refused_by_every_command(bad, tmp_path, message)


def _latency(data: dict[str, Any]) -> dict[str, Any]:
    return next(result["latency"] for result in data["results"] if result.get("latency"))


@pytest.mark.parametrize("damage, message, entry_message", [
    (lambda latency: latency.update(samples_ms=[-1.0] * len(latency["samples_ms"])), "samples_ms[0] is -1.0",
     "latency.samples_ms[0] is -1.0, expected a positive number"),
    # The typed percentiles (the flat p50_ms beside them is a copy for JSON readers, not read back).
    (lambda latency: latency["percentiles_ms"].update(p50="nan"), "p50_ms is nan",
     "latency.p50_ms is nan, expected a positive number"),
    (lambda latency: latency["percentiles_ms"].update(p99="inf"), "p99_ms is inf",
     "latency.p99_ms is inf, expected a positive number"),
])
def test_latency_no_timer_measures_is_refused_with_exit_2(clean_report: Path, tmp_path: Path,
                                                          damage: Callable[[dict], None], message: str,
                                                          entry_message: str) -> None:
    """With the hash recomputed, negative samples passed the gate (exit 0) and crashed `report --html`'s
    histogram; a NaN p50 was blessed into the baseline as the token NaN, which no later run could read.
    The gate and `report` refuse the report; `baseline update` refuses the entry, naming it."""
    data = json.loads(clean_report.read_text())
    damage(_latency(data))
    bad = tmp_path / "report.json"
    bad.write_text(rehashed(data))
    baseline = tmp_path / "b.json"
    for command in (["gate", bad, "--baseline", baseline], ["report", bad, "--html", tmp_path / "r.html"]):
        run = infercheck(*command)
        assert run.returncode == 2, run.stdout + run.stderr
        [line] = run.stderr.splitlines()
        assert line.startswith(f"infercheck {command[0]}: error: report {bad}: ") and message in line, line
    run = infercheck("baseline", "update", bad, "--baseline", baseline)
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert f"baseline file {baseline}: not updated: " in line and entry_message in line, line
    assert not baseline.exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("make", ["loop", "below a file"])
def test_a_baseline_path_that_cannot_exist_is_refused_not_read_as_empty(clean_report: Path, tmp_path: Path,
                                                                       make: str) -> None:
    """Path.exists() is False for a symlink loop and for a path below a file: the gate read such a baseline
    as missing and passed every result ("no entry"); the update raised OSError (a traceback)."""
    baseline = tmp_path / "baseline.json"
    if make == "loop":
        os.symlink(baseline, baseline)
    else:
        (tmp_path / "file").write_text("x")
        baseline = tmp_path / "file" / "baseline.json"
    for command in (["gate", clean_report, "--baseline", baseline], ["baseline", "update", clean_report, "--baseline", baseline]):
        run = infercheck(*command)
        assert run.returncode == 2, run.stdout + run.stderr
        [line] = run.stderr.splitlines()
        assert str(baseline) in line and ("cannot be read" in line or "is not a directory" in line), line


def test_a_baseline_that_cannot_be_replaced_is_one_line_and_exit_2(clean_report: Path, tmp_path: Path) -> None:
    """An immutable baseline file in a writable directory (checked writable at start-up, so the update
    runs): the rename over it fails, and that OSError was a traceback from `baseline update`. The
    session already made the same failure one line."""
    baseline = blessed(clean_report, tmp_path)
    before = baseline.read_bytes()
    made = subprocess.run(["chattr", "+i", str(baseline)], capture_output=True, text=True) \
        if shutil.which("chattr") else None
    if made is None or made.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {made.stderr.strip() if made else 'no chattr'}")
    try:
        run = infercheck("baseline", "update", clean_report, "--baseline", baseline)
    finally:
        subprocess.run(["chattr", "-i", str(baseline)], check=True)
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert f"baseline file {baseline}: not updated: it cannot be written" in line, line
    assert baseline.read_bytes() == before


@pytest.mark.parametrize("setting, value, source, message", [
    # A recorded percentage is a fraction (the 100000% of a valid run is 1000.0, taken as recorded); one below
    # zero was passed through and crashed in log1p (traceback, exit 1: read by CI as "regressed").
    ("max_regression", -1, "command line", "must not be negative"),
    ("kernel_tolerance", -0.5, "default", "must not be negative"),
    # A test's own (marker) values are not overridden by the gate's options: a factor under 1 failed an
    # unchanged engine ("x1; allowed x0.5").
    ("accuracy_factor", 0.5, "marker", "must be at least 1"),
    ("accuracy_floor", -1, "marker", "must not be negative"),
])
def test_a_recorded_setting_no_run_records_is_refused_with_exit_2(clean_report: Path, tmp_path: Path, setting: str,
                                                                  value: float, source: str, message: str) -> None:
    baseline = blessed(clean_report, tmp_path)
    data = json.loads(clean_report.read_text())
    for result in data["results"]:
        result["settings"][setting] = {"value": value, "source": source}
    bad = tmp_path / "report.json"
    bad.write_text(rehashed(data))
    run = infercheck("gate", bad, "--baseline", baseline)
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert f"recorded setting {setting}: " in line and message in line, line

"""`infercheck gate`, `baseline update` and `report` as a CI job runs them, on reports that real pytest
runs of the plugin wrote in subprocesses (the GPU job's side, here on the CPU).

Each command runs as a real `python -m pytest_infercheck` process in a few tests (blessing then gating,
`report`, the gate without torch, a FIFO that would block); the others run the CLI's ``main`` in this
process (cli_runner.py), without an interpreter start-up each.

Regressions are made by editing the *baseline* (samples 100x faster, error figures near zero), never
by timing: the report's own figures stay what the run measured, and a 100x shift is far beyond any
noise of a busy machine, so each verdict holds however loaded the machine is.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import pytest

from cli_runner import Run, in_process, in_subprocess
from saved_reports import CLEAN, write_report
from pytest_infercheck.baseline.store import write_entries

# clean_report and failing_report (conftest.py): saved_reports.CLEAN's and FAILING's reports, one run each.


def infercheck(*args: object, run: Callable[..., "Run[str]"] = in_process) -> "Run[str]":
    """``infercheck ARGS`` (in this process, by default); never a traceback."""
    done = run(*args)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def blessed(report: Path, tmp_path: Path) -> Path:
    baseline = tmp_path / "ci" / "baseline.json"
    run = infercheck("baseline", "update", report, "--baseline", baseline)
    assert run.returncode == 0, run.stderr
    return baseline


def edit_entries(baseline: Path, change: Callable[[dict], None]) -> None:
    data = json.loads(baseline.read_text())
    for entry in data["entries"]:
        change(entry)
    baseline.write_text(json.dumps(data))


def faster(entry: dict) -> None:
    """The baseline as if the engine had been 100 times faster in its last three blessed runs (the
    gate fails on latency only once the history has measured the between-run noise)."""
    latency = entry["latency"]
    latency["samples_ms"] = [value / 100 for value in latency["samples_ms"]]
    latency["block_medians_ms"] = [value / 100 for value in latency.get("block_medians_ms", [])]
    for name in ("p50_ms", "p90_ms", "p99_ms"):
        latency[name] /= 100
    entry["history"] = [{"p50_ms": latency["p50_ms"] * factor, "probe_ms": latency.get("probe_ms")}
                        for factor in (1.0, 1.01, 0.99)]


def test_bless_then_gate_passes_and_writes_every_report(clean_report: Path, tmp_path: Path) -> None:
    """Real processes, as the CI job runs the two commands."""
    baseline = tmp_path / "ci" / "baseline.json"
    update = infercheck("baseline", "update", clean_report, "--baseline", baseline, run=in_subprocess)
    assert update.returncode == 0, update.stderr
    assert "baseline updated: 2 entries written, 0 kept, 1 not written" in update.stdout
    assert "not written: test_model.py::test_cnn[eager-int8]: skipped" in update.stdout
    out = tmp_path / "out"
    gate = infercheck("gate", clean_report, "--baseline", baseline, "--markdown", out / "gate.md",
                      "--html", out / "gate.html", "--junitxml", out / "junit.xml", run=in_subprocess)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert f"baseline {baseline}: 2 compared, 0 regressed, 0 improved, 0 missing, 0 not applied" in gate.stdout
    assert "test_model.py::test_cnn[eager-int8]: skipped in the run: " in gate.stdout  # said, not compared
    assert gate.stdout.rstrip().endswith("gate passed: nothing regressed (2 of 3 results compared with an entry)")
    markdown = (out / "gate.md").read_text()
    assert "| vs baseline |" in markdown and "REGRESSION" not in markdown
    assert "`test_model.py::test_cnn[eager-int8]`: skipped in the run" in markdown
    cases = ET.parse(out / "junit.xml").getroot().findall("testsuite/testcase")
    assert len(cases) == 3 and not any(case.find("failure") is not None for case in cases)
    statuses = {p.get("name"): p.get("value") for case in cases for p in case.iter("property")}
    assert statuses["infercheck.onnxruntime-fp32.baseline.status"] == "found"
    # The environment shown is the report's (the machine that measured), not the gate's.
    recorded_cpu = json.loads(clean_report.read_text())["environment"]["cpu"]
    assert recorded_cpu in (out / "gate.html").read_text()


def test_a_latency_regression_exits_1_and_every_report_says_so(clean_report: Path, tmp_path: Path) -> None:
    baseline = blessed(clean_report, tmp_path)
    edit_entries(baseline, faster)
    markdown, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    gate = infercheck("gate", clean_report, "--baseline", baseline, "--markdown", markdown, "--junitxml", junit)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "2 compared, 2 regressed" in gate.stdout
    assert "REGRESSION test_model.py::test_cnn[onnxruntime-fp32]: latency p50 " in gate.stdout
    assert gate.stdout.rstrip().endswith("gate FAILED: 2 regressed")
    assert "**REGRESSION latency" in markdown.read_text()
    failures = [case.find("failure") for case in ET.parse(junit).getroot().iter("testcase")]
    assert sum(f is not None for f in failures) == 2
    assert all(f.get("message").startswith("regression: latency p50 ") for f in failures if f is not None)
    # The allowance is the gate's to set: at +100000% the same slowdown passes.
    assert infercheck("gate", clean_report, "--baseline", baseline, "--max-regression", "100000%").returncode == 0


def test_an_accuracy_regression_exits_1(clean_report: Path, tmp_path: Path) -> None:
    report = json.loads(clean_report.read_text())
    [ort] = [r for r in report["results"] if r["spec_id"] == "onnxruntime-fp32"]
    assert ort["accuracy"]["outputs"][0]["max_abs"] > 0  # ONNX Runtime is not bit-exact with eager here
    baseline = blessed(clean_report, tmp_path)

    def near_zero_error(entry: dict) -> None:
        entry["accuracy"]["output"] = {"max_abs": 1e-12, "mean_abs": 1e-13}

    edit_entries(baseline, near_zero_error)
    # Below the default floor (1e-5) an error figure never counts: still green.
    assert infercheck("gate", clean_report, "--baseline", baseline).returncode == 0
    gate = infercheck("gate", clean_report, "--baseline", baseline, "--accuracy-floor", "0")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "REGRESSION test_model.py::test_cnn[onnxruntime-fp32]: accuracy output max_abs 1e-12 -> " in gate.stdout
    assert "REGRESSION test_model.py::test_cnn[eager-fp32]" not in gate.stdout  # eager's error is exactly 0


def test_an_entry_of_another_machine_is_not_applied_and_the_output_says_so(clean_report: Path, tmp_path: Path) -> None:
    baseline = blessed(clean_report, tmp_path)

    def other_machine(entry: dict) -> None:
        faster(entry)  # would be a regression if it were compared
        entry["machine"]["libraries"]["torch"] = "1.0.0"

    edit_entries(baseline, other_machine)
    markdown = tmp_path / "gate.md"
    gate = infercheck("gate", clean_report, "--baseline", baseline, "--markdown", markdown)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "0 compared, 0 regressed, 0 improved, 0 missing, 2 not applied (other machine)" in gate.stdout
    assert "FINGERPRINT DIFFERS: 2 entries were recorded on another machine or software stack and NOT applied" \
        in gate.stdout
    assert "test_model.py::test_cnn[eager-fp32]: torch 1.0.0 -> " in gate.stdout
    assert "was recorded on another machine or software stack (torch 1.0.0 -&gt; " in markdown.read_text()
    strict = infercheck("gate", clean_report, "--baseline", baseline, "--strict")
    assert strict.returncode == 1 and strict.stdout.rstrip().endswith("gate FAILED: 2 not compared (--strict)")


def test_a_missing_baseline_file_is_a_usage_error_not_a_green_gate(clean_report: Path, tmp_path: Path) -> None:
    """Before, a path that did not exist was an empty baseline and the gate passed ("0 compared ... 2 missing"):
    a typo in CI's path passed every later gate while comparing nothing (found by a newcomer trial)."""
    baseline = tmp_path / "absent.json"
    for extra in ((), ("--strict",)):
        gate = infercheck("gate", clean_report, "--baseline", baseline, *extra)
        assert gate.returncode == 2, gate.stdout + gate.stderr
        assert gate.stderr.strip() == (f"infercheck gate: error: --baseline {baseline} does not exist: there is nothing to "
                                       f"gate against; check the path, or make it once from a run you trust: "
                                       f"infercheck baseline update REPORT.json --baseline {baseline}")
    assert not baseline.exists()  # the gate never writes the baseline


def _edited(data: dict) -> None:
    data["results"][0]["latency"]["p50_ms"] /= 2  # a hand "fix" of a figure


def _older(data: dict) -> None:
    data["schema"] = 1
    for key in ("format", "plugin_version", "machines", "content_hash"):
        data.pop(key)


@pytest.mark.parametrize("damage, message", [
    (lambda text: text[: len(text) // 2], "not valid JSON (it ends early: truncated?)"),
    (lambda text: "", "not valid JSON (it ends early: truncated?)"),
    (lambda text: json.dumps(dict(json.loads(text), results=[])), "does not match its content hash"),
    ("edited", "its content does not match its content hash: the file was changed after pytest wrote it"),
    ("older", "schema 1, written by pytest-infercheck "),
    (lambda text: json.dumps({**json.loads(text), "schema": 99}), "schema 99, written by pytest-infercheck "),
    (lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "content_hash"}),
     "has no content hash"),
    (lambda text: "[]", "not a pytest-infercheck report"),
])
def test_a_damaged_report_is_refused_with_exit_2(clean_report: Path, tmp_path: Path, damage, message: str) -> None:
    text = clean_report.read_text()
    if damage in ("edited", "older"):
        data = json.loads(text)
        (_edited if damage == "edited" else _older)(data)
        text = json.dumps(data)
    else:
        text = damage(text)
    broken = tmp_path / "report.json"
    broken.write_text(text)
    for command in (["gate", broken, "--baseline", tmp_path / "b.json"], ["baseline", "update", broken, "--baseline",
                    tmp_path / "b.json"], ["report", broken, "--markdown", tmp_path / "r.md"]):
        run = infercheck(*command)
        assert run.returncode == 2, run.stdout + run.stderr
        [line] = run.stderr.splitlines()
        assert line.startswith(f"infercheck {command[0]}") and f"report {broken}: " in line and message in line
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "r.md").exists()


def test_a_report_cut_anywhere_reads_as_cut_short_and_other_damage_does_not() -> None:
    """The half-length cut above once fell inside ``true`` or an exponent, where the parser stops at
    the token's start rather than at the end: that read as plain invalid JSON (a fresh-clone CI run)."""
    from pytest_infercheck.report.saved import ends_early

    whole = json.dumps({"schema": 2, "results": [{"p50_ms": -1.5e-3, "ok": True, "gpu": None, "n": 120,
                                                  "id": "eager-fp32", "rows": [[0.25, False]]}]}, indent=1)
    for cut in range(1, len(whole)):
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(whole[:cut])
        assert ends_early(whole[:cut], caught.value), repr(whole[:cut][-20:])
    for damaged in (whole + " trailing", whole.replace("true", "tru"), whole.replace(":", "", 1)):
        with pytest.raises(json.JSONDecodeError) as caught:
            json.loads(damaged)
        assert not ends_early(damaged, caught.value), damaged


def test_the_hash_is_over_the_content_not_the_layout(clean_report: Path, tmp_path: Path) -> None:
    relaid = tmp_path / "report.json"
    relaid.write_text(json.dumps(json.loads(clean_report.read_text()), indent=4, sort_keys=True))
    write_entries(tmp_path / "b.json", [])  # an empty baseline: every result missing, the gate passes
    assert infercheck("gate", relaid, "--baseline", tmp_path / "b.json").returncode == 0


def test_a_result_that_failed_in_the_run_fails_the_gate_and_is_not_blessed(failing_report: Path,
                                                                            tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.json"
    update = infercheck("baseline", "update", failing_report, "--baseline", baseline)
    assert update.returncode == 0
    assert ("not written: test_model.py::test_exact[onnxruntime-fp32]: failed (accuracy); a failing engine is not "
            "written into the baseline") in update.stdout
    markdown = tmp_path / "gate.md"
    gate = infercheck("gate", failing_report, "--baseline", baseline, "--markdown", markdown)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "2 compared, 0 regressed" in gate.stdout
    assert "test_model.py::test_exact[onnxruntime-fp32]: failed in the run (accuracy: output 'output'" in gate.stdout
    assert gate.stdout.rstrip().endswith("gate FAILED: 1 failed in the run")
    assert "`test_model.py::test_exact[onnxruntime-fp32]`: failed in the run (accuracy" in markdown.read_text()


def test_report_renders_a_saved_report(clean_report: Path, tmp_path: Path) -> None:
    """A real process."""
    run = infercheck("report", clean_report, "--markdown", tmp_path / "r.md", "--html", tmp_path / "r.html",
                     run=in_subprocess)
    assert run.returncode == 0, run.stderr
    assert [line.split()[:2] for line in run.stdout.splitlines() if "passed" in line] == [
        ["test_model.py::test_cnn", "eager-fp32"], ["test_model.py::test_cnn", "onnxruntime-fp32"]]
    assert (tmp_path / "r.md").read_text().startswith("## infercheck: 2 passed, 1 skipped")
    assert "<h2>Environment</h2>" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--max-regression", "5"], "argument --max-regression: '5' would mean 500%; write 5% (or 0.05)"),
    (["--accuracy-factor", "nan"], "argument --accuracy-factor: 'nan' is not a finite number"),
    (["--accuracy-floor", "-1"], "argument --accuracy-floor: '-1' must not be negative"),
])
def test_bad_options_are_refused_by_the_session_parsers(clean_report: Path, tmp_path: Path, args, message) -> None:
    run = infercheck("gate", clean_report, "--baseline", tmp_path / "b.json", *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_outputs_that_would_overwrite_an_input_or_cannot_be_written_exit_2(clean_report: Path, tmp_path: Path) -> None:
    same = infercheck("gate", clean_report, "--baseline", clean_report)
    assert same.returncode == 2 and "REPORT.json and --baseline both name" in same.stderr
    (tmp_path / "file").write_text("")
    below_file = infercheck("gate", clean_report, "--baseline", tmp_path / "b.json", "--html",
                            tmp_path / "file" / "r.html")
    assert below_file.returncode == 2 and "infercheck gate: error: --html " in below_file.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema": "pytest-infercheck-baseline", "version": 2, "entries": [}')
    bad_baseline = infercheck("gate", clean_report, "--baseline", broken)
    assert bad_baseline.returncode == 2 and f"baseline file {broken}: not valid JSON" in bad_baseline.stderr


def test_a_report_records_its_writer_its_machines_and_a_content_hash(clean_report: Path) -> None:
    from pytest_infercheck import __version__
    from pytest_infercheck.report.json_report import content_hash
    from pytest_infercheck.report.json_report import content_hash
    from pytest_infercheck.measure.results import SCHEMA_VERSION
    data = json.loads(clean_report.read_text())
    assert data["format"] == "pytest-infercheck-report" and data["schema"] == SCHEMA_VERSION
    assert data["plugin_version"] == __version__
    machines = {json.dumps(r["machine"], sort_keys=True) for r in data["results"] if r["machine"]}
    assert {json.dumps(m, sort_keys=True) for m in data["machines"]} == machines and machines
    assert data["content_hash"].startswith("sha256:") and data["content_hash"] == content_hash(data)


def test_the_gate_needs_neither_torch_nor_an_inference_engine(clean_report: Path, tmp_path: Path) -> None:
    """The CPU job that gates a GPU report can skip torch's download (docs/gate.md)."""
    blocked = "import sys\nfor name in ('torch', 'onnx', 'onnxruntime', 'onnxscript', 'polygraphy', 'tensorrt'):\n" \
              "    sys.modules[name] = None  # any import of them raises ImportError\n"
    baseline = tmp_path / "baseline.json"
    for args in (["baseline", "update", clean_report, "--baseline", baseline],
                 ["gate", clean_report, "--baseline", baseline, "--markdown", tmp_path / "g.md",
                  "--junitxml", tmp_path / "j.xml"]):
        run = in_subprocess(*args, prelude=blocked)  # a new process, where nothing imported them yet
        assert run.returncode == 0, run.stdout + run.stderr
    assert "2 compared, 0 regressed" in run.stdout


def test_a_result_that_failed_only_its_runs_own_baseline_is_judged_again(clean_report: Path, tmp_path: Path,
                                                                         shared_cache_dir: Path) -> None:
    """The run gated itself against a baseline 100x faster; the gate's baseline replaces that verdict."""
    fast = blessed(clean_report, tmp_path / "fast")
    edit_entries(fast, faster)
    report = write_report(tmp_path / "run", CLEAN, f"--infer-baseline={fast}", cache=shared_cache_dir)
    in_run = [r for r in json.loads(report.read_text())["results"] if r["outcome"] == "failed"]
    assert len(in_run) == 2 and {r["stage"] for r in in_run} == {"regression"}
    baseline = blessed(clean_report, tmp_path / "fair")
    # Any slowdown allowed: two runs on a busy machine differ, and this test is about whose verdict counts.
    gate = infercheck("gate", report, "--baseline", baseline, "--max-regression", "100000%")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "2 compared, 0 regressed" in gate.stdout and "failed in the run" not in gate.stdout
    update = infercheck("baseline", "update", report, "--baseline", baseline)
    assert "2 entries written" in update.stdout  # blessing accepts what the run's own baseline refused


def _result(source: str):  # type: ignore[no-untyped-def]
    from pytest_infercheck.measure.results import CheckResult

    return CheckResult(nodeid="t.py::t[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                       cuda_graphs=False, settings={"max_regression": {"value": 0.5, "source": source}})


@pytest.mark.parametrize("source, expected", [("command line", 0.01), ("ini file", 0.01), ("default", 0.01),
                                              ("marker", 0.5), ("fixture call", 0.5)])
def test_gate_options_override_the_runs_settings_but_not_a_tests_own(source: str, expected: float) -> None:
    from pytest_infercheck.baseline.offline import settings_for

    settings = settings_for(_result(source), {"max_regression": 0.01})
    assert settings.max_regression == expected
    recorded = settings_for(_result(source), {})
    assert recorded.max_regression == 0.5 and recorded.accuracy_factor == 2.0


HANDLED = """
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_two_checks(infercheck):
    infercheck(dynamic_mlp(), torch.ones(2, 64), name="ones")
    # Taken by the test: the budget fails, the test passes.
    infercheck(dynamic_mlp(), torch.ones(2, 64), name="twos", budget="1us", raise_on_failure=False)
"""
# The same failure taken by the test, which then fails on it: the run failed, and so does the gate.
HANDLED_THEN_ASSERTED = HANDLED + """
@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_asserts(infercheck):
    result = infercheck(dynamic_mlp(), torch.ones(2, 64), budget="1us", raise_on_failure=False)
    assert result.passed, result.message
"""


def test_a_failure_its_test_took_follows_the_run_in_the_gate(tmp_path: Path) -> None:
    """``raise_on_failure=False``: the run passed the item, so the gate does not fail on the check (it is
    listed as not compared, saying the test took it); a test that then failed on it fails the gate.
    Each of a test's checks is named wherever it is listed."""
    handled = write_report(tmp_path / "handled", HANDLED)
    baseline = tmp_path / "baseline.json"
    update = infercheck("baseline", "update", handled, "--baseline", baseline)
    assert update.returncode == 0, update.stderr
    assert "not written: test_model.py::test_two_checks[eager-fp32] (twos): failed (latency)" in update.stdout
    junit = tmp_path / "gate.xml"
    gate = infercheck("gate", handled, "--baseline", baseline, "--junitxml", junit)
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert ("test_model.py::test_two_checks[eager-fp32] (twos): failed in the run, not raised: its test took the "
            "verdict (raise_on_failure=False) (latency:") in gate.stdout
    assert gate.stdout.rstrip().endswith("gate passed: nothing regressed (1 of 2 results compared with an entry)")
    cases = {case.get("name"): case for case in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"test_two_checks[eager-fp32] (ones)", "test_two_checks[eager-fp32] (twos)"}
    assert cases["test_two_checks[eager-fp32] (twos)"].find("failure") is None

    # Its own baseline, blessed from the same run: the checks that passed are compared with themselves,
    # so this half judges only whose failure counts, never two processes' latency.
    asserted = write_report(tmp_path / "asserted", HANDLED_THEN_ASSERTED)
    own = tmp_path / "own-baseline.json"
    assert infercheck("baseline", "update", asserted, "--baseline", own).returncode == 0
    gate = infercheck("gate", asserted, "--baseline", own)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert "test_model.py::test_asserts[eager-fp32]: failed in the run (latency:" in gate.stdout
    assert gate.stdout.rstrip().endswith("gate FAILED: 1 failed in the run")


# -- hostile files: bounded, strict, typed parsing (issue 23) -------------------------------------


def rehashed(data: dict) -> str:
    """The report as an attacker writes it: any content, its hash recomputed (NaN tokens allowed)."""
    import hashlib

    data = {name: value for name, value in data.items() if name != "content_hash"}
    body = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True)
    return json.dumps({**data, "content_hash": "sha256:" + hashlib.sha256(body.encode()).hexdigest()})


def _sample(value: float) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["results"][0]["latency"]["samples_ms"][0] = value
    return change


def _field(name: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["results"][0][name] = value
    return change


@pytest.mark.parametrize("damage, message", [
    (_sample(float("nan")), "contains the token NaN, which is not JSON"),
    (_sample(float("inf")), "contains the token Infinity, which is not JSON"),
    (_field("nodeid", 123), "results[0].nodeid is 123, expected a string"),
    (_field("device", 5), "results[0].device is 5, expected a string"),
    (_field("outcome", "green"), "results[0].outcome is 'green', expected one of 'passed', "),
    (_field("latency", {"samples_ms": "fast", "timer": "x"}), "results[0].latency.samples_ms is 'fast', expected a list"),
    (_field("failures", [{"stage": "accuracy"}]), "results[0].failures[0].message is missing"),
])
def test_a_report_with_a_valid_hash_over_bad_content_is_refused_with_exit_2(clean_report: Path, tmp_path: Path,
                                                                         damage, message: str) -> None:
    """A hash recomputed over NaN tokens or wrong field types was a traceback and exit 1 (the gate's
    "regressed"): a false red. Each is now one line naming the file and the field, exit 2."""
    data = json.loads(clean_report.read_text())
    damage(data)
    bad = tmp_path / "report.json"
    bad.write_text(rehashed(data))
    _refused_by_every_command(bad, tmp_path, message)


def test_a_report_nested_thousands_deep_is_refused_with_exit_2(clean_report: Path, tmp_path: Path) -> None:
    text = clean_report.read_text().rstrip()
    bad = tmp_path / "report.json"
    bad.write_text(text[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")  # was a RecursionError traceback
    _refused_by_every_command(bad, tmp_path, "nested deeper than 100 levels")


def _refused_by_every_command(bad: Path, tmp_path: Path, message: str) -> None:
    baseline = tmp_path / "b.json"
    for command in (["gate", bad, "--baseline", baseline], ["baseline", "update", bad, "--baseline", baseline],
                    ["report", bad, "--markdown", tmp_path / "r.md"]):
        run = infercheck(*command)
        assert run.returncode == 2, run.stdout + run.stderr
        [line] = run.stderr.splitlines()
        name = "baseline update" if command[0] == "baseline" else command[0]
        assert line.startswith(f"infercheck {name}: error: report {bad}: ") and message in line, line
    assert not baseline.exists() and not (tmp_path / "r.md").exists()


def test_a_baseline_that_is_a_fifo_is_refused_instead_of_waiting_for_a_writer(clean_report: Path,
                                                                             tmp_path: Path) -> None:
    fifo = tmp_path / "baseline.json"
    os.mkfifo(fifo)
    # opening it for reading blocked forever: a real process, which the timeout ends
    gate = infercheck("gate", clean_report, "--baseline", fifo, run=in_subprocess)
    assert gate.returncode == 2, gate.stdout + gate.stderr
    assert gate.stderr == (f"infercheck gate: error: baseline file {fifo}: is a FIFO (named pipe), not a regular file; "
                           "give a regular file, or delete it and run with --infer-baseline-update\n")


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (-2.5, "-2.5")])
def test_baseline_update_refuses_samples_no_later_run_could_read(clean_report: Path, tmp_path: Path, value: float,
                                                                 shown: str) -> None:
    """NaN or negative samples (a report whose hash was recomputed, NaN as pytest-infercheck writes it) were
    written into the baseline, and every later run then refused the file."""
    data = json.loads(clean_report.read_text())
    for result in data["results"]:
        if result["spec_id"] == "onnxruntime-fp32":
            result["latency"]["samples_ms"] = ["nan" if value != value else value] * 5
    report = tmp_path / "report.json"
    report.write_text(rehashed(data))
    baseline = tmp_path / "baseline.json"
    run = infercheck("baseline", "update", report, "--baseline", baseline)
    assert run.returncode == 2, run.stdout + run.stderr
    [line] = run.stderr.splitlines()
    assert line.startswith(f"infercheck baseline update: error: baseline file {baseline}: not updated: "
                           f"test_model.py::test_cnn[onnxruntime-fp32] (SmallCNN): latency.samples_ms[0] is {shown}, "
                           "expected a positive number"), line
    assert not baseline.exists()


NOTHING_MEASURED = """
import pytest

def test_collects_nothing_of_ours():
    pass

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_model_that_raises_before_its_check(infercheck):
    raise RuntimeError("the model could not be built")
"""
COLLECTION_ERROR = "import no_such_module_anywhere\n"


@pytest.fixture(scope="module")
def report_of(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``report_of(source)``: write_report's report of ``source``, one run per source in this module."""
    written: dict[str, Path] = {}

    def report(source: str) -> Path:
        if source not in written:
            written[source] = write_report(tmp_path_factory.mktemp("run"), source)
        return written[source]

    return report


@pytest.mark.parametrize("source, why", [
    (COLLECTION_ERROR, "gate FAILED: 1 failed in the run before any check"),
    (NOTHING_MEASURED, "gate FAILED: 1 failed in the run before any check"),
])
@pytest.mark.parametrize("strict", [False, True])
def test_a_report_with_nothing_to_judge_fails_the_gate(tmp_path: Path, source: str, why: str, strict: bool,
                                                       report_of: Callable[[str], Path]) -> None:
    """A run that errored in collection, or whose tests failed before any check, wrote a report with no
    result: a gate that passed it would have compared nothing. (The strict and the lenient gate read
    the same report.)"""
    report = report_of(source)
    baseline = tmp_path / "baseline.json"
    write_entries(baseline, [])  # empty: every result would be "not compared", never a pass
    markdown, junit = tmp_path / "gate.md", tmp_path / "gate.xml"
    gate = infercheck("gate", report, "--baseline", baseline, "--markdown", markdown, "--junitxml", junit,
                      *(["--strict"] if strict else []))
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert gate.stdout.rstrip().endswith(why), gate.stdout
    # The pull request's comment and the JUnit file say it too (were: no Markdown, and "0 tests, 0 failures").
    text = markdown.read_text()
    assert f"**{why}**" in text and "failed in the run before any check" in text, text
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "1"
    failed = ("    test_model.py (collection): ModuleNotFoundError: No module named 'no_such_module_anywhere'"
              if source == COLLECTION_ERROR else
              "    test_model.py::test_model_that_raises_before_its_check[eager-fp32] (call): RuntimeError: the model "
              "could not be built")
    assert failed in gate.stdout.splitlines(), gate.stdout


def test_a_test_that_failed_before_its_check_fails_the_gate_beside_passing_ones(tmp_path: Path) -> None:
    """Before, the report held only the checks' results: a run where one model's test raised before calling
    infercheck (its import or forward broke on the GPU runner) and another passed gave a green gate
    (found by a newcomer trial).  A failing test that does not use the fixture is not the gate's business."""
    run = tmp_path / "run"
    report = write_report(run, MIXED, f"--infer-markdown={run / 'run.md'}", f"--infer-html={run / 'run.html'}")
    # The run's own Markdown and HTML say it too: their tables and cards show only the checks' results.
    for page in ("run.md", "run.html"):
        text = (run / page).read_text()
        assert "test_broken_model[eager-fp32]" in text and "before any check" in text, page
    saved = json.loads(report.read_text())
    assert saved["failed_before_check"] == [
        {"nodeid": "test_model.py::test_broken_model[eager-fp32]", "when": "call",
         "message": "RuntimeError: the forward broke"},
        {"nodeid": "test_model.py::test_forgot_the_call[eager-fp32]", "when": "call",
         "message": "test_model.py::test_forgot_the_call[eager-fp32]: the test requested the infercheck fixture but "
                    "never called infercheck(model, example_inputs) (nor infercheck.audit(...)), so no engine was "
                    "checked"}]
    baseline = tmp_path / "baseline.json"
    assert infercheck("baseline", "update", report, "--baseline", baseline).returncode == 0
    html = tmp_path / "gate.html"
    gate = infercheck("gate", report, "--baseline", baseline, "--max-regression", "100000%", "--html", html)
    assert gate.returncode == 1, gate.stdout + gate.stderr
    assert ("    test_model.py::test_broken_model[eager-fp32] (call): RuntimeError: the forward broke"
            in gate.stdout.splitlines())
    page = html.read_text()
    assert "2 failed before any check" in page and "Failed before any check (2)" in page
    assert "test_model.py::test_forgot_the_call[eager-fp32] (call)" in page
    assert gate.stdout.rstrip().endswith("gate FAILED: 2 failed in the run before any check")
    assert "test_unrelated" not in gate.stdout


def test_under_xdist_the_tests_that_failed_before_any_check_are_listed_in_the_tests_order(tmp_path: Path) -> None:
    """Two workers report in whatever order they finish: the report (and the Markdown and HTML made from it)
    lists the failures in the tests' order, so one run's files do not differ from the next's (an attacker's
    session saw them shuffled)."""
    source = "import pytest\n" + "".join(
        f"@pytest.mark.infercheck(backends=['eager'], precisions=['fp32'])\ndef test_broken_{name}(infercheck):\n"
        f"    raise RuntimeError('{name} broke')\n\n" for name in ("d", "a", "c", "b"))
    report = write_report(tmp_path / "run", source, "-n", "2")
    listed = [failed["nodeid"] for failed in json.loads(report.read_text())["failed_before_check"]]
    assert listed == sorted(listed) and len(listed) == 4, listed


MIXED = """
import pytest
from fixtures.models import small_cnn, cnn_inputs

def test_unrelated():
    assert 1 == 2

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_fine_model(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_broken_model(infercheck):
    raise RuntimeError("the forward broke")

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_forgot_the_call(infercheck):
    pass
"""


def test_a_run_that_selected_nothing_leaves_no_stale_page_and_blesses_nothing(tmp_path: Path) -> None:
    """Newcomer trial 4: a run with no result left an earlier --infer-markdown file in place (a pull request's
    comment then showed the previous run's results); `infercheck report --markdown` did the same; the gate's
    JUnit file said "0 failures" beside its exit 1; and `baseline update` wrote an empty baseline."""
    run = tmp_path / "run"
    run.mkdir()
    stale = run / "infercheck.md"
    stale.write_text("OLD REPORT: 5 passed\n")
    report = write_report(run, CLEAN, "-k", "no_test_is_called_this", f"--infer-markdown={stale}")
    assert json.loads(report.read_text())["results"] == []
    assert stale.read_text().startswith("## infercheck: no check\n\nNo infercheck item ran"), stale.read_text()
    # The job summary, shared with every step of the job, gets nothing from a run that checked nothing.
    from pytest_infercheck.report.markdown import write_markdown

    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    assert write_markdown([], str(tmp_path / "page.md"), str(summary)) == []
    assert summary.read_text() == "earlier step\n" and (tmp_path / "page.md").exists()
    again = tmp_path / "again.md"
    again.write_text("OLD\n")
    assert infercheck("report", report, "--markdown", again).returncode == 0
    assert again.read_text().startswith("## infercheck: no check")
    baseline = tmp_path / "baseline.json"
    write_entries(baseline, [])
    junit = tmp_path / "gate.xml"
    gate = infercheck("gate", report, "--baseline", baseline, "--junitxml", junit)
    assert gate.returncode == 1 and gate.stdout.rstrip().endswith("nothing to judge: the report has no result")
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and suite.get("tests") == "1"
    blessed = tmp_path / "blessed.json"
    bless = infercheck("baseline", "update", report, "--baseline", blessed)
    assert bless.returncode == 1 and "nothing to bless: the report has no result" in bless.stdout
    assert not blessed.exists()


def test_blessing_a_report_whose_checks_all_skipped_writes_nothing(tmp_path: Path) -> None:
    """A GPU job's report from a CPU runner: every check skipped; `baseline update` wrote an empty baseline and
    exited 0 (the review)."""
    report = write_report(tmp_path / "run", CLEAN.replace('engines=["eager-fp32", "onnxruntime-fp32", "eager-int8"]',
                                                          'engines=["tensorrt-fp32", "eager-int8"]'))
    results = json.loads(report.read_text())["results"]
    assert results and all(r["outcome"] == "skipped" for r in results), [r["outcome"] for r in results]
    blessed = tmp_path / "blessed.json"
    bless = infercheck("baseline", "update", report, "--baseline", blessed)
    assert bless.returncode == 1, bless.stdout + bless.stderr
    assert f"nothing to bless: none of the report's {len(results)} results passed with figures to record" in bless.stdout
    assert not blessed.exists()

"""The baseline store: keys, subsampling and validation (unit tests), and the paths a user walks (pytester)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_infercheck.baseline.key import EntryIdentity, key_differences, machine_key
from pytest_infercheck.baseline.store import MAX_SAMPLES, BaselineStore, Entry, render, subsample, write_entries

FINGERPRINT = {
    "python": "3.11.7", "platform": "Linux-6.1", "cpu": "Example CPU @ 2.0GHz",
    "gpu": {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda_runtime": "13.0",
            "driver": "580.1", "sm_clock_mhz": 1980, "memory_bytes": 85_000_000_000},
    "libraries": {"torch": "2.13.0", "onnxruntime": "1.31.0", "numpy": "2.1.0", "pytest-infercheck": "0.1.0"},
}


def test_machine_key_keeps_what_moves_the_figures_and_drops_what_does_not() -> None:
    cpu = machine_key("cpu", FINGERPRINT)
    assert cpu["device"] == "cpu" and cpu["cpu"] == "Example CPU @ 2.0GHz" and cpu["cpus"] >= 1
    assert "gpu" not in cpu  # a CPU engine's figures do not depend on the GPU beside it
    assert cpu["libraries"] == {"torch": "2.13.0", "onnxruntime": "1.31.0"}  # not numpy, not the plugin
    cuda = machine_key("cuda:0", FINGERPRINT)
    assert cuda["device"] == "cuda"
    assert cuda["gpu"] == {"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "cuda_runtime": "13.0",
                           "driver": "580.1"}  # no clocks: they move from moment to moment
    assert "python" not in cuda and "platform" not in cuda
    # Only the libraries on the engine's path: an ONNX Runtime upgrade leaves eager entries valid.
    assert machine_key("cpu", FINGERPRINT, backend="eager")["libraries"] == {"torch": "2.13.0"}
    assert machine_key("cpu", FINGERPRINT, backend="onnxruntime")["libraries"] == {"torch": "2.13.0",
                                                                                     "onnxruntime": "1.31.0"}


def test_key_differences_name_each_fact_that_changed() -> None:
    old = machine_key("cuda", FINGERPRINT)
    new = json.loads(json.dumps(old))
    new["libraries"]["torch"] = "2.14.0"
    new["gpu"]["name"] = "NVIDIA H200"
    assert key_differences(old, new) == ["gpu.name NVIDIA H100 80GB HBM3 -> NVIDIA H200", "torch 2.13.0 -> 2.14.0"]


def test_key_differences_are_never_empty_for_keys_that_differ() -> None:
    # Hand-made keys (an attacker's session): values that print alike, and a layout that flattens alike,
    # were "other machine" with no difference named ("cpus 2 -> 2", or nothing at all).
    key = machine_key("cpu", FINGERPRINT)
    assert key_differences({**key, "cpus": "2"}, {**key, "cpus": 2}) == ["cpus '2' -> 2"]
    [layout] = key_differences({**key, "gpu": {}}, key)
    assert layout.startswith("the key's layout ") and '"gpu": {}' in layout
    assert key_differences(key, json.loads(json.dumps(key))) == []


def test_subsample_is_deterministic_bounded_and_keeps_the_extremes() -> None:
    samples = [float((i * 7919) % 10007) + 1 for i in range(5000)]
    picked = subsample(samples)
    assert len(picked) == MAX_SAMPLES
    assert picked == subsample(samples)
    assert picked[0] == min(samples) and picked[-1] == max(samples)
    assert subsample([3.0, 1.0, 2.0]) == [1.0, 2.0, 3.0]  # small sets are kept whole


def _entry(nodeid: str = "test_a.py::test_a[onnxruntime-fp32]", torch: str = "2.13.0") -> Entry:
    machine = machine_key("cpu", {**FINGERPRINT, "libraries": {"torch": torch}})
    return Entry(nodeid=nodeid, spec_id="onnxruntime-fp32", machine=machine,
                 accuracy={"logits": {"max_abs": 1e-6, "mean_abs": 1e-7}},
                 latency={"timer": "cpu-perf_counter", "count": 3, "p50_ms": 2.0, "p90_ms": 3.0, "p99_ms": 3.0,
                          "samples_ms": [1.0, 2.0, 3.0]},
                 model_hash="abc", recorded="2026-11-22T10:00:00+00:00")


def test_written_file_reads_back_and_keeps_number_lists_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    entries = [_entry(), _entry(torch="2.12.0")]
    write_entries(path, entries)
    assert '"samples_ms": [1.0, 2.0, 3.0]' in path.read_text()
    store = BaselineStore.load(path)
    assert sorted(e.machine["libraries"]["torch"] for e in store.entries) == ["2.12.0", "2.13.0"]
    found = store.lookup(EntryIdentity(entries[0].nodeid, "", "onnxruntime-fp32"), entries[0].machine)
    assert found.status == "found" and found.entry.samples_ms == [1.0, 2.0, 3.0]
    other = machine_key("cpu", {**FINGERPRINT, "libraries": {"torch": "9.9"}})
    mismatch = store.lookup(EntryIdentity(entries[0].nodeid, "", "onnxruntime-fp32"), other)
    assert mismatch.status == "fingerprint-mismatch" and mismatch.differences == ["torch 2.12.0 -> 9.9"]
    assert mismatch.versions_only  # only versions differ: the summary names --across-versions
    assert store.lookup(EntryIdentity("test_b.py::test_b", "", "onnxruntime-fp32"), other).status == "missing"


def test_across_versions_picks_the_latest_blessed_entry_of_this_hardware() -> None:
    import dataclasses

    identity = EntryIdentity("test_a.py::test_a[onnxruntime-fp32]", "", "onnxruntime-fp32")
    older = dataclasses.replace(_entry(torch="2.11.0"), recorded="2026-01-10T10:00:00+00:00")
    newer = dataclasses.replace(_entry(torch="2.12.0"), recorded="2026-06-10T10:00:00+00:00")
    elsewhere = dataclasses.replace(_entry(torch="2.12.0"), recorded="2026-11-10T10:00:00+00:00",
                                    machine={**_entry(torch="2.12.0").machine, "cpu": "another CPU"})
    store = BaselineStore(Path("b.json"), [newer, elsewhere, older], exists=True)
    upgraded = machine_key("cpu", {**FINGERPRINT, "libraries": {"torch": "2.13.0"}})
    found = store.lookup(identity, upgraded, across_versions=True)
    # The latest blessed is the one an upgrade replaces, in whatever order the file holds them.
    assert found.status == "found" and found.entry is newer and found.differences == ["torch 2.12.0 -> 2.13.0"]
    store = BaselineStore(Path("b.json"), [older, elsewhere, newer], exists=True)
    assert store.lookup(identity, upgraded, across_versions=True).entry is newer
    # Without the option, or with only other hardware's entries, nothing is applied.
    assert store.lookup(identity, upgraded).status == "fingerprint-mismatch"
    # ... and the message is about this hardware's entry, with the option that compares across versions, even
    # where another machine's entry differs in as few fields and comes first (newcomer trial 4: "cpus 1 -> 2").
    fewer_cpus = dataclasses.replace(_entry(torch="2.13.0"), machine={**_entry(torch="2.13.0").machine, "cpus": 1})
    said = BaselineStore(Path("b.json"), [fewer_cpus, newer], exists=True).lookup(identity, upgraded)
    assert said.status == "fingerprint-mismatch" and said.differences == ["torch 2.12.0 -> 2.13.0"] and said.versions_only
    assert not store.lookup(identity, upgraded, across_versions=True).versions_only
    alone = BaselineStore(Path("b.json"), [elsewhere], exists=True).lookup(identity, upgraded, across_versions=True)
    assert alone.status == "fingerprint-mismatch" and any(d.startswith("cpu ") for d in alone.differences)
    # A key without its libraries' versions (an old or hand-made file) is not "another version": not applied.
    unversioned = dataclasses.replace(newer, machine={**newer.machine, "libraries": {}})
    lookup = BaselineStore(Path("b.json"), [unversioned], exists=True).lookup(identity, upgraded, across_versions=True)
    assert lookup.status == "fingerprint-mismatch"


def test_a_missing_file_is_an_empty_store(tmp_path: Path) -> None:
    store = BaselineStore.load(tmp_path / "absent.json")
    assert store.entries == [] and not store.exists


def _valid_file() -> dict:
    return json.loads(render([_entry()]))


def _broken(mutate) -> str:  # type: ignore[no-untyped-def]
    data = _valid_file()
    mutate(data)
    return json.dumps(data)


@pytest.mark.parametrize("text, problem", [
    ('{"schema": "pytest-infercheck-baseline", "version": 1, "entries": [', "not valid JSON (line 1, column"),
    ("[]", "not a pytest-infercheck baseline"),
    (_broken(lambda d: d.update(version=3)), "version 3 is not supported"),
    (_broken(lambda d: d.update(entries={})), '"entries" must be a list'),
    (_broken(lambda d: d["entries"][0].pop("nodeid")), 'entries[0]: "nodeid" must be a non-empty string'),
    (_broken(lambda d: d["entries"][0]["latency"]["samples_ms"].__setitem__(1, "fast")),
     "entries[0] (test_a.py::test_a[onnxruntime-fp32]): latency.samples_ms[1] is 'fast', expected a positive number"),
    (_broken(lambda d: d["entries"][0]["latency"]["samples_ms"].__setitem__(0, -1.0)), "samples_ms[0] is -1.0"),
    (_broken(lambda d: d["entries"][0]["accuracy"]["logits"].__setitem__("max_abs", None)),
     "accuracy.logits.max_abs is None, expected a finite number >= 0"),
    (_broken(lambda d: d["entries"].append(d["entries"][0])), "a second entry for the same test, check, engine and machine"),
    ('{"schema": "pytest-infercheck-baseline", "version": 2, "entries": [], "x": ' + "[" * 100_000 + "]" * 100_000
     + "}", "nested deeper than 100 levels"),
    (_broken(lambda d: d["entries"][0]["machine"].update(deep=json.loads("[" * 150 + "]" * 150))),
     "nested deeper than 100 levels"),
    (_broken(lambda d: d["entries"][0]["latency"]["samples_ms"].__setitem__(0, float("nan"))),
     "contains the token NaN, which is not JSON"),
    ("\ufeff{}".encode("utf-16"), "not UTF-8 text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text"),
])
def test_a_broken_file_is_a_usage_error_naming_the_file_and_the_problem(tmp_path: Path, text, problem: str) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(pytest.UsageError) as raised:
        BaselineStore.load(path)
    message = str(raised.value)
    assert message.startswith(f"baseline file {path}: ")
    assert problem in message
    assert "--infer-baseline-update" in message  # and how to get out of it


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path) -> None:
    from pytest_infercheck.core.codec import MAX_JSON_BYTES

    path = tmp_path / "baseline.json"
    with open(path, "wb") as sparse:  # no disk used: only the size says it is too large
        sparse.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(pytest.UsageError) as raised:
        BaselineStore.load(path)
    assert str(raised.value).startswith(f"baseline file {path}: is {MAX_JSON_BYTES + 1} bytes, over the limit of "
                                        "256 MiB for this file")


# -- what a user sees (real pytest runs) ------------------------------------------------------------

TWO_ENGINES = """
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager", "onnxruntime"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""
# These runs check the store's behaviour, not the statistics: allow any slowdown, so a busy CI
# machine cannot turn a comparison into a regression here (tests/test_regression.py covers those).
LENIENT = "--infer-max-regression=100000%"


@pytest.fixture
def baseline_file(pytester: pytest.Pytester) -> Path:
    return pytester.path / "ci" / "baseline.json"


def entries_of(path: Path) -> list[dict]:
    return json.loads(path.read_text())["entries"]


def test_update_records_every_item_then_a_run_compares_with_it(run_plugin, baseline_file: Path) -> None:
    created = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update")
    created.assert_outcomes(passed=2)
    created.stdout.fnmatch_lines(["baseline updated: 2 entries written, 0 kept, 0 not written -> *baseline.json"])
    entries = entries_of(baseline_file)
    assert sorted(e["spec_id"] for e in entries) == ["eager-fp32", "onnxruntime-fp32"]
    for entry in entries:
        assert entry["machine"]["device"] == "cpu" and "torch" in entry["machine"]["libraries"]
        assert entry["accuracy"]["output"]["max_abs"] >= 0
        assert 5 <= len(entry["latency"]["samples_ms"]) <= 500
    before = baseline_file.read_bytes()
    compared = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", LENIENT)
    compared.assert_outcomes(passed=2)
    compared.stdout.fnmatch_lines(["baseline *baseline.json: 2 compared, 0 regressed, * 0 missing, 0 not applied*"])
    assert baseline_file.read_bytes() == before  # comparing never writes


def test_update_replaces_only_the_items_that_ran_and_keeps_the_rest(run_plugin, baseline_file: Path) -> None:
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update").assert_outcomes(passed=2)
    data = json.loads(baseline_file.read_text())
    foreign = dict(data["entries"][0], nodeid="test_other.py::test_gone[eager-fp32]")
    data["entries"].append(foreign)
    baseline_file.write_text(json.dumps(data))
    ort_before = next(e for e in entries_of(baseline_file) if e["spec_id"] == "onnxruntime-fp32")

    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update", "-k", "eager")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["baseline updated: 1 entries written, 2 kept, 0 not written*"])
    after = {(e["nodeid"], e["spec_id"]): e for e in entries_of(baseline_file)}
    assert len(after) == 3
    assert after[(ort_before["nodeid"], "onnxruntime-fp32")] == ort_before  # did not run: untouched
    assert after[(foreign["nodeid"], "eager-fp32")] == foreign
    assert [p.name for p in baseline_file.parent.iterdir()] == ["baseline.json"]  # no temp or lock file beside it


def test_entries_no_result_matched_are_said_not_failed(run_plugin, baseline_file: Path, tmp_path: Path) -> None:
    """A test renamed after its blessing lost its gate without a word: its old entries are now named."""
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update").assert_outcomes(passed=2)
    report, markdown, html = tmp_path / "report.json", tmp_path / "summary.md", tmp_path / "report.html"
    renamed = run_plugin(TWO_ENGINES.replace("def test_cnn(", "def test_cnn_renamed("),
                         f"--infer-baseline={baseline_file}", f"--infer-report={report}", LENIENT,
                         f"--infer-markdown={markdown}", f"--infer-html={html}")
    renamed.assert_outcomes(passed=2)
    renamed.stdout.fnmatch_lines([
        "*0 compared, 0 regressed, 0 improved, 2 missing*",
        "*no result for 2 baseline entries of this machine (a test not selected in this run, or renamed or deleted "
        "since it was blessed (its gate is gone until it is blessed again); kept in the file): "
        "test_model.py::test_cnn[[]eager-fp32[]], test_model.py::test_cnn[[]onnxruntime-fp32[]]",
    ])
    text = markdown.read_text()  # the pull request's comment and the job summary say it too
    assert "### No result for 2 baseline entries of this machine" in text
    assert "- `test_model.py::test_cnn[eager-fp32]`" in text
    assert "<h2>No result for 2 baseline entries of this machine</h2>" in html.read_text()
    from cli_runner import in_process

    gate_md = tmp_path / "gate.md"
    gated = in_process("gate", report, "--baseline", baseline_file, "--markdown", gate_md)
    assert gated.returncode == 0 and "no result for 2 baseline entries of this machine" in gated.stdout, gated.stdout
    assert "### No result for 2 baseline entries of this machine" in gate_md.read_text()
    # A run that selects one engine names the other's entry; one that matches every entry says nothing.
    selected = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "-k", "eager", LENIENT)
    selected.stdout.fnmatch_lines(["*no result for 1 baseline entry of this machine *: test_model.py::test_cnn[[]onnxruntime-fp32[]]"])
    whole = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", LENIENT)
    assert "no result for" not in whole.stdout.str()


def test_missing_entries_are_reported_and_strict_makes_them_failures(run_plugin, baseline_file: Path) -> None:
    lenient = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}")
    lenient.assert_outcomes(passed=2)
    lenient.stdout.fnmatch_lines(["*0 compared, 0 regressed, 0 improved, 2 missing*",
                                  "*missing (no entry; run with --infer-baseline-update to record it):",
                                  "*test_model.py::test_cnn[[]eager-fp32[]]"])
    assert not baseline_file.exists()  # nothing is written without --infer-baseline-update

    strict = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*baseline: no entry for this item in *baseline.json; run with "
                                 "--infer-baseline-update to record it (--infer-baseline-strict (infercheck gate --strict) makes this a failure)"])


def test_an_entry_from_another_machine_is_not_applied_and_the_summary_says_so(run_plugin, baseline_file: Path) -> None:
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update").assert_outcomes(passed=2)
    data = json.loads(baseline_file.read_text())
    for entry in data["entries"]:
        entry["machine"]["libraries"]["torch"] = "1.0.0"
        entry["latency"]["samples_ms"] = [1000.0] * 50  # would be a huge "improvement" if it were compared
    baseline_file.write_text(json.dumps(data))

    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*0 compared, 0 regressed, 0 improved, 0 missing, 2 not applied (other machine)",
        "*FINGERPRINT DIFFERS: 2 entries were recorded on another machine or software stack and NOT applied:",
        "*test_model.py::test_cnn[[]eager-fp32[]]: torch 1.0.0 -> *; the same hardware under other library versions: "
        "--infer-baseline-across-versions (infercheck gate --across-versions) compares with it",
    ])
    strict = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-strict")
    strict.assert_outcomes(failed=2)
    strict.stdout.fnmatch_lines(["*recorded on another machine or software stack (torch 1.0.0 -> *), so it was not applied*"])


def test_the_gate_takes_an_allowance_the_run_recorded_as_recorded(run_plugin, baseline_file: Path,
                                                                    tmp_path: Path) -> None:
    """A run with --infer-max-regression=100000% records the fraction 1000.0; read back through the option's
    parser, that bare number "would mean 100000%" and was refused: the gate of a valid run ended in exit 2."""
    from cli_runner import in_process

    report = tmp_path / "report.json"
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update", LENIENT,
               f"--infer-report={report}").assert_outcomes(passed=2)
    gated = in_process("gate", report, "--baseline", baseline_file)
    assert gated.returncode == 0, gated.stdout + gated.stderr
    assert "2 compared, 0 regressed" in gated.stdout


def an_upgrade(baseline_file: Path, *, onnxruntime_max_abs: float) -> None:
    """The blessed entries as an older torch would have written them on this machine: torch "1.0.0" in
    their key, and the ONNX Runtime engine's recorded error ``onnxruntime_max_abs`` (the upgrade's change)."""
    data = json.loads(baseline_file.read_text())
    for entry in data["entries"]:
        entry["machine"]["libraries"]["torch"] = "1.0.0"
        if entry["spec_id"] == "onnxruntime-fp32":
            entry["accuracy"]["output"] = {"max_abs": onnxruntime_max_abs, "mean_abs": onnxruntime_max_abs}
    baseline_file.write_text(json.dumps(data))


def test_across_versions_an_upgrade_is_gated_against_the_old_versions_entries(run_plugin, baseline_file: Path,
                                                                              tmp_path: Path) -> None:
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update").assert_outcomes(passed=2)
    # The old torch's ONNX Runtime engine was exact, the new one errs by ~1e-7: with no floor, a regression.
    an_upgrade(baseline_file, onnxruntime_max_abs=1e-12)
    before = baseline_file.read_bytes()
    report, markdown, html = tmp_path / "report.json", tmp_path / "gate.md", tmp_path / "gate.html"
    junit = tmp_path / "junit.xml"
    upgraded = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-across-versions",
                          "--infer-accuracy-floor=0", LENIENT, f"--infer-report={report}",
                          f"--infer-markdown={markdown}", f"--infer-html={html}", f"--junitxml={junit}")
    upgraded.assert_outcomes(passed=1, failed=1)
    upgraded.stdout.fnmatch_lines([
        "*2 compared, 1 regressed, 0 improved, 0 missing, 0 not applied (other machine)*",
        "*across versions: 2 compared with an entry of other library versions on this machine:",
        "*test_model.py::test_cnn[[]eager-fp32[]]: torch 1.0.0 -> *",
        "*REGRESSION *onnxruntime-fp32*: accuracy output max_abs 1e-12 -> * (compared across torch 1.0.0 -> *)",
    ])
    assert baseline_file.read_bytes() == before  # comparing never writes
    assert "### Compared across library versions" in markdown.read_text()
    assert "compared with an entry of other library versions: torch 1.0.0 -&gt; " in html.read_text()
    assert 'name="infercheck.onnxruntime-fp32.baseline.across_versions" value="torch 1.0.0 -&gt; ' in junit.read_text()
    # Without the option the same entries are another software stack's: not applied, as before.
    plain_report = tmp_path / "plain.json"
    plain = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-accuracy-floor=0", LENIENT,
                       f"--infer-report={plain_report}")
    plain.assert_outcomes(passed=2)
    plain.stdout.fnmatch_lines(["*0 compared, * 2 not applied (other machine)"])

    # The CLI gate: across versions where the run was (its recorded setting: a gate job apart from the run
    # keeps it) or where --across-versions asks; not applied otherwise.
    from cli_runner import in_process

    for gated in (in_process("gate", report, "--baseline", baseline_file),
                  in_process("gate", plain_report, "--baseline", baseline_file, "--across-versions")):
        assert gated.returncode == 1, gated.stdout + gated.stderr
        assert "(compared across torch 1.0.0 -> " in gated.stdout and "across versions: 2 compared" in gated.stdout
    not_across = in_process("gate", plain_report, "--baseline", baseline_file)
    assert not_across.returncode == 0 and "2 not applied (other machine)" in not_across.stdout


def test_across_versions_never_applies_another_machines_entry(run_plugin, baseline_file: Path) -> None:
    run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update").assert_outcomes(passed=2)
    an_upgrade(baseline_file, onnxruntime_max_abs=1e-12)
    data = json.loads(baseline_file.read_text())
    for entry in data["entries"]:
        entry["machine"]["cpu"] = "another CPU"  # other hardware too: its figures say nothing of this machine's
    baseline_file.write_text(json.dumps(data))
    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-across-versions",
                        "--infer-accuracy-floor=0", LENIENT)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*0 compared, * 2 not applied (other machine)",
                                 "*test_model.py::test_cnn[[]eager-fp32[]]: cpu another CPU -> *; torch 1.0.0 -> *"])


def test_a_corrupted_file_is_a_usage_error_and_is_left_alone(run_plugin, baseline_file: Path) -> None:
    baseline_file.parent.mkdir(parents=True)
    baseline_file.write_text('{"schema": "pytest-infercheck-baseline", "version": 1, "entries": [}')
    before = baseline_file.read_bytes()
    for extra in ([], ["--infer-baseline-update"]):
        result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", *extra)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"ERROR: baseline file {baseline_file}: not valid JSON (line 1, column *"])
        assert baseline_file.read_bytes() == before


def test_a_failing_engine_is_not_written_into_the_baseline(run_plugin, baseline_file: Path) -> None:
    source = TWO_ENGINES.replace('backends=["eager", "onnxruntime"]', 'backends=["onnxruntime"], atol=0, rtol=0')
    result = run_plugin(source, f"--infer-baseline={baseline_file}", "--infer-baseline-update")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*0 entries written, 0 kept, 1 not written*",
                                 "*not written: test_model.py::test_cnn[[]onnxruntime-fp32[]]: failed (accuracy)*"])
    assert not baseline_file.exists()  # nothing to bless: not even an empty file, which would gate nothing


def test_a_blessing_run_whose_checks_all_skipped_blesses_nothing_and_says_so(run_plugin, baseline_file: Path) -> None:
    """A GPU job's blessing that ran on a CPU runner: every check skipped, the run green, an empty baseline file
    written (the review). Now nothing is written and the run fails as a blessing that blessed nothing."""
    source = TWO_ENGINES.replace('backends=["eager", "onnxruntime"]', 'backends=["tensorrt"]')
    result = run_plugin(source, f"--infer-baseline={baseline_file}", "--infer-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*nothing blessed: none of the 1 checks passed with figures to record*"])
    assert not baseline_file.exists()


def test_ini_twins_configure_the_gate(pytester: pytest.Pytester, run_plugin, baseline_file: Path) -> None:
    pytester.makeini(f"[pytest]\ninfer_baseline = {baseline_file}\ninfer_baseline_strict = true\n"
                     "infer_max_regression = 1000%\n")
    result = run_plugin(TWO_ENGINES)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*--infer-baseline-strict (infercheck gate --strict) makes this a failure*"])


def test_a_bare_number_for_max_regression_is_refused(run_plugin) -> None:
    result = run_plugin(TWO_ENGINES, "--infer-max-regression=5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-max-regression*'5' would mean 500%; write 5% (or 0.05) for five percent*"])


def _result(nodeid: str, samples: list[float], outcome: str = "passed"):  # type: ignore[no-untyped-def]
    from pytest_infercheck.measure.results import AccuracyResult, CheckResult, OutputAccuracy, Tolerance
    from pytest_infercheck.measure.timing import summarize

    accuracy = AccuracyResult((OutputAccuracy("output", (1,), 1e-6, 1e-6, 1e-7, 1e-7, 1.0, 0, 1, (0,), 0.0, 0.0, 0,
                                              Tolerance(1e-4, 1e-3)),))
    return CheckResult(nodeid=nodeid, spec_id="eager-fp32", backend="eager", precision="fp32", cuda_graphs=False,
                       outcome=outcome, stage=None if outcome == "passed" else "accuracy", accuracy=accuracy,
                       latency=summarize(samples, timer="cpu-perf_counter", batch_size=1, warmup=0),
                       machine=machine_key("cpu", FINGERPRINT))


def test_update_writes_one_entry_per_item_and_says_why_others_were_not_written(tmp_path: Path) -> None:
    from pytest_infercheck.baseline.store import update_baseline

    path = tmp_path / "b.json"
    skipped = _result("t.py::t[skipped]", [1.0] * 5, outcome="skipped")
    failed = _result("t.py::t[failed]", [1.0] * 5, outcome="failed")
    summary = update_baseline(path, [_result("t.py::t[eager-fp32]", [1.0] * 5),
                                     _result("t.py::t[eager-fp32]", [2.0] * 5),  # a rerun of the same item
                                     skipped, failed])
    (entry,) = BaselineStore.load(path).entries
    assert entry.samples_ms == [2.0] * 5  # the later result wins; the file stays valid
    assert summary.written == ["t.py::t[eager-fp32]"] and summary.kept == 0
    assert summary.not_written == ["t.py::t[skipped]: skipped",
                                   "t.py::t[failed]: failed (accuracy); a failing engine is not written into the baseline"]
    # Blessed, four samples left every later comparison of the entry "too few samples" (a newcomer trial).
    short = update_baseline(path, [_result("t.py::t[eager-fp32]", [3.0] * 4)])
    assert short.written == [] and short.too_few_samples == 1 and short.not_written == [
        "t.py::t[eager-fp32]: only 4 latency sample(s), and a comparison needs 5 on each side: rerun with more "
        "iterations (--infer-max-iters, --infer-min-time) to bless it"]
    assert BaselineStore.load(path).entries[0].samples_ms == [2.0] * 5  # the entry blessed before stays


def test_a_baseline_nested_thousands_deep_is_a_usage_error_not_an_internal_error(run_plugin, baseline_file: Path) -> None:
    """Parsing it raised RecursionError at start-up: INTERNALERROR, exit 3."""
    baseline_file.parent.mkdir(parents=True)
    baseline_file.write_text('{"schema": "pytest-infercheck-baseline", "version": 2, "entries": ' + "[" * 100_000
                             + "]" * 100_000 + "}")
    before = baseline_file.read_bytes()
    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line] == [f"ERROR: baseline file {baseline_file}: nested deeper than 100 levels; not a file "
                                   "pytest-infercheck wrote; fix it by hand, or delete it and run with "
                                   "--infer-baseline-update"]
    assert "INTERNALERROR" not in result.stdout.str() and baseline_file.read_bytes() == before


# A timer's fault cannot be had on demand: this conftest makes one in the real run, on the controller,
# before the plugin collects the result (tryfirst), as a negative sample.
NEGATIVE_SAMPLE = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    for data in getattr(report, "infercheck", None) or []:
        if data["spec_id"] == "onnxruntime-fp32" and data.get("latency"):
            data["latency"]["samples_ms"][0] = -1.0
"""


def test_the_sessions_update_refuses_samples_no_later_run_could_read(pytester: pytest.Pytester, run_plugin,
                                                                     baseline_file: Path) -> None:
    """The session wrote a negative sample into the baseline, exit 0; every later run refused the file."""
    pytester.makeconftest(NEGATIVE_SAMPLE)
    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # a job that blesses must not pass when nothing was blessed
    result.stdout.fnmatch_lines([f"infercheck: baseline file {baseline_file}: not updated: "
                                 "test_model.py::test_cnn[[]onnxruntime-fp32[]] (SmallCNN): latency.samples_ms[[]0[]] "
                                 "is -1.0, expected a positive number; every later run would refuse the file, so "
                                 "nothing was written"])
    assert not baseline_file.exists() and "Traceback" not in result.stdout.str()


RENAMED = """
import pytest, torch
from fixtures.models import small_cnn, cnn_inputs

class Named(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = small_cnn()

    def forward(self, x):
        out = self.inner(x)
        return {NAMES}

@pytest.mark.infercheck(backends=["eager"])
def test_cnn(infercheck):
    infercheck(Named(), cnn_inputs(), name="cnn")
"""


def test_an_output_renamed_since_the_blessing_is_undecided_not_a_quiet_pass(run_plugin, baseline_file: Path) -> None:
    """Before, the accuracy comparison skipped an output the entry had no figure for: a model whose output was
    renamed (or restructured) passed the gate with its accuracy compared to nothing."""
    blessed = run_plugin(RENAMED.replace("{NAMES}", '{"output": out}'), f"--infer-baseline={baseline_file}",
                         "--infer-baseline-update")
    blessed.assert_outcomes(passed=1)
    renamed = RENAMED.replace("{NAMES}", '{"logits": out * 1000.0}')  # renamed, and its values far off
    lenient = run_plugin(renamed, f"--infer-baseline={baseline_file}", LENIENT)
    lenient.assert_outcomes(passed=1)
    lenient.stdout.fnmatch_lines(["*baseline accuracy: output(s) output[[]'logits'[]] have no figure in the baseline "
                                  "and the baseline's output[[]'output'[]] has no output in this run: not compared*"])
    strict = run_plugin(renamed, f"--infer-baseline={baseline_file}", LENIENT, "--infer-baseline-strict")
    strict.assert_outcomes(failed=1)
    strict.stdout.fnmatch_lines(["*undecided: baseline accuracy: output(s) output[[]'logits'[]] have no figure*"])
    # The gate on a saved report names the undecided item and why, as the session does.
    from cli_runner import in_process

    report = baseline_file.parent / "renamed.json"
    run_plugin(renamed, f"--infer-report={report}").assert_outcomes(passed=1)
    gate = in_process("gate", report, "--baseline", baseline_file, "--max-regression", "100000%")
    assert gate.returncode == 0, gate.stdout + gate.stderr
    assert "  undecided (1: the figures cannot tell pass from fail; --strict makes them fail):" in gate.stdout
    assert ("    test_model.py::test_cnn[eager-fp32]: baseline accuracy: output(s) output['logits'] have no figure "
            "in the baseline") in gate.stdout
    assert gate.stdout.rstrip().endswith("gate passed: nothing regressed (1 of 1 results compared with an entry)")
    same = run_plugin(RENAMED.replace("{NAMES}", '{"output": out}'), f"--infer-baseline={baseline_file}", LENIENT)
    same.assert_outcomes(passed=1)
    assert "baseline accuracy:" not in same.stdout.str()


def test_a_blessing_whose_runs_had_too_few_samples_fails_rather_than_blessing_nothing(run_plugin,
                                                                                      baseline_file: Path) -> None:
    """A bless job run with --infer-max-iters=4 wrote nothing and stayed green (a review): the session's update
    and `infercheck baseline update` end as usage errors, the reason in the summary."""
    few = ("--infer-min-iters=1", "--infer-max-iters=4", "--infer-min-time=0", "--infer-ci-width=0")
    report = baseline_file.parent / "few.json"
    result = run_plugin(TWO_ENGINES, f"--infer-baseline={baseline_file}", "--infer-baseline-update",
                        f"--infer-report={report}", *few, timing=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*baseline: 2 passing result(s) not blessed, with fewer latency samples than a "
                                 "comparison needs*"])
    assert not baseline_file.exists() or entries_of(baseline_file) == []
    from cli_runner import in_process

    cli = in_process("baseline", "update", report, "--baseline", baseline_file)
    assert cli.returncode == 2 and "2 passing result(s) not blessed" in cli.stderr, cli.stdout + cli.stderr

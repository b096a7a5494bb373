"""One xdist worker per GPU (docs/multi-gpu.md), on the CPU machine: the --infer-gpus option, the
round-robin assignment, the pin in real `pytest -n 2` workers, the per-GPU timing lock's key, and
each item keeping its own machine key when the workers' GPUs differ.

torch is CPU-only here, so a pinned CUDA_VISIBLE_DEVICES changes nothing else in these runs.
"""

from __future__ import annotations

from dataclasses import replace

import fcntl
import json
import os
from pathlib import Path
from typing import Any

import pytest
from test_baseline import FINGERPRINT, _result

from pytest_infercheck.core import gpus
from pytest_infercheck.baseline.key import EntryIdentity, machine_key
from pytest_infercheck.baseline.store import BaselineStore, update_baseline
from pytest_infercheck.core.cache_dirs import lock_path
from pytest_infercheck.config.options import OptionError, parse_gpus
from pytest_infercheck.plugin.session import LOCK_LOG, InfercheckSession, gpu_lock

REPO = Path(__file__).resolve().parents[1]


# -- --infer-gpus ------------------------------------------------------------------------------------


def test_gpu_lists_parse_to_indices_and_all_means_every_visible_gpu() -> None:
    assert parse_gpus("0,1") == (0, 1)
    assert parse_gpus(" 2 , 0 ") == (2, 0)  # the order given is the order workers are dealt
    assert parse_gpus("3") == (3,)
    assert parse_gpus("all") is None and parse_gpus(" ALL ") is None


@pytest.mark.parametrize("bad, says", [
    ("", "has an empty entry"), ("0,", "has an empty entry"), ("a", "'a' is not a GPU index"),
    ("-1", "'-1' is not a GPU index"), ("1.5", "'1.5' is not a GPU index"), ("cuda:0", "is not a GPU index"),
    ("0,1,0", "GPU 0 is listed twice"),
])
def test_bad_gpu_lists_are_refused_with_the_accepted_forms(bad: str, says: str) -> None:
    with pytest.raises(OptionError, match="comma-separated GPU indices such as 0,1") as caught:
        parse_gpus(bad)
    assert says in str(caught.value)


def test_a_bad_gpu_list_is_a_usage_error_naming_the_option_or_ini_key(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--infer-gpus=0,x")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-gpus*'x' is not a GPU index*"])
    pytester.makeini("[pytest]\ninfer_gpus = 1,1\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*infer_gpus = '1,1'*GPU 1 is listed twice*"])


# -- which GPU each worker gets -----------------------------------------------------------------------


def test_workers_are_dealt_the_gpus_round_robin() -> None:
    two = ("0", "1")
    assert [gpus.assign_gpu(f"gw{k}", two) for k in range(2)] == ["0", "1"]  # 2 workers, 2 GPUs
    assert [gpus.assign_gpu(f"gw{k}", two) for k in range(3)] == ["0", "1", "0"]  # 3 workers, 2 GPUs
    assert gpus.assign_gpu("gw7", ("GPU-a", "GPU-b", "GPU-c")) == "GPU-b"
    for bad in ("master", "gw", "gw-1", "0"):
        with pytest.raises(ValueError, match="not an xdist worker id"):
            gpus.assign_gpu(bad, two)


def test_visible_entries_read_cuda_visible_devices_as_cuda_does() -> None:
    assert gpus.visible_entries(None) is None  # unset: every GPU, counted elsewhere
    assert gpus.visible_entries("") == () and gpus.visible_entries("-1") == ()
    assert gpus.visible_entries("4, 5") == ("4", "5")
    assert gpus.visible_entries("0,-1,1") == ("0",)  # CUDA stops at the first invalid entry
    assert gpus.visible_entries("GPU-aa,MIG-bb") == ("GPU-aa", "MIG-bb")


def test_the_chosen_gpus_index_the_visible_ones() -> None:
    assert gpus.choose_gpus(None, ("4", "5")) == ("4", "5")  # default: all visible
    assert gpus.choose_gpus((1,), ("4", "5", "6")) == ("5",)
    assert gpus.choose_gpus((2, 0), ("GPU-a", "GPU-b", "GPU-c")) == ("GPU-c", "GPU-a")
    assert gpus.choose_gpus((0, 1), None) == ("0", "1")  # nothing tells what is visible: taken as given
    # Fewer than two GPUs, or none, or no way to tell: nothing changes unless asked.
    assert gpus.choose_gpus(None, ("0",)) == () and gpus.choose_gpus(None, ()) == ()
    assert gpus.choose_gpus(None, None) == ()
    with pytest.raises(ValueError, match=r"--infer-gpus: GPU 2, 3 is not visible: this process sees 2 GPUs "
                                         r"\(CUDA_VISIBLE_DEVICES or nvidia-smi: 4, 5\), which --infer-gpus numbers 0 to 1"):
        gpus.choose_gpus((0, 2, 3), ("4", "5"))
    with pytest.raises(ValueError, match="--infer-gpus: no GPU is visible to this process"):
        gpus.choose_gpus((0,), ())


def test_pinning_sets_the_workers_variable_and_leaves_a_single_gpu_alone() -> None:
    environ = {"CUDA_VISIBLE_DEVICES": "4,5"}
    assert gpus.pin_worker("gw1", None, environ) == "5" and environ == {"CUDA_VISIBLE_DEVICES": "5"}
    environ = {}
    assert gpus.pin_worker("gw2", (0, 1), environ, count=lambda: 2) == "0" and environ["CUDA_VISIBLE_DEVICES"] == "0"
    for visible, count in (({"CUDA_VISIBLE_DEVICES": "3"}, None), ({}, 1), ({}, None)):  # one GPU, or no CUDA
        environ = dict(visible)
        assert gpus.pin_worker("gw1", None, environ, count=lambda: count) is None and environ == visible
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert gpus.pin_worker("worker-a", None, environ) is None and environ == {"CUDA_VISIBLE_DEVICES": "0,1"}


def test_a_worker_whose_cuda_is_already_initialised_is_not_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    # A fake: the CPU build cannot initialise CUDA; this stands for a conftest that touched it at import.
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    environ = {"CUDA_VISIBLE_DEVICES": "0,1"}
    with pytest.raises(gpus.PinTooLate, match="CUDA was initialised in worker gw1 before .* pin it to GPU 1"):
        gpus.pin_worker("gw1", None, environ)
    assert environ == {"CUDA_VISIBLE_DEVICES": "0,1"}  # left alone: CUDA would ignore it, the lock key would lie


class _StandInConfig:
    """A fake pytest config with only what gpus.configure reads: a real worker's config cannot be made here."""

    def __init__(self, worker: str | None, dist: str = "no", tx: tuple[str, ...] = ()) -> None:
        if worker is not None:
            self.workerinput = {"workerid": worker}
        self.option = type("Option", (), {"dist": dist, "tx": list(tx)})()
        self.warnings: list[Warning] = []

    def issue_config_time_warning(self, warning: Warning, stacklevel: int) -> None:
        self.warnings.append(warning)


def test_configure_pins_workers_checks_the_controller_and_warns_when_too_late(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    controller = _StandInConfig(None, dist="load", tx=("popen", "popen"))
    not_visible = ("--infer-gpus: GPU 2 is not visible: this process sees 2 GPUs (CUDA_VISIBLE_DEVICES or "
                   "nvidia-smi: 0, 1), which --infer-gpus numbers 0 to 1")
    assert gpus.configure(controller, (0, 2)) == not_visible
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # the controller runs no test: left as it is
    single = _StandInConfig(None)  # no xdist: the same check, never a silently ignored value
    assert gpus.configure(single, (0, 2)) == not_visible and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert gpus.configure(single, (1, 0)) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "1"  # the first listed
    assert len(single.warnings) == 1 and "one process runs on one GPU, GPU 1" in str(single.warnings[0])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "7")
    assert gpus.configure(_StandInConfig(None), (1,)) == ("--infer-gpus: GPU 1 is not visible: this process sees 1 "
                                                          "GPU (CUDA_VISIBLE_DEVICES or nvidia-smi: 7), which "
                                                          "--infer-gpus numbers 0")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # fake: a conftest initialised CUDA
    late = _StandInConfig("gw1")
    assert gpus.configure(late, None) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
    assert len(late.warnings) == 1 and "before pytest-infercheck could pin it to GPU 1" in str(late.warnings[0])
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert gpus.configure(_StandInConfig("gw1"), None) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "1"


def test_nvidia_smi_counts_gpus_but_not_mig_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gpus.nvidia_smi_count() is None  # no driver tool: cannot tell
    tool = tmp_path / "nvidia-smi"  # a stand-in for the driver's tool, which this machine has not
    listing = "GPU 0: NVIDIA H200 (UUID: GPU-aaaa)\nGPU 1: NVIDIA H200 (UUID: GPU-bbbb)\n"
    tool.write_text(f"#!/bin/sh\nprintf '{listing}'\n")
    tool.chmod(0o755)
    assert gpus.nvidia_smi_count() == 2
    tool.write_text(f"#!/bin/sh\nprintf '{listing}  MIG 3g.71gb Device 0: (UUID: MIG-cccc)\\n'\n")
    assert gpus.nvidia_smi_count() is None
    tool.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert gpus.nvidia_smi_count() is None


# -- real `pytest -n 2` runs ---------------------------------------------------------------------------

PRINTS_ITS_GPU = """
import os, pathlib, pytest

@pytest.mark.parametrize("n", range(8))
def test_where(n):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "no-xdist")
    print(worker, os.environ.get("CUDA_VISIBLE_DEVICES"))
    (pathlib.Path(__file__).parent / f"{worker}.txt").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
"""


def _workers_gpus(pytester: pytest.Pytester, *args: str) -> dict[str, str]:
    pytest.importorskip("xdist", reason="pip install pytest-xdist to run the -n 2 tests")
    for old in pytester.path.glob("gw*.txt"):
        old.unlink()
    pytester.makepyfile(test_where=PRINTS_ITS_GPU)
    result = pytester.runpytest("-p", "xdist", "-n", "2", "-p", "no:randomly", *args)
    result.assert_outcomes(passed=8)
    return {path.stem: path.read_text() for path in pytester.path.glob("gw*.txt")}


def test_each_xdist_worker_is_pinned_to_its_gpu(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _workers_gpus(pytester, "--infer-gpus=0,1") == {"gw0": "0", "gw1": "1"}
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"  # the controller is left as it was
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")  # UUIDs pass through as written
    assert _workers_gpus(pytester, "--infer-gpus=1") == {"gw0": "GPU-bbbb", "gw1": "GPU-bbbb"}


def test_with_one_gpu_the_workers_are_left_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert _workers_gpus(pytester) == {"gw0": "3", "gw1": "3"}


def test_a_gpu_that_is_not_visible_stops_the_run_before_any_worker(pytester: pytest.Pytester,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("xdist", reason="pip install pytest-xdist to run the -n 2 tests")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # when this suite itself runs under xdist
    pytester.makepyfile(test_where=PRINTS_ITS_GPU)
    result = pytester.runpytest("-p", "xdist", "-n", "2", "--infer-gpus=0,2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--infer-gpus: GPU 2 is not visible: this process sees 2 GPUs*"])
    assert not list(pytester.path.glob("gw*.txt"))
    # Without xdist the same check holds, and a valid choice is where the one process runs.
    single = pytester.runpytest("--infer-gpus=0,2", "-p", "no:randomly")
    assert single.ret == pytest.ExitCode.USAGE_ERROR and not (pytester.path / "no-xdist.txt").exists()
    pytester.runpytest("--infer-gpus=1", "-p", "no:randomly").assert_outcomes(passed=8)
    assert (pytester.path / "no-xdist.txt").read_text() == "1"


# -- one timing lock per GPU -----------------------------------------------------------------------------


def test_the_lock_key_is_the_physical_gpu() -> None:
    # Two workers pinned to two GPUs: two keys; two workers on one GPU: one key.
    assert gpus.gpu_lock_key(0, "0", None) != gpus.gpu_lock_key(0, "1", None)
    assert gpus.gpu_lock_key(0, "1", None) == gpus.gpu_lock_key(0, "1", None) == "1"
    # A process that sees every GPU and times on device 1 takes the same lock as a worker pinned to "1".
    assert gpus.gpu_lock_key(1, None, None) == gpus.gpu_lock_key(0, "1", None)
    assert gpus.gpu_lock_key(1, "4,5", None) == "5"
    # The UUID, when CUDA gives one, wins over however the GPU was named.
    assert gpus.gpu_lock_key(0, "1", "GPU-bbbb") == gpus.gpu_lock_key(1, None, "GPU-bbbb") == "GPU-bbbb"


def test_the_timing_key_falls_back_to_the_visible_entry_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")  # the CPU build: no device properties, so no UUID
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa,GPU-bbbb")
    assert gpus.device_uuid(0) is None
    assert gpus.timing_lock_key("cuda:1") == "GPU-bbbb" and gpus.timing_lock_key("cuda") == "GPU-aaaa"


def _held_elsewhere(path: Path) -> bool:
    """Whether another holder has ``path`` locked (flock is per open file: a second open here competes)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_timed_loops_on_one_gpu_take_turns_and_on_two_gpus_do_not(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "turns.tsv"
    monkeypatch.setenv(LOCK_LOG, str(log))
    with gpu_lock(tmp_path, "GPU-aaaa"):
        assert _held_elsewhere(lock_path(tmp_path, "gpu", "GPU-aaaa"))
        assert not _held_elsewhere(lock_path(tmp_path, "gpu", "GPU-bbbb"))
    assert not _held_elsewhere(lock_path(tmp_path, "gpu", "GPU-aaaa"))
    key, pid, start, end = log.read_text().split("\t")
    assert (key, int(pid)) == ("GPU-aaaa", os.getpid()) and float(start) <= float(end)


def test_cpu_timing_takes_no_gpu_lock(pytestconfig: pytest.Config, tmp_path: Path) -> None:
    session = InfercheckSession(pytestconfig, [("command line", {"cache_dir": str(tmp_path)})])
    with session.timing_lock("cpu"):
        # the CPU's own timing lock, in the private cache: no GPU's
        assert sorted(p.name for p in (tmp_path / "locks").iterdir()) == ["cpu-work.lock", "timing-cpu.lock"]


# -- results merged on the controller, each with its own machine ------------------------------------------


def test_items_from_workers_on_different_gpus_keep_their_own_machine_keys(pytestconfig: pytest.Config,
                                                                          tmp_path: Path) -> None:
    a100 = {**FINGERPRINT, "gpu": {**FINGERPRINT["gpu"], "name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}}
    on_gw0, on_gw1 = _result("t.py::t[eager-fp32]", [1.0] * 5), _result("t.py::u[eager-fp32]", [2.0] * 5)
    on_gw0 = replace(on_gw0, device="cuda", machine=machine_key("cuda", FINGERPRINT))  # records are frozen
    on_gw1 = replace(on_gw1, device="cuda", machine=machine_key("cuda", a100))
    session = InfercheckSession(pytestconfig, [])
    for result in (on_gw0, on_gw1):  # the way xdist carries a report from a worker to the controller
        report = pytest.TestReport(result.nodeid, ("t.py", 1, "t"), {}, "passed", None, "call")
        report.infercheck = [result.to_dict()]  # type: ignore[attr-defined]
        wire = json.loads(json.dumps(pytestconfig.hook.pytest_report_to_serializable(config=pytestconfig,
                                                                                      report=report)))
        session.collect(pytestconfig.hook.pytest_report_from_serializable(config=pytestconfig, data=wire))
    assert [r.machine["gpu"]["name"] for r in session.results] == ["NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"]
    path = tmp_path / "baseline.json"
    update_baseline(path, session.results)
    store = BaselineStore.load(path)
    assert {e.nodeid: e.machine["gpu"]["name"] for e in store.entries} == {
        "t.py::t[eager-fp32]": "NVIDIA H100 80GB HBM3", "t.py::u[eager-fp32]": "NVIDIA A100-SXM4-80GB"}
    assert store.lookup(EntryIdentity("t.py::u[eager-fp32]", "", "eager-fp32"), on_gw1.machine).status == "found"
    elsewhere = store.lookup(EntryIdentity("t.py::u[eager-fp32]", "", "eager-fp32"), on_gw0.machine)
    assert elsewhere.status != "found" and "gpu.name NVIDIA A100-SXM4-80GB -> NVIDIA H100 80GB HBM3" in \
        elsewhere.differences


# -- the 2-GPU comparison script's checks (scripts/multigpu_compare.py) ------------------------------------


def _compare_script():  # type: ignore[no-untyped-def]
    import importlib.util

    spec = importlib.util.spec_from_file_location("multigpu_compare", REPO / "scripts" / "multigpu_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_the_comparison_finds_loops_that_overlapped_on_one_gpu_only() -> None:
    compare = _compare_script()
    turns = [("GPU-a", 1, 0.0, 1.0), ("GPU-b", 2, 0.5, 1.5),  # two GPUs at once: allowed
             ("GPU-a", 2, 1.0, 2.0), ("GPU-a", 1, 1.9, 2.5)]  # back to back, then overlapping
    assert compare.overlaps(turns) == ["GPU-a: pid 2 [1.000, 2.000] and pid 1 [1.900, 2.500]"]
    assert compare.overlaps(turns[:3]) == []


def test_the_comparison_names_items_whose_verdict_moved(tmp_path: Path) -> None:
    compare = _compare_script()
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"results": [{"nodeid": "t.py::a", "spec_id": "eager-fp16", "outcome": "passed"},
                                              {"nodeid": "t.py::b", "spec_id": "eager-fp16", "outcome": "failed",
                                               "stage": "latency"}]}))
    one = compare.verdicts(report)
    assert compare.verdict_differences({1: one, 2: dict(one)}) == []
    two = {**one, "t.py::b|eager-fp16": ("passed", "")}
    del two["t.py::a|eager-fp16"]
    assert compare.verdict_differences({1: one, 2: two}) == [
        "t.py::a|eager-fp16: -n 1: passed, -n 2: absent", "t.py::b|eager-fp16: -n 1: failed/latency, -n 2: passed"]


def test_the_comparison_reads_each_process_timeline(tmp_path: Path) -> None:
    compare = _compare_script()
    log = tmp_path / "items.tsv"
    log.write_text("gw0\tready\t\t103.0\t103.0\n"
                   "gw0\titem\tt.py::a\t105.0\t107.0\n"
                   "gw0\titem\tt.py::b\t107.5\t108.0\n"
                   "gw0\tfinish\t\t108.5\t108.6\n"
                   "main\tready\t\t101.0\t101.0\n"  # the controller runs no item, and writes the reports last
                   "gw0\tunconfigure\t\t108.6\t108.7\n"
                   "gw0\texit-begins\t\t109.1\t109.1\n"
                   "gw0\texit-handlers-done\t\t109.3\t109.3\n"
                   "main\twrite-outputs\t\t110.0\t110.4\n"
                   "main\tfinish\t\t109.0\t110.5\n")
    assert compare.timeline(log, started=100.0) == {
        "gw0": pytest.approx({"ready": 3.0, "first": 5.0, "last": 8.0, "busy": 2.5, "finish": 8.5, "finished": 8.6,
                              "unconfigure": 8.6, "unconfigured": 8.7, "exit-begins": 9.1,
                              "exit-handlers-done": 9.3}),
        "main": pytest.approx({"ready": 1.0, "first": float("inf"), "last": 0.0, "busy": 0.0, "finish": 9.0,
                               "finished": 10.5, "write-outputs": 10.0, "written": 10.4})}
    assert compare.timeline(tmp_path / "absent.tsv", started=0.0) == {}


def test_results_name_an_item_without_the_group_that_loadgroup_appends() -> None:
    from pytest_infercheck.plugin.xdist_groups import plain_nodeid

    assert plain_nodeid("t.py::test_a[eager-fp16]@models") == "t.py::test_a[eager-fp16]"
    assert plain_nodeid("t.py::test_a@models") == "t.py::test_a"
    assert plain_nodeid("t.py::test_a[user@host]") == "t.py::test_a[user@host]"  # an @ in a parameter id stays
    assert plain_nodeid("t.py::test_a[eager-fp16]") == "t.py::test_a[eager-fp16]"


def test_engine_scopes_pair_an_engine_with_its_cuda_graph_twin_and_leave_other_tests_alone() -> None:
    from pytest_infercheck.plugin.xdist_groups import engine_scope

    assert engine_scope("t.py::test_a[inductor-fp16]") == engine_scope("t.py::test_a[inductor-fp16-cudagraph]") \
        == "t.py::test_a::inductor-fp16"
    assert engine_scope("t.py::test_a[inductor-bf16]") != engine_scope("t.py::test_a[inductor-fp16]")
    assert engine_scope("t.py::test_b[inductor-fp16]") != engine_scope("t.py::test_a[inductor-fp16]")
    for alone in ("t.py::test_c", "t.py::test_c[3-x]", "t.py::test_c[invalid-marker]", "t.py::test_c[bogus-fp16]"):
        assert engine_scope(alone) == alone


@pytest.mark.parametrize("engine, twin, scope", [
    ("t.py::test_a[8-inductor-fp16]", "t.py::test_a[8-inductor-fp16-cudagraph]", "t.py::test_a[8]::inductor-fp16"),
    ("t.py::test_a[inductor-fp16-8]", "t.py::test_a[inductor-fp16-cudagraph-8]", "t.py::test_a[8]::inductor-fp16"),
    ("t.py::test_a[b-1-tensorrt-rtx-fp16-x]", "t.py::test_a[b-1-tensorrt-rtx-fp16-cudagraph-x]",
     "t.py::test_a[b-1-x]::tensorrt-rtx-fp16"),  # a backend name with a dash, parameters on both sides
])
def test_engine_scopes_keep_the_tests_own_parameters(engine: str, twin: str, scope: str) -> None:
    """A test parametrised by the user as well: each parameter set pairs its engine with its twin."""
    from pytest_infercheck.plugin.xdist_groups import engine_scope

    assert engine_scope(engine) == engine_scope(twin) == scope
    assert engine_scope(engine.replace("8", "1").replace("b-1", "b-2")) != scope


class _Config:
    def __init__(self, dist: str) -> None:
        self.dist = dist

    def getvalue(self, name: str) -> str:
        assert name == "dist"
        return self.dist


@pytest.mark.parametrize("dist, setting, visible, gpus, expected", [
    ("load", "auto", "0,1", None, True),  # the workers spread over two GPUs
    ("load", "auto", "0,1", (0,), False),  # --infer-gpus=0: one GPU
    ("load", "auto", "0", None, False),
    ("load", "on", "", None, True),
    ("load", "off", "0,1", None, False),
    ("loadfile", "on", "0,1", None, False),  # the user chose another distribution: theirs
    ("no", "on", "0,1", None, False),
])
def test_engine_scheduling_applies_with_load_distribution_where_chosen_or_on_several_gpus(
        monkeypatch: pytest.MonkeyPatch, dist: str, setting: str, visible: str, gpus: Any, expected: bool) -> None:
    from pytest_infercheck.plugin.xdist_groups import wanted

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert wanted(_Config(dist), setting, gpus) is expected

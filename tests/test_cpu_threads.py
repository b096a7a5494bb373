"""CPU thread counts and the timing locks: the parts of "CPU timing that holds on a busy runner"
that can be checked without timing anything."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from pytest_infercheck.core.cpu_threads import (COMPILE_THREADS, ThreadsError, active_threads, configure_session,
                                           cpu_threads, parse_threads, resolve_threads, share_compile_threads,
                                           usable_cores)
from pytest_infercheck.core.locks import cpu_timing_lock, cpu_work_lock, lock_dir
from pytest_infercheck.config.options import OptionError, parse_value


@pytest.mark.parametrize("cores, workers, expected", [(2, 1, 1), (4, 1, 3), (16, 1, 15), (4, 2, 1), (2, 2, 1),
                                                      (1, 1, 1), (64, 8, 7)])
def test_auto_leaves_a_core_per_worker_share_and_never_goes_below_one(cores: int, workers: int, expected: int) -> None:
    assert resolve_threads("auto", cores=cores, workers=workers) == expected
    assert resolve_threads(3, cores=cores, workers=workers) == 3


@pytest.mark.parametrize("cpus, workers, expected", [(32, 2, "16"), (64, 2, "16"), (16, 3, "5"), (2, 4, "1"),
                                                     (32, 1, None)])
def test_each_worker_gets_its_share_of_inductors_compile_subprocesses(cpus: int, workers: int, expected) -> None:
    environ: dict[str, str] = {}
    share_compile_threads(environ, workers, cpus=cpus)
    assert environ.get(COMPILE_THREADS) == expected  # one worker: Inductor's own default (min(32, CPUs))


def test_the_users_compile_thread_count_is_kept() -> None:
    environ = {COMPILE_THREADS: "4"}
    assert share_compile_threads(environ, 2, cpus=32) is None and environ == {COMPILE_THREADS: "4"}


def test_xdist_workers_start_with_their_share_of_compile_threads(pytester: pytest.Pytester,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv(COMPILE_THREADS, raising=False)
    pytester.makepyfile(test_x=f"""
import os

def test_a():
    open("seen-a", "w").write(os.environ.get("{COMPILE_THREADS}", "unset"))

def test_b():
    open("seen-b", "w").write(os.environ.get("{COMPILE_THREADS}", "unset"))
""")
    pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:randomly").assert_outcomes(passed=2)
    share = str(max(1, min(32, len(os.sched_getaffinity(0))) // 2))
    assert (pytester.path / "seen-a").read_text() == (pytester.path / "seen-b").read_text() == share


def test_workers_whose_conftest_imported_inductor_first_get_their_share_too(pytester: pytest.Pytester,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Inductor reads the variable when its config is imported, which a conftest may do before the plugin runs."""
    import os

    monkeypatch.delenv(COMPILE_THREADS, raising=False)
    pytester.makeconftest("import torch._dynamo, torch._inductor.config\n")
    pytester.makepyfile(test_x="""
import torch._inductor.config as config

def test_a():
    open("seen-a", "w").write(str(config.compile_threads))

def test_b():
    open("seen-b", "w").write(str(config.compile_threads))
""")
    pytester.runpytest_subprocess("-p", "xdist", "-n", "2", "-p", "no:randomly").assert_outcomes(passed=2)
    share = str(max(1, min(32, len(os.sched_getaffinity(0))) // 2))
    assert (pytester.path / "seen-a").read_text() == (pytester.path / "seen-b").read_text() == share


def test_usable_cores_counts_at_least_one() -> None:
    assert 1 <= usable_cores() <= (torch.get_num_threads() + 64)


@pytest.mark.parametrize("bad", ["0", "-1", "two", "1.5", "nan"])
def test_bad_thread_counts_are_usage_errors_naming_the_option(bad: str) -> None:
    with pytest.raises(ThreadsError):
        parse_threads(bad)
    with pytest.raises(OptionError, match=r"--infer-threads threads: .*or 'auto'"):
        parse_value("threads", bad, "--infer-threads")
    assert parse_value("threads", "AUTO", "ini") == "auto" and parse_value("threads", "2", "ini") == 2


def test_cpu_threads_sets_and_restores_torch_and_the_active_count() -> None:
    before = torch.get_num_threads()
    with cpu_threads(1):
        assert torch.get_num_threads() == 1 and active_threads() == 1
    assert torch.get_num_threads() == before and active_threads() is None


def test_sessions_made_inside_a_check_get_its_thread_count_and_no_spinning() -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    with cpu_threads(1):
        options = configure_session(onnxruntime.SessionOptions())
    assert options.intra_op_num_threads == 1 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    untouched = configure_session(onnxruntime.SessionOptions())
    assert untouched.intra_op_num_threads == 0  # outside a check: ONNX Runtime's default


def test_lock_files_are_private(tmp_path) -> None:
    assert lock_dir().stat().st_mode & 0o077 == 0
    assert lock_dir(tmp_path) == tmp_path / "locks" and lock_dir(tmp_path).stat().st_mode & 0o077 == 0


def test_a_cpu_timing_excludes_cpu_work_in_other_processes() -> None:
    waiter = "from pytest_infercheck.core.locks import cpu_work_lock\nwith cpu_work_lock(): print('built', flush=True)"
    with cpu_timing_lock():
        child = subprocess.Popen([sys.executable, "-c", waiter], stdout=subprocess.PIPE, text=True,
                                 env=_env())
        time.sleep(1.0)
        assert child.poll() is None, "a build ran while another process was timing on the CPU"
    out, _ = child.communicate(timeout=60)
    assert out.strip() == "built"


def test_cpu_work_of_several_processes_overlaps() -> None:
    builder = "from pytest_infercheck.core.locks import cpu_work_lock\nwith cpu_work_lock(): print('built', flush=True)"
    with cpu_work_lock():
        out = subprocess.run([sys.executable, "-c", builder], capture_output=True, text=True, timeout=60, env=_env())
    assert out.stdout.strip() == "built"


def _env() -> dict[str, str]:
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}


def test_a_read_only_cache_takes_its_cpu_locks_in_the_per_user_temp_dir_and_still_excludes(tmp_path) -> None:
    """A read-only cache (a CI image) has no locks/cpu-work.lock and cannot make one: every item
    failed with PermissionError. The locks fall back to the per-user temp dir, where every process
    of the run on that cache finds the same file, so a timing still keeps builds out."""
    from readonly import read_only

    cache = tmp_path / "cache"
    cache.mkdir()
    waiter = ("import sys; from pathlib import Path\nfrom pytest_infercheck.core.locks import cpu_work_lock\n"
              "with cpu_work_lock(Path(sys.argv[1])): print('built', flush=True)")
    with read_only(cache):
        with cpu_timing_lock(cache):
            assert (lock_dir() / "timing-cpu.lock").exists() and not (cache / "locks").exists()
            child = subprocess.Popen([sys.executable, "-c", waiter, str(cache)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env())
            time.sleep(1.0)
            assert child.poll() is None, "a build ran while another process was timing on the CPU"
        out, err = child.communicate(timeout=60)
    assert out.strip() == "built", err


def test_a_lock_file_planted_as_a_symlink_is_never_followed(tmp_path) -> None:
    """A link where a lock file goes would make this process (root, in CI) create the file it names:
    the lock is taken in the per-user temp dir instead, and the target is never made."""
    target = tmp_path / "etc-cron.d-job"
    (tmp_path / "locks").mkdir(mode=0o700)
    (tmp_path / "locks" / "cpu-work.lock").symlink_to(target)
    with cpu_work_lock(tmp_path):
        assert (lock_dir() / "cpu-work.lock").is_file()
    assert not target.exists() and not os.path.lexists(target)


def test_settings_that_mean_nothing_on_this_device_are_said(run_plugin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Newcomer trial 4: time_transfers on the CPU and threads=64 on 2 CPUs were accepted without a word (the
    64 threads made eager p50 60x slower and the printed speedup 226x)."""

    from pytest_infercheck.core.cpu_threads import usable_cpus

    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)  # the run below is one process, not a worker
    available = usable_cpus()
    result = run_plugin(f"""
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"], time_transfers=True, threads={available + 1})
def test_n(infercheck):
    infercheck(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4))
""", "--infer-device=cpu", "-W", "error")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "notes (information, not warnings):",
        "  test_model.py::test_n[[]eager-fp32[]]: time_transfers adds the host-device copies to a GPU engine's "
        "timing; on the CPU there are none*",
        f"  test_model.py::test_n[[]eager-fp32[]]: threads={available + 1} is more than the {available} CPU(s) this "
        "process may use*",
    ])
    assert "InfercheckWarning" not in result.stdout.str()  # information: a strict warnings filter fails nothing

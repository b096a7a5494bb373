"""Engine-cache states from the second hostile attack on issue 23: swapped entries, lock files that are
no regular file, a cache directory that is a device or a file."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pytest_infercheck.backends.cache import CacheWarning, EngineCache
from pytest_infercheck.core.cache_dirs import check_private, resolve_cache_dir

KEY_A = "ab" + "a" * 38
KEY_B = "ab" + "b" * 38


def writer(content: bytes):
    def build(directory: Path) -> None:
        (directory / "model.onnx").write_bytes(content)
    return build


def test_two_swapped_entries_are_not_hits_for_each_others_keys(tmp_path: Path) -> None:
    """Each entry's checksums match its own files, so a swapped pair (a rename, a restore from backup) was a
    hit serving the other model's engine: an accuracy failure blamed on ONNX Runtime, or a wrong pass."""
    cache = EngineCache(tmp_path)
    first = cache.get_or_build(KEY_A, writer(b"model A"), what="a").path
    second = cache.get_or_build(KEY_B, writer(b"model B"), what="b").path
    first.rename(tmp_path / "swap")
    second.rename(first)
    (tmp_path / "swap").rename(second)
    with pytest.warns(CacheWarning, match="moved or swapped"):
        entry = cache.get_or_build(KEY_A, writer(b"model A"), what="a")
    assert not entry.hit and (entry.path / "model.onnx").read_bytes() == b"model A"


def test_an_entry_written_before_meta_named_its_key_is_still_a_hit(tmp_path: Path) -> None:
    import json

    cache = EngineCache(tmp_path)
    path = cache.get_or_build(KEY_A, writer(b"model A"), what="a").path
    meta = json.loads((path / "meta.json").read_text())
    assert meta.pop("key") == KEY_A
    (path / "meta.json").chmod(0o600)
    (path / "meta.json").write_text(json.dumps(meta))
    assert cache.get_or_build(KEY_A, writer(b"other"), what="a").hit


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_an_entry_lock_that_is_no_regular_file_builds_in_a_temporary_directory(tmp_path: Path, kind: str) -> None:
    """A FIFO at <key>.lock hung the item (opening it waited for a writer); a directory failed it with
    IsADirectoryError. Either is now a stuck entry: built in a temporary directory, with a warning."""
    cache = EngineCache(tmp_path)
    lock = tmp_path / KEY_A[:2] / f"{KEY_A}.lock"
    lock.parent.mkdir(mode=0o700)
    os.mkfifo(lock) if kind == "fifo" else lock.mkdir()
    with pytest.warns(CacheWarning, match="lock file .* is not a regular file"):
        entry = cache.get_or_build(KEY_A, writer(b"model A"), what="a")
    assert not entry.hit and (entry.path / "model.onnx").read_bytes() == b"model A"
    cache.close()


@pytest.mark.parametrize("given", ["/dev/null", "file", "file/below", "/proc/self/infercheck"])
def test_a_cache_dir_that_cannot_be_a_directory_is_one_line(tmp_path: Path, given: str) -> None:
    """resolve_cache_dir's mkdir raised FileExistsError for /dev/null or a file: an INTERNALERROR."""
    (tmp_path / "file").write_text("x")
    path = resolve_cache_dir(given if given.startswith("/") else tmp_path / given, None)
    problem = check_private(path)
    assert problem is not None and problem.startswith("--infer-cache-dir ")


def test_a_device_as_cache_dir_is_a_usage_error_through_pytest(tmp_path: Path) -> None:
    (tmp_path / "test_a.py").write_text("def test_a():\n    pass\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
                          "--infer-cache-dir=/dev/null", "test_a.py"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 4, run.stdout + run.stderr
    assert "INTERNALERROR" not in run.stdout + run.stderr
    assert "--infer-cache-dir /dev/null: not a directory" in run.stdout + run.stderr


def test_a_disk_that_fills_while_exporting_fails_the_item_at_a_stage_with_its_reason(tmp_path: Path) -> None:
    """RLIMIT_FSIZE (as a full disk: EFBIG; ENOSPC alike) while the export is written into the cache: the
    OSError escaped the pre-build export and audit as a raw traceback, outcome "failed (test)"."""
    import resource

    (tmp_path / "test_a.py").write_text(
        "import pytest, torch\n"
        "@pytest.mark.infercheck(engines=['onnxruntime-fp32'])\n"
        "def test_a(infercheck):\n"
        "    infercheck(torch.nn.Linear(8, 4), (torch.randn(2, 8),))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
                          "--infer-warmup=1", "--infer-min-iters=5", "--infer-min-time=0.01",
                          f"--infer-cache-dir={tmp_path / 'cache'}", "test_a.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env=env,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)))
    assert run.returncode == 1, run.stdout + run.stderr
    assert "failed (build)" in run.stdout and "File too large" in run.stdout, run.stdout
    assert "failed (test)" not in run.stdout

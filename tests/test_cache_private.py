"""The cache's directory is private, a read-only cache is read, bad metadata is rebuilt, nothing is left behind.

Real directories, real modes and owners (chown needs root, which CI containers run as), and
``chattr +i`` for read-only directories that even root cannot write (tests/readonly.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pytest_infercheck.cache import CacheWarning, EngineCache
from pytest_infercheck.cache_dirs import check_private, lock_path, point_inductor_cache, resolve_cache_dir
from readonly import read_only

REPO = Path(__file__).resolve().parents[1]
KEY = "ab" + "c" * 38


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_engine(directory: Path) -> None:
    (directory / "engine.bin").write_bytes(b"engine" * 100)


def test_without_pytest_cache_the_default_is_a_private_per_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = resolve_cache_dir(None, None)
    assert path == tmp_path / "xdg" / "pytest-infercheck" and mode_of(path) == 0o700
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".cache" / "pytest-infercheck").mkdir(parents=True, mode=0o755)
    path = resolve_cache_dir(None, None)
    assert path == tmp_path / "home" / ".cache" / "pytest-infercheck" and mode_of(path) == 0o700  # tightened
    assert check_private(path) is None


def test_given_and_pytest_directories(tmp_path: Path) -> None:
    given = resolve_cache_dir(str(tmp_path / "given" / "cache"), tmp_path / "pytest")
    assert given == tmp_path / "given" / "cache" and mode_of(given) == 0o700
    assert resolve_cache_dir(None, tmp_path / "pytest") == tmp_path / "pytest"


def test_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert check_private(shared) == (
        f"--infer-cache-dir {shared}: it is writable by every user (mode 777, no sticky bit), so anyone could "
        f"replace the compiled code the cache holds: chmod o-w {shared}, or give --infer-cache-dir a private directory")
    (shared / "mine").mkdir(mode=0o700)
    assert f"its parent {shared} is writable by every user" in check_private(shared / "mine")
    shared.chmod(0o1777)  # /tmp's mode: others cannot remove or rename what is not theirs
    assert check_private(shared / "mine") is None and check_private(shared) is None


def test_a_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a directory owned by another user needs root (chown)")
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, 54321, 54321)
    problem = check_private(theirs)
    assert problem is not None and problem.startswith(f"--infer-cache-dir {theirs}: owned by uid 54321, not by you")


def test_a_fully_populated_read_only_cache_is_read_without_a_lock(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    EngineCache(root).get_or_build(KEY, write_engine, what="model.onnx of Net")
    for lock in root.rglob("*.lock"):
        lock.unlink()  # a cache shipped in an image carries no lock files
    built = []
    with read_only(root), read_only(root / KEY[:2]), read_only(root / KEY[:2] / KEY):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a hit says nothing
            entry = EngineCache(root).get_or_build(KEY, built.append, what="model.onnx of Net")
    assert entry.hit and built == [] and entry.file("engine.bin").read_bytes() == b"engine" * 100


def test_a_read_only_cache_without_the_entry_builds_in_a_temporary_directory(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    root.mkdir()
    cache = EngineCache(root)
    with read_only(root):
        with pytest.warns(CacheWarning, match=r"engine cache at .* cannot be written .*building x in a temporary directory"):
            entry = cache.get_or_build(KEY, write_engine, what="x")
    assert not entry.hit and entry.file("engine.bin").exists() and root not in entry.path.parents
    cache.close()
    assert not entry.path.exists()


@pytest.mark.parametrize("meta", [
    '{"files": []}', "[]", '{"files": {}}', '{"what": "x"}', "not json", b"\xff\xfe{\x00",
    '{"files": {"engine.bin": 5}}', '{"files": {"../../etc/passwd": "00"}}', "directory",
    "fifo", '{"files": ' + "[" * 100_000 + "]" * 100_000 + "}",  # reading one blocked; parsing the other overflowed
])
def test_any_unreadable_metadata_is_rebuilt_with_a_warning(tmp_path: Path, meta: str | bytes) -> None:
    cache = EngineCache(tmp_path)
    entry = cache.get_or_build(KEY, write_engine, what="x")
    meta_path = entry.path / "meta.json"
    meta_path.unlink()
    if meta == "directory":
        meta_path.mkdir()
    elif meta == "fifo":
        os.mkfifo(meta_path)
    elif isinstance(meta, bytes):
        meta_path.write_bytes(meta)
    else:
        meta_path.write_text(meta)
    with pytest.warns(CacheWarning, match="is unusable"):
        rebuilt = cache.get_or_build(KEY, write_engine, what="x")
    assert not rebuilt.hit and json.loads(meta_path.read_text())["files"].keys() == {"engine.bin"}
    assert cache.get_or_build(KEY, write_engine, what="x").hit


def test_an_entry_that_is_a_file_is_rebuilt(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    cache.entry_dir(KEY).parent.mkdir(parents=True)
    cache.entry_dir(KEY).write_text("junk")
    with pytest.warns(CacheWarning, match="not a directory"):
        assert not cache.get_or_build(KEY, write_engine, what="x").hit
    assert cache.get_or_build(KEY, write_engine, what="x").hit


def test_no_cache_builds_once_per_key_and_close_removes_everything(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path / "cache", enabled=False)
    built = []

    def build(directory: Path) -> None:
        built.append(directory)
        write_engine(directory)

    first = cache.get_or_build(KEY, build, what="x")
    again = cache.get_or_build(KEY, build, what="x")  # the export a later stage asks for again
    scratch = cache.scratch_dir("inductor")
    assert len(built) == 1 and first.path == again.path and not first.hit and scratch.is_dir()
    cache.close()
    assert not first.path.exists() and not scratch.exists() and not (tmp_path / "cache").exists()


def test_locks_live_in_the_cache(tmp_path: Path) -> None:
    lock = lock_path(tmp_path, "baseline", "/repo/ci/baseline.json")
    assert lock.parent == tmp_path / "locks" and lock.name.startswith("baseline-") and mode_of(lock.parent) == 0o700


def test_a_user_chosen_inductor_directory_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "users-choice"))
    assert point_inductor_cache(tmp_path / "ours") == tmp_path / "users-choice"
    assert not (tmp_path / "ours").exists()


def test_inductor_caches_in_our_directory_even_when_dynamo_was_imported_first(tmp_path: Path) -> None:
    # Importing torch._dynamo sets TORCHINDUCTOR_CACHE_DIR to Inductor's default (/tmp/torchinductor_<user>):
    # the plugin used to take that for the user's choice and never point Inductor at its cache.
    code = ("import os, sys, torch, torch._dynamo\nfrom pathlib import Path\n"
            "from pytest_infercheck.cache_dirs import point_inductor_cache\n"
            "assert os.environ['TORCHINDUCTOR_CACHE_DIR'].endswith('torchinductor_' + os.environ['EXPECTED_USER'])\n"
            "target = Path(sys.argv[1])\n"
            "assert point_inductor_cache(target) == target\n"
            "torch.compile(lambda x: (x * 1.25).tanh() - 0.5)(torch.randn(32))\n"
            "print(sorted(os.listdir(target)))\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    import getpass

    env.update(PYTHONPATH=str(REPO), EXPECTED_USER=getpass.getuser())
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "inductor")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fxgraph" in run.stdout  # the compiled graph was cached here
    assert any(path.suffix in (".so", ".py") for path in (tmp_path / "inductor").rglob("*"))

"""The cache's directory is private, a read-only cache is read, bad metadata is rebuilt, nothing is left behind.

Real directories, real modes and owners (chown needs root, which CI containers run as), and
``chattr +i`` for read-only directories that even root cannot write (tests/readonly.py).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from pytest_infercheck.backends.cache import CacheWarning, EngineCache
from pytest_infercheck.core.cache_dirs import check_private, lock_path, point_inductor_cache, resolve_cache_dir
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
        f"--infer-cache-dir {shared}: it is writable by every user (mode 777), who could plant compiled code the "
        f"cache would load and run: chmod go-w {shared}, or give --infer-cache-dir a private directory")
    (shared / "mine").mkdir(mode=0o700)
    assert f"its parent {shared} is writable by every user (mode 777, no sticky bit)" in check_private(shared / "mine")
    shared.chmod(0o1777)  # /tmp's mode: others cannot remove or rename what is not theirs
    assert check_private(shared / "mine") is None


def test_a_sticky_world_writable_cache_directory_is_refused(tmp_path: Path) -> None:
    """Issue 23: the sticky bit stops others removing your entries, not adding their own (a planted
    precompiled Inductor pickle ran in root's next run): /tmp itself is no cache directory."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    problem = check_private(shared)
    assert problem == (f"--infer-cache-dir {shared}: it is writable by every user (mode 1777), who could plant "
                       f"compiled code the cache would load and run: chmod go-w {shared}, or give --infer-cache-dir "
                       f"a private directory")


def needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a directory to a group of other users needs root (chown)")


@pytest.mark.parametrize("mode", [0o2770, 0o770, 0o3770])
def test_a_cache_directory_writable_by_a_group_of_others_is_refused(tmp_path: Path, mode: int) -> None:
    """Issue 23: a group member planted an ONNX entry under the victim's key. gid 12345 names no
    group here, so its members are unknown: treated as others."""
    needs_root()
    shared = tmp_path / "team"
    shared.mkdir()
    os.chown(shared, os.geteuid(), 12345)
    shared.chmod(mode)
    assert check_private(shared) == (
        f"--infer-cache-dir {shared}: it is writable by group gid 12345 (mode {mode:o}), who could plant compiled "
        f"code the cache would load and run: chmod go-w {shared}, or give --infer-cache-dir a private directory")
    shared.chmod(mode & ~0o020)
    assert check_private(shared) is None


def test_a_group_writable_parent_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    """A group member can rename a directory in a group-writable parent away and put their own in its place."""
    needs_root()
    team = tmp_path / "team"
    team.mkdir()
    (team / "mine").mkdir(mode=0o700)
    os.chown(team, os.geteuid(), 12345)
    team.chmod(0o2775)
    assert check_private(team / "mine") == (
        f"--infer-cache-dir {team / 'mine'}: its parent {team} is writable by group gid 12345 (mode 2775, no sticky "
        f"bit), who could replace the cache and the compiled code it holds: chmod go-w {team}, or give "
        f"--infer-cache-dir a private directory")
    team.chmod(0o3775)  # sticky: they cannot rename what is not theirs
    assert check_private(team / "mine") is None


def test_a_group_of_nobody_but_you_may_write(tmp_path: Path) -> None:
    """umask 002 with a user-private group (Debian, Ubuntu) makes every directory group-writable:
    a group whose only member is you is not another group."""
    needs_root()
    import grp
    import pwd

    private = {group.gr_gid for group in grp.getgrall() if not set(group.gr_mem) - {"root"}} - {
        user.pw_gid for user in pwd.getpwall() if user.pw_uid != 0}
    if not private:
        pytest.skip("no group here has root as its only member")
    mine = tmp_path / "mine"
    mine.mkdir()
    os.chown(mine, 0, min(private))
    mine.chmod(0o2770)
    assert check_private(mine) is None


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
            "from pytest_infercheck.core.cache_dirs import point_inductor_cache\n"
            "assert os.environ['TORCHINDUCTOR_CACHE_DIR'].endswith('torchinductor_' + os.environ['EXPECTED_USER'])\n"
            "target = Path(sys.argv[1])\n"
            "assert point_inductor_cache(target) == target\n"
            # A matrix product alone: Inductor calls ATen's mm, so the graph's wrapper is all it writes and no
            # C++ is compiled (a pointwise kernel first made Inductor compile and load six probes of the
            # CPU's vector extensions into the fresh directory: 9 s of the test's 15 s).
            "torch.compile(lambda a, b: a @ b)(torch.randn(8, 8), torch.randn(8, 8))\n"
            "print(sorted(os.listdir(target)))\n")
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    import getpass

    env.update(PYTHONPATH=str(REPO), EXPECTED_USER=getpass.getuser())
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "inductor")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "fxgraph" in run.stdout  # the compiled graph was cached here
    assert any(path.suffix in (".so", ".py") for path in (tmp_path / "inductor").rglob("*"))


SHARED_DIR_TEST = '''
import pytest
from fixtures.models import dynamic_mlp
import torch

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_mlp(infercheck):
    torch.manual_seed(0)
    infercheck(dynamic_mlp(), torch.randn(2, 64))
'''


def test_a_cache_directory_others_can_write_is_a_usage_error(run_plugin, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # /tmp's mode
    result = run_plugin(SHARED_DIR_TEST, f"--infer-cache-dir={shared}", cache=False)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--infer-cache-dir {shared}: it is writable by every user (mode 1777), who could "
                                 f"plant compiled code the cache would load and run: chmod go-w {shared}, or give "
                                 f"--infer-cache-dir a private directory"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str() and not any(shared.iterdir())


def plant(path: Path, *, uid: int = 12345, gid: int = -1) -> None:
    """What another user's file looks like: owned by them (``uid``) or writable by their group (``gid``)."""
    if gid != -1:
        os.chown(path, -1, gid)
        path.chmod(mode_of(path) | 0o020)
    else:
        os.chown(path, uid, -1)


@pytest.mark.parametrize("how", [{"uid": 12345}, {"gid": 12345}], ids=["owned-by-another-user", "group-writable"])
def test_an_entry_file_not_yours_alone_is_never_read_and_is_rebuilt(tmp_path: Path, how: dict) -> None:
    needs_root()
    cache = EngineCache(tmp_path / "cache")
    entry = cache.get_or_build(KEY, write_engine, what="x")
    (entry.path / "engine.bin").write_bytes(b"planted")  # what the other user put there, checksums and all
    (entry.path / "meta.json").unlink()
    EngineCache._write_meta(entry.path, "x")
    plant(entry.path / "engine.bin", **how)
    who = "owned by uid 12345, not by you" if "uid" in how else "writable by group gid 12345 (mode 664)"
    with pytest.warns(CacheWarning, match=f"is unusable \\(not yours alone, so never loaded: .*engine.bin is {re.escape(who)}"):
        rebuilt = cache.get_or_build(KEY, write_engine, what="x")
    assert not rebuilt.hit and rebuilt.path == entry.path  # set aside and rebuilt in place
    assert rebuilt.file("engine.bin").read_bytes() == b"engine" * 100
    assert rebuilt.file("engine.bin").stat().st_uid == os.geteuid() and not mode_of(rebuilt.file("engine.bin")) & 0o022
    assert cache.get_or_build(KEY, write_engine, what="x").hit
    assert [p.name for p in entry.path.parent.iterdir() if "discarded" in p.name] == []


def test_an_entry_directory_of_another_user_is_not_read_even_where_it_cannot_be_removed(tmp_path: Path) -> None:
    needs_root()
    cache = EngineCache(tmp_path / "cache")
    entry = cache.get_or_build(KEY, write_engine, what="x")
    os.chown(entry.path, 12345, -1)
    with read_only(entry.path):  # immutable: it cannot be renamed away either
        with pytest.warns(CacheWarning, match=r"is unusable \(not yours alone.* is owned by uid 12345.*cannot be "
                                              r"removed: building x in a temporary directory \(remove .* by hand\)"):
            built = cache.get_or_build(KEY, write_engine, what="x")
    assert not built.hit and entry.path not in (built.path, *built.path.parents)
    cache.close()


def test_a_shard_directory_of_another_user_is_not_trusted(tmp_path: Path) -> None:
    """Whoever owns ``<cache>/ab`` can swap an entry in it between its check and its load."""
    needs_root()
    cache = EngineCache(tmp_path / "cache")
    entry = cache.get_or_build(KEY, write_engine, what="x")
    os.chown(entry.path.parent, 12345, -1)
    with pytest.warns(CacheWarning, match=r"is not loaded: .* is owned by uid 12345.*building x in a temporary"):
        built = cache.get_or_build(KEY, write_engine, what="x")
    assert not built.hit and tmp_path not in built.path.parents
    assert cache.get_or_build(KEY, write_engine, what="x").path == built.path  # built once this session
    cache.close()


def test_entries_are_written_without_group_or_other_write_bits_whatever_the_umask(tmp_path: Path) -> None:
    """umask 002 makes new files group-writable: the cache would then refuse its own entries."""
    saved = os.umask(0o002)
    try:
        cache = EngineCache(tmp_path / "cache")
        entry = cache.get_or_build(KEY, write_engine, what="x")
    finally:
        os.umask(saved)
    assert [p for p in (entry.path.parent, *entry.path.parent.rglob("*")) if mode_of(p) & 0o022] == []
    assert cache.get_or_build(KEY, write_engine, what="x").hit


def test_a_compiler_cache_holding_another_users_file_is_not_used(tmp_path: Path) -> None:
    """Inductor loads what it finds in its cache directory (pickled graphs, .so files) unasked."""
    needs_root()
    root = tmp_path / "cache"
    (root / "inductor" / "fxgraph" / "xy").mkdir(parents=True)
    planted = root / "inductor" / "fxgraph" / "xy" / "entry"
    planted.write_bytes(b"a pickle")
    os.chown(planted, 12345, -1)
    cache = EngineCache(root)
    with pytest.warns(CacheWarning, match=r"compiler cache .*inductor is not used: .*entry is owned by uid 12345"):
        scratch = cache.scratch_dir("inductor")
    assert root not in scratch.parents and cache.scratch_dir("inductor") == scratch  # checked once per process
    cache.close()
    planted.unlink()
    assert EngineCache(root).scratch_dir("inductor") == root / "inductor"


def onnx_session(run_plugin, cache: Path, report: Path, passed: int = 1) -> tuple[dict, str]:
    """One pytest run of the plugin on ``cache``: the report's item and the terminal output."""
    result = run_plugin(SHARED_DIR_TEST, f"--infer-cache-dir={cache}", f"--infer-report={report}", cache=False)
    result.assert_outcomes(passed=passed)
    [item] = json.loads(report.read_text())["results"]
    return item, result.stdout.str()


def test_an_onnx_entry_planted_by_another_user_is_not_a_hit(run_plugin, tmp_path: Path) -> None:
    """Issue 23: a group member planted an ONNX entry under the victim's key and it loaded as a hit.
    Planted here by giving a real entry's files to uid 12345 (the content would be theirs)."""
    needs_root()
    cache, report = tmp_path / "cache", tmp_path / "r.json"
    cold, _ = onnx_session(run_plugin, cache, report)
    planted = [path for path in cache.rglob("model.onnx")]
    assert cold["cache"]["onnx"] == "miss" and len(planted) == 1
    os.chown(planted[0], 12345, -1)
    warm, out = onnx_session(run_plugin, cache, report)
    assert warm["cache"]["onnx"] == "miss"  # rebuilt, not loaded
    assert f"{planted[0]} is owned by uid 12345, not by you" in out and "Traceback" not in out
    assert planted[0].stat().st_uid == os.geteuid()  # the rebuilt entry is ours again
    again, _ = onnx_session(run_plugin, cache, report)
    assert again["cache"]["onnx"] == "hit"


def test_a_read_only_fully_populated_cache_serves_a_real_run(run_plugin, tmp_path: Path) -> None:
    """docs/reliability.md says a read-only cache (a CI image, a read-only mount) is served: every item
    used to fail with PermissionError on locks/cpu-work.lock, which the CPU locks now take elsewhere."""
    from contextlib import ExitStack

    cache, report = tmp_path / "cache", tmp_path / "r.json"
    onnx_session(run_plugin, cache, report)
    for lock in cache.rglob("*.lock"):
        lock.unlink()  # a cache shipped in an image carries no lock files
    with ExitStack() as stack:
        for directory in sorted(p for p in (cache, *cache.rglob("*")) if p.is_dir()):
            stack.enter_context(read_only(directory))
        warm, out = onnx_session(run_plugin, cache, report)
    assert set(warm["cache"].values()) == {"hit"} and "PermissionError" not in out
    assert list(cache.rglob("*.lock")) == []  # nothing was written into it


def test_a_cache_directory_that_cannot_be_created_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A parent the user may not write: the message said "cannot use it (No such file or directory)", the stat's
    error after the swallowed mkdir's. Root passes permission checks (this suite runs as root), so mkdir's own
    refusal stands in for the parent's mode: a fake of the one call, named as such."""
    from pytest_infercheck.core.cache_dirs import check_private, resolve_cache_dir

    parent = tmp_path / "read-only-parent"
    parent.mkdir()

    def refused(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(parent / "cache"))

    monkeypatch.setattr(Path, "mkdir", refused)
    path = resolve_cache_dir(str(parent / "cache"), None)
    assert check_private(path) == f"--infer-cache-dir {parent / 'cache'}: cannot create it (Permission denied)"
    monkeypatch.undo()
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    below_a_file = resolve_cache_dir(str(blocked / "cache"), None)  # real: a file where a folder must be
    assert check_private(below_a_file) == (f"--infer-cache-dir {blocked / 'cache'}: cannot create it (Not a directory)")

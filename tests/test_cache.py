"""The engine cache: build once, reuse, rebuild a corrupted entry with a warning, never a half file."""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import time
from pathlib import Path

import pytest

from pytest_infercheck.backends.cache import CacheWarning, EngineCache, cache_key


def _writer(directory: Path) -> None:
    (directory / "engine.bin").write_bytes(b"x" * 1000)


def test_key_is_stable_and_sensitive() -> None:
    assert cache_key(a=1, b=[1, 2]) == cache_key(b=[1, 2], a=1)
    assert cache_key(a=1) != cache_key(a=2)


def test_build_once_then_hit(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    builds = []

    def build(directory: Path) -> None:
        builds.append(directory)
        _writer(directory)

    first = cache.get_or_build("k" * 40, build, what="test")
    second = cache.get_or_build("k" * 40, build, what="test")
    assert (first.hit, second.hit) == (False, True)
    assert len(builds) == 1
    assert second.file("engine.bin").read_bytes() == b"x" * 1000


def test_corrupted_entry_is_rebuilt_with_a_warning(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    entry = cache.get_or_build("c" * 40, _writer, what="model.onnx of Net")
    entry.file("engine.bin").write_bytes(b"truncated")
    with pytest.warns(CacheWarning, match=r"model.onnx of Net .*\(engine.bin does not match its checksum\)"):
        rebuilt = cache.get_or_build("c" * 40, _writer, what="model.onnx of Net")
    assert not rebuilt.hit
    assert rebuilt.file("engine.bin").read_bytes() == b"x" * 1000


def test_an_entry_its_caller_finds_stale_is_rebuilt_silently(tmp_path: Path, recwarn) -> None:
    """Code a key cannot cover (a precompiled function's traced helpers) is checked by ``stale``."""
    cache = EngineCache(tmp_path)
    outdated: list[str] = []

    def stale(directory: Path):
        return outdated[0] if outdated else None

    assert not cache.get_or_build("s" * 40, _writer, what="x", stale=stale).hit
    assert cache.get_or_build("s" * 40, _writer, what="x", stale=stale).hit
    outdated.append("helpers.py lines 3-5 changed")
    rebuilt = cache.get_or_build("s" * 40, _writer, what="x", stale=stale)
    assert not rebuilt.hit and rebuilt.file("engine.bin").read_bytes() == b"x" * 1000
    assert not [w for w in recwarn if issubclass(w.category, CacheWarning)]  # a model change, not a fault


def test_interrupted_write_is_not_an_entry(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path)
    half = cache.entry_dir("d" * 40)
    half.mkdir(parents=True)
    (half / "engine.bin").write_bytes(b"partial")  # no meta.json: the writer died
    with pytest.warns(CacheWarning, match="interrupted write"):
        entry = cache.get_or_build("d" * 40, _writer, what="x")
    assert not entry.hit and entry.file("engine.bin").read_bytes() == b"x" * 1000


def test_disabled_cache_always_builds(tmp_path: Path) -> None:
    cache = EngineCache(tmp_path, enabled=False)
    assert not cache.get_or_build("e" * 40, _writer, what="x").hit
    assert not cache.get_or_build("e" * 40, _writer, what="x").hit
    assert not any(tmp_path.iterdir())


def _race(root: str, counter: str) -> None:
    def build(directory: Path) -> None:
        with open(counter, "a") as handle:
            handle.write("built\n")
        _writer(directory)

    EngineCache(Path(root)).get_or_build("f" * 40, build, what="x")


def test_parallel_processes_build_once(tmp_path: Path) -> None:
    counter = tmp_path / "count.txt"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_race, args=(str(tmp_path / "cache"), str(counter))) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert all(worker.exitcode == 0 for worker in workers)
    assert counter.read_text().count("built") == 1


def _take_compile_lock(root: str, key: str, log: str, ready: "multiprocessing.synchronize.Event") -> None:
    ready.set()
    with EngineCache(Path(root)).compile_lock(key):
        _append(Path(log), "second worker compiles")


def _append(log: Path, line: str) -> None:
    """Written and closed before the caller goes on: the order in the file is the order of the calls."""
    with open(log, "a") as handle:
        handle.write(line + "\n")


def _blocked_on_a_lock(pid: int) -> bool:
    """Whether ``pid`` waits for an flock now: /proc/locks lists a blocked waiter as ``N: -> FLOCK ... pid``."""
    return any(line.split()[1] == "->" and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines() if len(line.split()) > 5)


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks to see a process wait")
def test_a_second_worker_waits_for_the_first_compile_of_the_same_engine(tmp_path: Path) -> None:
    """Inductor keeps its own cache: the lock is what makes a second worker load the first's engine.

    The order is read from a file each side writes synchronously (a multiprocessing queue hands its
    items to a feeder thread, so two processes' puts can arrive in either order), and the second
    worker is seen blocked on the lock in /proc/locks, however slowly a busy machine starts it.
    """
    cache, key, log = EngineCache(tmp_path / "cache"), "c" * 40, tmp_path / "order.log"
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    with cache.compile_lock(key):
        other = context.Process(target=_take_compile_lock, args=(str(tmp_path / "cache"), key, str(log), ready))
        other.start()
        assert ready.wait(timeout=300), "the second worker did not start"
        deadline = time.monotonic() + 300
        while not _blocked_on_a_lock(other.pid) and other.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _blocked_on_a_lock(other.pid), "the second worker did not wait for the compile lock"
        _append(log, "first worker compiled")
    other.join(timeout=300)
    assert other.exitcode == 0
    assert log.read_text().splitlines() == ["first worker compiled", "second worker compiles"]
    with cache.compile_lock("d" * 40):  # another engine: no wait
        pass


def test_the_compile_lock_never_stops_a_build_where_nothing_is_shared(tmp_path: Path) -> None:
    from readonly import read_only

    with EngineCache(tmp_path, enabled=False).compile_lock("e" * 40):
        pass
    root = tmp_path / "cache"
    root.mkdir()
    with read_only(root):
        with EngineCache(root).compile_lock("f" * 40):  # a cache that cannot be written: build unlocked
            compiled = True
    assert compiled

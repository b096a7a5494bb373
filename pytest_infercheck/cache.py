"""On-disk cache for exported, converted, quantized and compiled artifacts.

An entry is a directory ``<root>/<key[:2]>/<key>/`` holding the artifact files and a
``meta.json`` written last with each file's sha256.  Writers build the entry in a temporary
directory beside it and ``os.replace`` it into place under an exclusive ``flock``, so a reader in
another xdist worker sees a whole entry or none.  A complete entry is read without the lock, so a
read-only cache (a CI image, a read-only mount) serves its entries.  An entry whose files or
metadata are unusable is reported with a :class:`CacheWarning` and rebuilt; where the cache
cannot be written, the rebuild goes to a temporary directory removed by :meth:`EngineCache.close`.

The cache holds compiled code that is loaded and run (Inductor's ``.so`` files, AOTInductor
packages, TensorRT engines), so its directory must be private: see ``cache_dirs.py``.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from .codec import load_json
from .files import creation_problem, file_lock

META = "meta.json"
META_MAX_BYTES = 2**20  # a file list and a description: far below this; more is not a meta.json the cache wrote


class CacheWarning(UserWarning):
    """A cache entry was unusable and is being rebuilt."""


def cache_key(**parts: Any) -> str:
    """A stable hex key from named parts (strings, numbers, nested lists and dicts)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class CachedEntry:
    path: Path
    hit: bool  # False when this call built it

    def file(self, name: str) -> Path:
        return self.path / name


class EngineCache:
    """``get_or_build(key, build)``: the directory of a complete entry, built once across workers.

    Call :meth:`close` at session end: it removes the temporary directories this cache made
    (``--infer-no-cache`` builds, rebuilds a read-only cache could not store, Inductor's scratch).
    """

    def __init__(self, root: Optional[Path], enabled: bool = True) -> None:
        self.enabled = enabled and root is not None
        self.root = Path(root) if root is not None else None
        self._temporary: list[Path] = []
        self._uncached: dict[str, Path] = {}  # key -> this session's build, when the cache is off

    def entry_dir(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def get_or_build(self, key: str, build: Callable[[Path], None], *, what: str,
                     stale: Optional[Callable[[Path], Optional[str]]] = None) -> CachedEntry:
        """Return the entry for ``key``; if absent or unusable, ``build(directory)`` fills a new one.

        ``stale(directory)`` names what outdated a complete entry (code its key cannot cover, such
        as a precompiled function's traced sources), or None: a stale entry is rebuilt, silently,
        as a changed model's would be.

        With the cache disabled, ``build`` fills a temporary directory, once per key in this
        session (a second request for the same artifact reuses it); :meth:`close` removes it.
        """
        if not self.enabled:
            if key not in self._uncached:
                self._uncached[key] = self._build_temporary(build, prefix="infercheck-nocache-")
            return CachedEntry(self._uncached[key], hit=False)
        final = self.entry_dir(key)
        if self._verify(final) is None and not (stale and stale(final)):  # complete entries are never modified: no lock needed to read one
            return CachedEntry(final, hit=True)
        try:
            return self._build_locked(key, final, build, what, stale)
        except OSError as err:
            if self._writable(final.parent):
                raise  # the build itself failed: not a cache problem
            warnings.warn(CacheWarning(f"engine cache at {self.root} cannot be written ({err.strerror or err}); "
                                       f"building {what} in a temporary directory"))
            return CachedEntry(self._build_temporary(build, prefix="infercheck-uncached-"), hit=False)

    @contextmanager
    def compile_lock(self, key: str) -> Iterator[None]:
        """Held while a compiler that keeps its own cache (Inductor) builds ``key``: a second worker
        asking for the same engine waits and then finds it there, instead of compiling it alongside.
        No lock with the cache off or where the cache cannot be written (nothing is shared then)."""
        with ExitStack() as stack:
            if self.enabled:
                try:
                    stack.enter_context(file_lock(self._lock_path(key)))
                except OSError:
                    pass  # a cache that cannot be written shares nothing: build unlocked
            yield

    def _build_locked(self, key: str, final: Path, build: Callable[[Path], None], what: str,
                      stale: Optional[Callable[[Path], Optional[str]]]) -> CachedEntry:
        with file_lock(self._lock_path(key)):
            problem = self._verify(final)  # again, under the lock: another worker may have built it
            outdated = stale(final) if problem is None and stale is not None else None
            if problem is None and outdated is None:
                return CachedEntry(final, hit=True)
            if os.path.lexists(final):
                if problem is not None:
                    warnings.warn(CacheWarning(f"engine cache entry for {what} at {final} is unusable ({problem}); rebuilding"))
                _remove(final)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            try:
                build(staging)
                self._write_meta(staging, what)
                os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return CachedEntry(final, hit=False)

    def _lock_path(self, key: str) -> Path:
        """The lock a builder of ``key`` holds: beside the entry, so only a writable cache has one."""
        return self.entry_dir(key).parent / f"{key}.lock"

    def scratch_dir(self, name: str) -> Path:
        """``<root>/<name>`` with the cache on; a temporary directory removed by :meth:`close` with it off.

        For caches other libraries keep themselves (Inductor's): ``point_inductor_cache(cache.scratch_dir("inductor"))``.
        """
        if self.enabled and self.root is not None:
            path = self.root / name
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            return path
        return self._temporary_dir(prefix=f"infercheck-{name}-")

    def close(self) -> None:
        """Remove every temporary directory this cache made; the persistent entries stay."""
        for path in self._temporary:
            shutil.rmtree(path, ignore_errors=True)
        self._temporary.clear()
        self._uncached.clear()

    def _temporary_dir(self, prefix: str) -> Path:
        if not self._temporary:
            atexit.register(self.close)  # in case the session ends without calling close()
        path = Path(tempfile.mkdtemp(prefix=prefix))
        self._temporary.append(path)
        return path

    def _build_temporary(self, build: Callable[[Path], None], prefix: str) -> Path:
        directory = self._temporary_dir(prefix)
        build(directory)
        return directory

    @staticmethod
    def _writable(directory: Path) -> bool:
        existing = next((p for p in (directory, *directory.parents) if p.is_dir()), None)
        return existing is not None and creation_problem(existing) is None

    @staticmethod
    def _write_meta(directory: Path, what: str) -> None:
        files = {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}
        (directory / META).write_text(json.dumps({"what": what, "files": files}, indent=1), encoding="utf-8")

    @staticmethod
    def _verify(directory: Path) -> Optional[str]:
        """None when the entry is complete and intact, else why not (any shape of bad metadata included)."""
        if not os.path.lexists(directory):
            return "missing"
        if directory.is_symlink() or not directory.is_dir():
            return "not a directory"
        meta_path = directory / META
        if not os.path.lexists(meta_path):
            return "no meta.json (an interrupted write)"
        try:
            files = _listed_files(load_json(meta_path, max_bytes=META_MAX_BYTES))  # the one bounded reader
        except (OSError, ValueError) as err:  # a directory or FIFO, unreadable, not UTF-8, not JSON, too deep, wrong shape
            return f"meta.json unreadable: {err}"
        for name, digest in files.items():
            path = directory / name
            if path.is_symlink() or not path.is_file():
                return f"{name} missing"
            if file_sha256(path) != digest:
                return f"{name} does not match its checksum"
        return None


def _listed_files(meta: Any) -> dict[str, str]:
    """The ``files`` table of meta.json, checked: plain file names to hex digests, at least one."""
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(files, dict) or not files:
        raise ValueError(f"'files' is {type(files).__name__ if files is not None else 'absent'}, "
                         "expected a non-empty table of file names and checksums")
    for name, digest in files.items():
        if not isinstance(digest, str) or not name or name != Path(name).name or name in (".", "..", META):
            raise ValueError(f"bad entry {name!r}: {digest!r}")
    return files


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)

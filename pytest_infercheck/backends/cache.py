"""On-disk cache for exported, converted, quantized and compiled artifacts.

An entry is a directory ``<root>/<key[:2]>/<key>/`` holding the artifact files and a
``meta.json`` written last with each file's sha256.  Writers build the entry in a temporary
directory beside it and ``os.replace`` it into place under an exclusive ``flock``, so a reader in
another xdist worker sees a whole entry or none.  A complete entry is read without the lock, so a
read-only cache (a CI image, a read-only mount) serves its entries.  An entry whose files or
metadata are unusable is reported with a :class:`CacheWarning` and rebuilt; where the cache
cannot be written, the rebuild goes to a temporary directory removed by :meth:`EngineCache.close`.

The cache holds compiled code that is loaded and run (Inductor's ``.so`` files, pickled
precompiled functions, AOTInductor packages, TensorRT engines), so its directory must be private
(``cache_dirs.check_private``) and every entry is checked before it is read: its directory, the
directory above it and every file in it owned by this user and writable by no other user or group
(``cache_dirs.untrusted_tree``).  A private directory today may hold what another user planted
while it was open; such an entry is never loaded: it is set aside and rebuilt, or, where it cannot
be moved, built in a temporary directory.  Entries are written without group or other write bits
whatever the umask, so that a group-writable umask does not make the cache distrust its own entries.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import secrets
import shutil
import stat
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..core.cache_dirs import untrusted_path, untrusted_tree
from ..core.codec import load_json
from ..core.files import creation_problem, file_lock

META = "meta.json"
META_MAX_BYTES = 2**20  # a file list and a description: far below this; more is not a meta.json the cache wrote


class CacheWarning(UserWarning):
    """A cache entry was unusable and is being rebuilt."""


class DamagedEntry(ValueError):
    """Raised by a ``stale`` callback for a side file of an entry it cannot read: the entry is
    unusable (rebuilt with a warning), not merely outdated (rebuilt silently)."""


class _StuckEntry(OSError):
    """An unusable entry that cannot be moved out of the way (someone else's, in a directory not ours)."""


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
        self._scratch: dict[str, Path] = {}  # name -> the checked scratch directory (scratch_dir)

    def private(self) -> "EngineCache":
        """A cache that neither reads nor writes entries, as with --infer-no-cache, for a model whose
        identity is not known (model_identity.py); this cache's close() still removes its directories."""
        private = EngineCache(None, enabled=False)
        private._temporary = self._temporary
        return private

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
            return CachedEntry(self._build_once(key, build, prefix="infercheck-nocache-"), hit=False)
        final = self.entry_dir(key)
        foreign = self._untrusted_parent(final.parent)
        if foreign is not None:  # whoever can write there can swap the entry between our check and its load
            return CachedEntry(self._build_once(key, build, prefix="infercheck-untrusted-", warning=(
                f"engine cache entry for {what} at {final} is not loaded: {foreign}; building {what} in a temporary "
                f"directory (remove {final.parent} to cache it again)")), hit=False)
        if self._check(final, stale) == (None, None):  # complete entries are never modified: no lock needed to read one
            return CachedEntry(final, hit=True)
        try:
            return self._build_locked(key, final, build, what, stale)
        except _StuckEntry as err:
            return CachedEntry(self._build_once(key, build, prefix="infercheck-untrusted-", warning=(
                f"engine cache entry for {what} at {final} is unusable ({err}) and cannot be removed: building {what} "
                f"in a temporary directory (remove {final} by hand)")), hit=False)
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
        # 0700 whatever the umask: a shard others could write is one no entry is read from (_untrusted_parent)
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._entry_lock(key):
            problem, outdated = self._check(final, stale)  # again, under the lock: another worker may have built it
            if problem is None and outdated is None:
                return CachedEntry(final, hit=True)
            if os.path.lexists(final):
                _set_aside(final, problem or outdated or "outdated")
                if problem is not None:
                    warnings.warn(CacheWarning(f"engine cache entry for {what} at {final} is unusable ({problem}); rebuilding"))
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            try:
                build(staging)
                self._write_meta(staging, what, key)
                _drop_write_bits(staging)
                os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return CachedEntry(final, hit=False)

    @contextmanager
    def _entry_lock(self, key: str) -> Iterator[None]:
        """The builders' lock of ``key``; a lock path that is no regular file (a FIFO, a directory) makes
        the entry stuck (built in a temporary directory with a warning) instead of failing the item."""
        path = self._lock_path(key)
        with ExitStack() as stack:
            try:
                stack.enter_context(file_lock(path))
            except OSError as err:
                if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
                    raise _StuckEntry(f"its lock file {path} is not a regular file ({err.strerror or err})") from None
                raise
            yield

    def _lock_path(self, key: str) -> Path:
        """The lock a builder of ``key`` holds: beside the entry, so only a writable cache has one."""
        return self.entry_dir(key).parent / f"{key}.lock"

    def scratch_dir(self, name: str) -> Path:
        """``<root>/<name>`` with the cache on; a temporary directory removed by :meth:`close` with it off.

        For caches other libraries keep themselves (Inductor's): ``point_inductor_cache(cache.scratch_dir("inductor"))``.
        Those libraries load what they find there (pickles, ``.so`` files) without asking us, so the
        whole tree is checked first, once per process: anything in it that is not this user's alone
        (:func:`untrusted_tree`), or a directory that cannot be made (a read-only cache), sends this
        run's compiles to a temporary directory instead.
        """
        if not (self.enabled and self.root is not None):
            return self._temporary_dir(prefix=f"infercheck-{name}-")
        if name not in self._scratch:
            path = self.root / name
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                problem = untrusted_tree(path)
            except OSError as err:
                problem = f"it cannot be made ({err.strerror or err})"
            if problem is not None:
                warnings.warn(CacheWarning(f"compiler cache {path} is not used: {problem}; compiling in a temporary "
                                           f"directory this run (remove {path} to cache there again)"))
                path = self._temporary_dir(prefix=f"infercheck-{name}-")
            self._scratch[name] = path
        return self._scratch[name]

    def close(self) -> None:
        """Remove every temporary directory this cache made; the persistent entries stay."""
        for path in self._temporary:
            shutil.rmtree(path, ignore_errors=True)
        self._temporary.clear()
        self._uncached.clear()
        self._scratch.clear()

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

    def _build_once(self, key: str, build: Callable[[Path], None], prefix: str, warning: Optional[str] = None) -> Path:
        """A temporary build of ``key``, once per session: a second request for it reuses the first
        (and says nothing: ``warning``, why it is built there, is given with the build)."""
        if key not in self._uncached:
            if warning is not None:
                warnings.warn(CacheWarning(warning))
            self._uncached[key] = self._build_temporary(build, prefix=prefix)
        return self._uncached[key]

    @staticmethod
    def _untrusted_parent(directory: Path) -> Optional[str]:
        """Why the existing directory above an entry is not this user's alone, or None (also when absent)."""
        try:
            return untrusted_path(directory)
        except FileNotFoundError:
            return None

    def _check(self, final: Path, stale: Optional[Callable[[Path], Optional[str]]]) -> tuple[Optional[str], Optional[str]]:
        """(why the entry is unusable, what outdated it): both None for an entry to use as it is."""
        problem = self._verify(final)
        if problem is not None or stale is None:
            return problem, None
        try:
            return None, stale(final)
        except DamagedEntry as err:  # a side file the caller reads (checksums matching) does not parse
            return str(err), None

    @staticmethod
    def _writable(directory: Path) -> bool:
        existing = next((p for p in (directory, *directory.parents) if p.is_dir()), None)
        return existing is not None and creation_problem(existing) is None

    @staticmethod
    def _write_meta(directory: Path, what: str, key: Optional[str] = None) -> None:
        """``key``: the entry's own (its directory's name once in place), so a swapped or moved entry is known."""
        files = {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}
        meta = {"what": what, "key": key or directory.name, "files": files}
        (directory / META).write_text(json.dumps(meta, indent=1), encoding="utf-8")

    @staticmethod
    def _verify(directory: Path) -> Optional[str]:
        """None when the entry is complete and intact, else why not (any shape of bad metadata included)."""
        if not os.path.lexists(directory):
            return "missing"
        if directory.is_symlink() or not directory.is_dir():
            return "not a directory"
        try:
            foreign = untrusted_tree(directory)  # before anything in it is read
        except OSError as err:
            foreign = f"it cannot be checked ({err.strerror or err})"
        if foreign is not None:
            return f"not yours alone, so never loaded: {foreign}"
        meta_path = directory / META
        if not os.path.lexists(meta_path):
            return "no meta.json (an interrupted write)"
        try:
            meta = load_json(meta_path, max_bytes=META_MAX_BYTES)  # the one bounded reader
            files = _listed_files(meta)
        except (OSError, ValueError) as err:  # a directory or FIFO, unreadable, not UTF-8, not JSON, too deep, wrong shape
            return f"meta.json unreadable: {err}"
        owner = meta.get("key", directory.name)  # absent: written before entries named their key
        if owner != directory.name:  # checksums match its own files: another model's engine under this key
            return f"it is the entry of key {str(owner)[:64]!r}, moved or swapped here"
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


def _set_aside(final: Path, why: str) -> None:
    """Move an unusable entry out of ``final`` and delete what can be deleted of it.

    Renamed first, within its own directory (which is ours): another user's files cannot be
    deleted from their directory, nor their directory moved into another one (that rewrites its
    ``..``), but it can be renamed beside itself, so the rebuild still lands in place.  Raises
    :class:`_StuckEntry` when ``final`` cannot be freed.
    """
    aside = final.parent / f".{final.name}.discarded-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        os.rename(final, aside)
    except OSError as err:
        raise _StuckEntry(f"{why}; moving it aside failed: {err.strerror or err}") from None
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)  # what is left (someone else's files) stays hidden and unused
    else:
        aside.unlink(missing_ok=True)


def _drop_write_bits(directory: Path) -> None:
    """No group or other write bit on anything in a new entry (a umask of 002 gives them): an entry
    that others could write is one the cache refuses to load."""
    for path in (directory, *directory.rglob("*")):
        if not path.is_symlink():
            mode = path.stat().st_mode
            if mode & 0o022:
                path.chmod(stat.S_IMODE(mode) & ~0o022)

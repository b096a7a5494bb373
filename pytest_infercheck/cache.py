"""On-disk cache for exported, converted, quantized and compiled artifacts.

An entry is a directory ``<root>/<key[:2]>/<key>/`` holding the artifact files and a
``meta.json`` written last with each file's sha256.  Writers build the entry in a temporary
directory beside it and ``os.replace`` it into place under an exclusive ``flock``, so a reader in
another xdist worker sees a whole entry or none.  An entry whose files do not match their
checksums is reported as corrupt, removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .files import file_lock

META = "meta.json"


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
    """``get_or_build(key, build)``: the directory of a complete entry, built once across workers."""

    def __init__(self, root: Optional[Path], enabled: bool = True) -> None:
        self.enabled = enabled and root is not None
        self.root = Path(root) if root is not None else None

    def entry_dir(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def get_or_build(self, key: str, build: Callable[[Path], None], *, what: str) -> CachedEntry:
        """Return the entry for ``key``; if absent or corrupt, ``build(directory)`` fills a new one.

        With the cache disabled, ``build`` fills a fresh temporary directory every time.
        """
        if not self.enabled:
            directory = Path(tempfile.mkdtemp(prefix="infercheck-nocache-"))
            build(directory)
            return CachedEntry(directory, hit=False)
        final = self.entry_dir(key)
        with file_lock(final.parent / f"{key}.lock"):
            problem = self._verify(final)
            if problem is None:
                return CachedEntry(final, hit=True)
            if final.exists():
                warnings.warn(CacheWarning(f"engine cache entry for {what} at {final} is unusable ({problem}); rebuilding"))
                shutil.rmtree(final, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=final.parent))
            try:
                build(staging)
                self._write_meta(staging, what)
                os.replace(staging, final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            return CachedEntry(final, hit=False)

    @staticmethod
    def _write_meta(directory: Path, what: str) -> None:
        files = {p.name: file_sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}
        (directory / META).write_text(json.dumps({"what": what, "files": files}, indent=1))

    @staticmethod
    def _verify(directory: Path) -> Optional[str]:
        """None when the entry is complete and intact, else why not."""
        meta_path = directory / META
        if not meta_path.exists():
            return "missing" if not directory.exists() else "no meta.json (an interrupted write)"
        try:
            files = json.loads(meta_path.read_text())["files"]
        except (ValueError, KeyError, TypeError) as err:
            return f"meta.json unreadable: {err}"
        for name, digest in files.items():
            path = directory / name
            if not path.is_file():
                return f"{name} missing"
            if file_sha256(path) != digest:
                return f"{name} does not match its checksum"
        return None

"""Where the engine cache lives, why it must be private, and pointing Inductor's cache there.

The cache holds code that is loaded and executed: Inductor's compiled ``.so`` files, AOTInductor
packages, TensorRT engines.  A directory another user can write to lets that user replace them,
so :func:`check_private` refuses one owned by someone else or writable by everyone without the
sticky bit (``/tmp`` itself has it; a directory made in it by someone else is owned by them).
Without pytest's cache provider (``-p no:cacheprovider``) the default is a per-user directory,
``$XDG_CACHE_HOME/pytest-infercheck`` or ``~/.cache/pytest-infercheck``, created with mode 0700.
Nothing here imports torch.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import Optional, Union

INDUCTOR_ENV = "TORCHINDUCTOR_CACHE_DIR"
OPTION = "--infer-cache-dir"


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pytest-infercheck`` (an absolute one, as the XDG spec requires), else ``~/.cache/...``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "pytest-infercheck"
    home = Path(os.path.expanduser("~"))
    if str(home) == "~" or not home.is_absolute():  # no HOME and no passwd entry (some containers)
        return Path(tempfile.gettempdir()) / f"pytest-infercheck-{os.geteuid()}"
    return home / ".cache" / "pytest-infercheck"


def resolve_cache_dir(given: Optional[Union[str, os.PathLike]], pytest_cache_dir: Optional[Path]) -> Path:
    """The engine cache's directory, created: ``given`` (``--infer-cache-dir``), else pytest's, else the user's.

    ``pytest_cache_dir`` is ``Path(config.cache.mkdir("infercheck"))``, or None without the cache
    provider.  A directory made here gets mode 0700 (the default per-user one is tightened to 0700
    if it exists wider); a given one is created 0700 if missing but never chmod-ed.  Call
    :func:`check_private` on the result.
    """
    if given:
        path = Path(os.path.abspath(os.path.expanduser(os.fspath(given))))
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
    if pytest_cache_dir is not None:
        return Path(pytest_cache_dir)
    path = user_cache_dir()
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_uid == os.geteuid() and stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path


def check_private(path: Path) -> Optional[str]:
    """Why ``path`` is not safe for code that will be loaded and run, naming ``--infer-cache-dir``; None if it is.

    Refused: the directory owned by another user (root is trusted: it owns the system anyway), or
    the directory or any ancestor writable by every user without the sticky bit (anyone could
    rename it away and put their own in its place).
    """
    real = Path(os.path.realpath(path))
    try:
        own = real.stat()
    except OSError as err:
        return f"{OPTION} {path}: cannot use it ({err.strerror or err})"
    if not stat.S_ISDIR(own.st_mode):
        return f"{OPTION} {path}: not a directory"
    if own.st_uid not in (os.geteuid(), 0):
        return (f"{OPTION} {path}: owned by {_user_name(own.st_uid)}, not by you; the cache holds compiled code "
                f"that is loaded and run, so it must be yours: give {OPTION} a directory of your own")
    for directory in (real, *real.parents):
        mode = directory.stat().st_mode
        if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
            where = "it" if directory == real else f"its parent {directory}"
            return (f"{OPTION} {path}: {where} is writable by every user (mode {stat.S_IMODE(mode):o}, no sticky bit), "
                    f"so anyone could replace the compiled code the cache holds: chmod o-w {directory}, "
                    f"or give {OPTION} a private directory")
    return None


def _user_name(uid: int) -> str:
    try:
        import pwd

        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def lock_path(cache_root: Path, purpose: str, key: str) -> Path:
    """A lock file for ``purpose`` (``baseline``, ``gpu``) and ``key`` inside the cache, not in the system temp dir.

    Lock files are never deleted (deleting one another process holds breaks the lock), so they
    belong in a directory the user owns and keeps, not in /tmp where they pile up.
    """
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    directory = cache_root / "locks"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory / f"{purpose}-{digest}.lock"


def _torch_default_inductor_dir() -> str:
    """Where Inductor puts its cache when told nothing (``torchinductor_<user>`` in the temp dir)."""
    if "torch" in sys.modules:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        return os.path.abspath(default_cache_dir())
    try:  # the same formula, so that torch is not imported just to compare a path
        user = getpass.getuser()
    except (KeyError, OSError, ModuleNotFoundError):
        user = f"uid_{os.getuid()}"
    return os.path.abspath(os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user)))


def point_inductor_cache(directory: Path) -> Path:
    """Make Inductor (and Triton beneath it) cache in ``directory``; return the directory in effect.

    Importing ``torch._dynamo`` or ``torch._inductor`` writes Inductor's *default* directory into
    ``TORCHINDUCTOR_CACHE_DIR``, so "the variable is set" does not mean the user chose it: a value
    equal to the default is replaced; any other value is the user's choice and is kept.  Inductor
    reads the variable on every lookup, but memoises some results (compiled-module tables keyed by
    path), so those memos are cleared when Inductor is already loaded.
    """
    current = os.environ.get(INDUCTOR_ENV)
    if current and os.path.abspath(current) != _torch_default_inductor_dir():
        return Path(current)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ[INDUCTOR_ENV] = str(directory)
    if "torch._inductor.utils" in sys.modules:
        from torch._inductor.utils import clear_caches

        clear_caches()
    return directory

"""Where the engine cache lives, why it must be private, and pointing Inductor's cache there.

The cache holds code that is loaded and executed: Inductor's compiled ``.so`` files and pickled
precompiled functions, AOTInductor packages, TensorRT engines.  It must be as private as
``~/.ssh``: :func:`check_private` refuses a directory owned by someone else, or one another user
or group can write to (sticky bit or not: the sticky bit only stops others removing *your*
entries, not adding theirs), or below an ancestor such a user can write without the sticky bit
(they could rename the cache away and put their own in its place).  A group that has no member but
you (a user-private group, as with umask 002) is not "another group", as in Debian's OpenSSH.
:func:`untrusted_path` then checks each entry before it is loaded (docs/reliability.md, "Threat model").
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
from functools import lru_cache
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
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError:  # a file or device (/dev/null), below a file, in /proc: check_private says so, one line
            pass
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

    Refused: the directory owned by another user (root is trusted: it owns the system anyway) or
    writable by another user or group, sticky bit or not; any ancestor such a user can write
    without the sticky bit (they could rename the cache away and put their own in its place).
    """
    real = Path(os.path.realpath(path))
    try:
        own = real.stat()
    except OSError as err:
        if not os.path.lexists(real):  # resolve_cache_dir could not create it: say why, not "no such file"
            try:
                real.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as made:
                where = f": {made.filename}" if made.filename and str(made.filename) != str(real) else ""
                return f"{OPTION} {path}: cannot create it ({made.strerror or made}{where})"
            return check_private(path)
        return f"{OPTION} {path}: cannot use it ({err.strerror or err})"
    if not stat.S_ISDIR(own.st_mode):
        return f"{OPTION} {path}: not a directory"
    if own.st_uid not in (os.geteuid(), 0):
        return (f"{OPTION} {path}: owned by {_user_name(own.st_uid)}, not by you; the cache holds compiled code "
                f"that is loaded and run, so it must be yours: give {OPTION} a directory of your own")
    writers = other_writers(own)
    if writers:
        return (f"{OPTION} {path}: it is writable by {writers} (mode {stat.S_IMODE(own.st_mode):o}), who could plant "
                f"compiled code the cache would load and run: chmod go-w {real}, or give {OPTION} a private directory")
    for directory in real.parents:
        info = directory.stat()
        writers = other_writers(info)
        if writers and not info.st_mode & stat.S_ISVTX:
            return (f"{OPTION} {path}: its parent {directory} is writable by {writers} (mode "
                    f"{stat.S_IMODE(info.st_mode):o}, no sticky bit), who could replace the cache and the compiled "
                    f"code it holds: chmod go-w {directory}, or give {OPTION} a private directory")
    return None


def other_writers(info: os.stat_result) -> Optional[str]:
    """Who besides its owner and root may write what ``info`` describes ("every user", "group G"), or None.

    A group-writable file or directory is fine where the group has no member but you: Debian and
    Ubuntu give every user a private group and umask 002, so everything a user makes is group-writable.
    """
    if info.st_mode & stat.S_IWOTH:
        return "every user"
    if info.st_mode & stat.S_IWGRP and _group_has_others(info.st_gid):
        return f"group {_group_name(info.st_gid)}"
    return None


@lru_cache(maxsize=64)
def _group_has_others(gid: int) -> bool:
    """Whether a user other than you and root is in group ``gid``; True for a group the system cannot name."""
    try:
        import grp
        import pwd

        members = set(grp.getgrgid(gid).gr_mem)
        primary = {user.pw_name for user in pwd.getpwall() if user.pw_gid == gid}
        me = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        return True
    return bool((members | primary) - {me, "root"})


def _group_name(gid: int) -> str:
    try:
        import grp

        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except (ImportError, KeyError):
        return f"gid {gid}"


def untrusted_path(path: Path) -> Optional[str]:
    """Why ``path`` (not followed if a symlink) may hold someone else's code, or None: it must be
    owned by you and not writable by another user or group. Checked before anything in the cache is
    loaded.  Root's files are accepted as :func:`check_private` accepts root's directory (a cache
    root prepared in a CI image): root can replace the interpreter itself, so trusting it adds nothing."""
    info = path.lstat()
    if info.st_uid not in (os.geteuid(), 0):
        return f"{path} is owned by {_user_name(info.st_uid)}, not by you"
    writers = None if stat.S_ISLNK(info.st_mode) else other_writers(info)  # a link's own mode means nothing
    if writers:
        return f"{path} is writable by {writers} (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def untrusted_tree(directory: Path) -> Optional[str]:
    """The first reason (:func:`untrusted_path`) ``directory`` or anything below it is not yours alone, or None."""
    problem = untrusted_path(directory)
    if problem is not None or directory.is_symlink():
        return problem
    for parent, dirs, files in os.walk(directory):
        for name in (*dirs, *files):
            try:
                problem = untrusted_path(Path(parent) / name)
            except FileNotFoundError:
                continue  # removed meanwhile (a compiler's temporary file): nothing left to load
            if problem is not None:
                return problem
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
    directory = cache_root / "locks"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    return directory / lock_name(purpose, key)


def lock_name(purpose: str, key: str) -> str:
    """The file name of ``lock_path``'s lock, for ``locks.held_lock`` (which falls back outside a read-only cache)."""
    return f"{purpose}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


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

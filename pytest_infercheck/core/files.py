"""Safe file operations shared by the cache, the reports, the baseline and the GPU lock.

Every file the plugin writes goes through :func:`write_atomic`: UTF-8 whatever the locale, through
a symlink to its target, with the mode the file already had (or the umask's for a new one), and
fsynced before the rename that makes it visible.  :func:`output_problem` checks an output path at
start-up, and :func:`write_or_reason` turns a write that still fails at session end into one line,
so the other reports and the summary are still written.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """An ``flock`` on ``path`` (created if absent): exclusive serialises xdist workers and other runs;
    shared ones overlap each other and wait only for an exclusive holder.

    Opened read-only (``flock`` needs no write access, so a lock file shipped in a read-only cache
    still locks) and never through a symlink: a link planted where a lock file goes would otherwise
    make this process, perhaps root, create or open whatever file it names.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_NONBLOCK: opening a FIFO planted where the lock file goes would otherwise wait for a writer
    # forever; what is not a regular file is refused on the open descriptor (the caller falls back).
    handle = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"lock file {_not_regular(mode)}", str(path))
        fcntl.flock(handle, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        os.close(handle)


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on a directory itself: serialises writers of the files in it and leaves
    no lock file behind (in the user's repository, or accumulating in the temp dir)."""
    directory.mkdir(parents=True, exist_ok=True)
    handle = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)


def current_umask() -> int:
    """The process umask, read without changing it where Linux says it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it and put it back
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """The mode to give the written file: the existing file's, else what ``open()`` would give a new one."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def write_atomic(path: PathLike, text: Union[str, bytes]) -> None:
    """Write beside the target and rename, so a reader never sees half a file.

    A symlink is written through (its target gets the new content, the link stays a link); the
    existing mode is kept, a new file gets the umask's mode (mkstemp would give 0600); str is
    encoded as UTF-8 (the locale's encoding may be ASCII in a CI container); the data is fsynced
    before the rename and the directory after it, so a crash leaves the old file or the new one.
    """
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():  # a rename would replace /dev/full or a FIFO with a plain file
        raise IsADirectoryError(errno.EISDIR, "Is a directory", str(path)) if target.is_dir() else \
            OSError(errno.EINVAL, "not a regular file (a device or a pipe)", str(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = _target_mode(target)
    data = text.encode("utf-8") if isinstance(text, str) else text
    handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fchmod(out.fileno(), mode)
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # some filesystems do not open directories; the file itself is already on disk
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _nearest_existing(path: Path) -> Path:
    """``path`` or its closest ancestor that exists (as anything: a file ancestor is a problem to report)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(path.anchor or ".")


def output_problem(path: PathLike) -> Optional[str]:
    """Why ``path`` cannot be written as an output file, in one line; None when it can.

    Checked at start-up, so that a report path that is a directory, below a file, or in a directory
    this process cannot write to is a usage error before any engine is built.  Writability is
    probed by creating a file, not by permission bits: those say nothing for root, a read-only
    mount or an immutable directory.
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        return f"{path} is a directory; give a file path"
    if target.exists() and not target.is_file():
        return f"{path} is not a regular file (a device or a pipe); give a file path"
    existing = _nearest_existing(target.parent)
    if not existing.is_dir():
        return f"{path}: {existing} is not a directory"
    problem = creation_problem(existing)
    return f"{path}: cannot create files in {existing} ({problem})" if problem else None


def creation_problem(directory: PathLike) -> Optional[str]:
    """Why no file can be created in ``directory`` (tried, not guessed from permission bits); None if one can."""
    try:
        handle, probe = tempfile.mkstemp(dir=directory, prefix=".infercheck-probe-")
    except OSError as err:
        return str(err.strerror or err)
    os.close(handle)
    os.unlink(probe)
    return None


def colliding_outputs(paths: Mapping[str, Optional[PathLike]]) -> Optional[str]:
    """One line naming two outputs (option -> path) that would write the same file; None when all differ.

    Paths are compared after resolving symlinks and ``..``, so ``--infer-report=b.json`` and
    ``--infer-baseline=./x/../b.json`` collide.
    """
    seen: dict[str, str] = {}
    for option, path in paths.items():
        if not path:
            continue
        real = os.path.realpath(path)
        if real in seen:
            return f"{seen[real]} and {option} both name {real}; give each output its own file"
        seen[real] = option
    return None


def write_or_reason(what: str, path: PathLike, write: Callable[[], None]) -> Optional[str]:
    """Run ``write()``; a failure is returned as one line naming ``what`` and ``path`` instead of raised.

    At session end one unwritable report must not stop the others or the summary; the caller
    prints the line (and may set the exit status).  Only I/O and encoding failures are caught:
    a bug in rendering still raises.
    """
    try:
        write()
    except (OSError, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return f"infercheck: could not write the {what} to {path}: {reason}"
    return None


class NotReadable(Exception):
    """A file that cannot be read as the plugin's input; the message says why, without the path."""


_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
               (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _not_regular(mode: int) -> str:
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    return f"is {kind}, not a regular file"


def read_regular_file(path: PathLike, *, max_bytes: int) -> bytes:
    """The bytes of ``path``, refused (:class:`NotReadable`) unless it is a regular file of at most ``max_bytes``.

    The kind is checked with ``stat`` before opening, and the file is opened with ``O_NONBLOCK`` and
    checked again on the open descriptor: opening a FIFO for reading blocks until a writer comes
    (a gate that hangs), and a path swapped between the two checks is still refused.  The size is
    checked before reading and bounded while reading, so a huge file or one that grows is never
    read into memory whole.
    """
    try:
        before = os.stat(path)
    except OSError as err:
        raise NotReadable(f"cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(before.st_mode):
        raise NotReadable(_not_regular(before.st_mode))
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise NotReadable(f"cannot be read ({err.strerror or err})") from None
    with os.fdopen(handle, "rb") as stream:
        opened = os.fstat(stream.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise NotReadable(_not_regular(opened.st_mode))
        if opened.st_size > max_bytes:
            raise NotReadable(_too_large(opened.st_size, max_bytes))
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:  # it grew while being read
        raise NotReadable(_too_large(len(data), max_bytes))
    return data


def _too_large(size: int, limit: int) -> str:
    shown = f"{limit // 2**20} MiB" if limit >= 2**20 else f"{limit} bytes"
    return f"is {size} bytes, over the limit of {shown} for this file"


def append_text(path: PathLike, text: str) -> None:
    """Append UTF-8 text (``$GITHUB_STEP_SUMMARY`` is appended to by every step of a job)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)

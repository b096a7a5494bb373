"""Locks that keep CPU timings apart across xdist workers and concurrent pytest runs of one user.

``cpu_timing_lock()``: one timed loop at a time on the CPU, and it also takes the CPU-work lock
*exclusively*; ``cpu_work_lock()`` is taken *shared* by CPU-heavy stages (export, build,
calibration): workers build in parallel, but no build runs while another worker times on the CPU,
so a CPU timing never competes with an export in the next process.  (GPU timings take one lock per
physical GPU: session.gpu_lock.)

Lock files live in the run's private engine cache (``<cache>/locks``, mode 0700), so nothing is left
in the system temp dir; without one (a script), or where a lock cannot be made there (a read-only
cache: a CI image, a read-only mount), in a per-user directory (mode 0700) under the temp dir:
another user's file of the same name can neither block nor be touched.  Every process of a run on
a read-only cache falls back the same way, so its timings still take turns.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator, Optional

from .files import file_lock


def lock_dir(root: Optional[Path] = None) -> Path:
    """``<root>/locks``, or ``$TMPDIR/pytest-infercheck-locks-<uid>``; created 0700, refused when someone else owns it."""
    directory = root / "locks" if root is not None else Path(tempfile.gettempdir()) / f"pytest-infercheck-locks-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or directory.is_symlink():
        raise PermissionError(f"{directory} is not a private directory of this user: remove it")
    return directory


@contextmanager
def held_lock(name: str, root: Optional[Path] = None, *, shared: bool = False) -> Iterator[None]:
    """An flock on ``name`` in ``<root>/locks``; where that lock cannot be made (a read-only cache, a
    ``locks`` directory that is not this user's), on ``name`` in the per-user temp directory instead."""
    with ExitStack() as stack:
        try:
            stack.enter_context(file_lock(lock_dir(root) / name, shared=shared))
        except OSError:
            if root is None:
                raise
            stack.enter_context(file_lock(lock_dir(None) / name, shared=shared))
        yield


@contextmanager
def cpu_timing_lock(root: Optional[Path] = None) -> Iterator[None]:
    """Exclusive: one timed loop at a time on the CPU, and no CPU-heavy stage meanwhile."""
    with held_lock("timing-cpu.lock", root), held_lock("cpu-work.lock", root):
        yield


@contextmanager
def cpu_work_lock(root: Optional[Path] = None) -> Iterator[None]:
    """Shared: CPU-heavy work that may run alongside other such work, but not alongside a CPU timing."""
    with held_lock("cpu-work.lock", root, shared=True):
        yield

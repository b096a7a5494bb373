"""Locks that keep timings apart across xdist workers and concurrent pytest runs of one user.

``timing_lock(device)``: one timed loop at a time per device (the CPU, or the visible GPU set).
``cpu_work_lock()``: taken *shared* by CPU-heavy stages (export, build, calibration), while the CPU
timing lock also takes it *exclusively*: workers build in parallel, but no build runs while another
worker times on the CPU, so a CPU timing never competes with an export in the next process.

Lock files live in the run's private engine cache (``<cache>/locks``, mode 0700), so nothing is left
in the system temp dir; without one (a script), in a per-user directory (mode 0700) under the temp
dir: another user's file of the same name can neither block nor be touched.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional


def lock_dir(root: Optional[Path] = None) -> Path:
    """``<root>/locks``, or ``$TMPDIR/pytest-infercheck-locks-<uid>``; created 0700, refused when someone else owns it."""
    directory = root / "locks" if root is not None else Path(tempfile.gettempdir()) / f"pytest-infercheck-locks-{os.getuid()}"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if info.st_uid != os.getuid() or info.st_mode & 0o022 or directory.is_symlink():
        raise PermissionError(f"{directory} is not a private directory of this user: remove it")
    return directory


def device_key(device: str) -> str:
    """``cpu``, or the visible GPUs (so two runs on different GPUs of one host do not wait for each other)."""
    if not device.startswith("cuda"):
        return "cpu"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "all").replace(",", "_") or "none"
    _, _, index = device.partition(":")
    return f"gpu-{visible}-{index or 0}"


@contextmanager
def _flock(path: Path, mode: int) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, mode)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def timing_lock(device: str, root: Optional[Path] = None) -> Iterator[None]:
    """Exclusive: one timed loop at a time on ``device``; on the CPU, no CPU-heavy stage meanwhile."""
    directory = lock_dir(root)
    with _flock(directory / f"timing-{device_key(device)}.lock", fcntl.LOCK_EX):
        if device_key(device) == "cpu":
            with _flock(directory / "cpu-work.lock", fcntl.LOCK_EX):
                yield
        else:
            yield


@contextmanager
def cpu_work_lock(root: Optional[Path] = None) -> Iterator[None]:
    """Shared: CPU-heavy work that may run alongside other such work, but not alongside a CPU timing."""
    with _flock(lock_dir(root) / "cpu-work.lock", fcntl.LOCK_SH):
        yield

"""Directories this process really cannot write to, also as root.

Permission bits do not stop root, which these tests run as in CI containers; the immutable flag
(``chattr +i``, needs CAP_LINUX_IMMUTABLE) does.  Without either, the test that needs one skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


def _can_create_in(directory: Path) -> bool:
    try:
        handle, probe = tempfile.mkstemp(dir=directory)
    except OSError:
        return False
    os.close(handle)
    os.unlink(probe)
    return True


@contextmanager
def read_only(directory: Path) -> Iterator[Path]:
    """``directory`` made unwritable (its files stay readable) for the duration of the block."""
    if os.geteuid() != 0:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield directory
        finally:
            directory.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: no way to make a directory read-only here")
    made = subprocess.run(["chattr", "+i", str(directory)], capture_output=True, text=True)
    if made.returncode != 0 or _can_create_in(directory):
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True)
        pytest.skip(f"chattr +i did not make {directory} read-only here: {made.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)

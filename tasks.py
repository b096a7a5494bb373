#!/usr/bin/env python3
"""Set-up and the two everyday commands, needing nothing but Python 3.10+.

    python3 tasks.py demo    # make .venv, install, run the plugin on the bundled example models
    python3 tasks.py test    # make .venv, install, run the test suite

The venv is made once and reused; torch is pinned by constraints/ci.txt to the CPU build this
project is tested with (the package itself accepts any torch >= 2.5).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"


def sh(*args: str, **kwargs) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT, **kwargs)


def ensure_env() -> None:
    """Create the venv and install the project with its dev extras, unless pyproject is unchanged."""
    if not PYTHON.exists():
        venv.create(VENV, with_pip=True)
    wanted = (ROOT / "pyproject.toml").read_text() + (ROOT / "constraints" / "ci.txt").read_text()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    sh(str(PYTHON), "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(str(PYTHON), "-m", "pip", "install", "-q", "-c", "constraints/ci.txt", "-e", ".[onnxruntime,dev,tensorrt-rtx]")
    STAMP.write_text(wanted)


def demo(extra: list[str]) -> int:
    ensure_env()
    args = [str(PYTHON), "-m", "pytest", "fixtures/demo", "-p", "no:randomly", "-q", "-rs", *extra]
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, cwd=ROOT).returncode


def test(extra: list[str]) -> int:
    ensure_env()
    workers = ["-n", "2"] if os.cpu_count() and os.cpu_count() >= 2 else []
    args = [str(PYTHON), "-m", "pytest", "tests", *workers, "-q", "-rs", "--durations=15", *extra]
    print("+", " ".join(args), flush=True)
    return subprocess.run(args, cwd=ROOT).returncode


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("demo", "test"):
        print(__doc__)
        return 2
    command, extra = sys.argv[1], sys.argv[2:]
    return demo(extra) if command == "demo" else test(extra)


if __name__ == "__main__":
    sys.exit(main())

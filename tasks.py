#!/usr/bin/env python3
"""Set-up and the everyday commands, needing nothing but Python 3.10+.

    python3 tasks.py demo          # make .venv, install, run the plugin on the bundled example models
    python3 tasks.py test          # make .venv, install, run the test suite (what CI runs)
    python3 tasks.py unit          # the fast unit layer alone (tests/unit, under 30 s)
    python3 tasks.py test-latest   # the suite against the newest release of every dependency, in .venv-latest
    python3 tasks.py lock          # re-resolve constraints/ci.lock (pip-tools, with hashes)

.venv is installed from constraints/ci.lock: every direct and indirect package pinned with its hashes
(pip --require-hashes), torch as its CPU build, so that the same commit installs the same packages
next month. test-latest shows drift without blocking: nothing there is pinned but the CPU torch.
"""

from __future__ import annotations

import os

import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK = ROOT / "constraints" / "ci.lock"
TORCH_CPU = ROOT / "constraints" / "torch-cpu.txt"
EXTRAS = ("onnxruntime", "dev", "tensorrt-rtx")


def sh(*args: str, **kwargs) -> None:
    print("+", " ".join(args), flush=True)
    subprocess.run(args, check=True, cwd=ROOT, **kwargs)


def python_of(env: Path) -> Path:
    return env / "bin" / "python"


def ensure_env() -> Path:
    """.venv from the lock (hashes required), then the project itself without touching its dependencies."""
    env = ROOT / ".venv"
    python, stamp = python_of(env), env / ".installed"
    wanted = (ROOT / "pyproject.toml").read_text() + LOCK.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    if not python.exists():
        venv.create(env, with_pip=True)
    pip = (str(python), "-m", "pip", "install", "-q")
    sh(*pip, "--require-hashes", "--no-deps", "-r", str(LOCK))
    # --no-build-isolation: the build backend is the lock's setuptools, not whatever the index has today.
    sh(*pip, "--no-deps", "--no-build-isolation", "-e", ".")
    sh(str(python), "-m", "pip", "check")
    stamp.write_text(wanted)
    return python


def ensure_latest_env() -> Path:
    """.venv-latest: the newest of everything the extras name (torch stays the CPU build: see torch-cpu.txt)."""
    env = ROOT / ".venv-latest"
    python = python_of(env)
    if not python.exists():
        venv.create(env, with_pip=True)
    sh(str(python), "-m", "pip", "install", "-q", "--upgrade", "-c", str(TORCH_CPU), "-e", f".[{','.join(EXTRAS)}]", "mypy")
    return python


def run_pytest(python: Path, *args: str) -> int:
    command = [str(python), "-m", "pytest", *args]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def workers() -> list[str]:
    # worksteal: each worker starts with half of the tests, and one that runs out takes half of what the other
    # has queued. xdist's default (load) hands out chunks that cannot move once sent, so a chunk holding the
    # precompile tests, or the xdist and transformers tests near the end, keeps one worker busy while the other
    # has finished. Replayed with the suite's measured durations (30 draws for the short tests): load ends at
    # 282 s on average (270-295 s), worksteal at 272 s (267-278 s), an even split at 266 s.
    return ["-n", "2", "--dist", "worksteal"] if (os.cpu_count() or 1) >= 2 else []


def demo(extra: list[str]) -> int:
    return run_pytest(ensure_env(), "fixtures/demo", "-p", "no:randomly", "-rsP", "--show-capture=stdout", *extra)


def typecheck(python: Path) -> int:
    """mypy on the package (pyproject's [tool.mypy]): part of the test command, so CI holds it clean."""
    command = [str(python), "-m", "mypy"]
    print("+", " ".join(command), flush=True)
    return subprocess.run(command, cwd=ROOT).returncode


def test(extra: list[str], python: Path | None = None) -> int:
    python = python or ensure_env()
    typed = typecheck(python)
    tested = run_pytest(python, "tests", *workers(), "-q", "-rs", "--durations=15", *extra)
    return tested or typed


def unit(extra: list[str]) -> int:
    return run_pytest(ensure_env(), "tests/unit", "-q", *extra)


def test_latest(extra: list[str]) -> int:
    python = ensure_latest_env()
    subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], cwd=ROOT)
    return test(extra, python)


def lock(extra: list[str]) -> int:
    """Resolve the lock with pip-tools in a throw-away tool venv; commit constraints/ci.lock afterwards."""
    tools = ROOT / ".venv-lock"
    if not python_of(tools).exists():
        venv.create(tools, with_pip=True)
        sh(str(python_of(tools)), "-m", "pip", "install", "-q", "pip-tools")
    compile_ = str(tools / "bin" / "pip-compile")
    extras = [f"--extra={name}" for name in EXTRAS]
    sh(compile_, "-q", "--generate-hashes", "--allow-unsafe", "--strip-extras", "--no-emit-index-url",
       "--no-emit-find-links", *extras, f"--constraint={TORCH_CPU.relative_to(ROOT)}",
       f"--output-file={LOCK.relative_to(ROOT)}", "pyproject.toml", "constraints/ci.in", *extra)
    return 0


COMMANDS = {"demo": demo, "test": test, "unit": unit, "test-latest": test_latest, "lock": lock}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        return 2
    return COMMANDS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())

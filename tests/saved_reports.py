"""Reports that real pytest runs of the plugin write in subprocesses, as the GPU job runs it, for the tests
of `infercheck gate`, `baseline update` and `report` (test_gate_cli.py, test_saved_hostile.py).

The clean and the failing report are only read by the tests that take them, so the suite writes each once
(conftest.py's session fixtures), shared by xdist's workers under a lock: each test module of each worker
wrote its own before, 6-7 s a run. Their runs, and the gate tests' own runs of CLEAN, build their engines
in the engine cache of the worker that runs them (``cache=``, conftest's shared_cache_dir), as a GPU job
keeps its cache between runs: the small CNN's ONNX export and ONNX Runtime engine are then built once
there, not once a run (7 s a cold run, 3 s a warm one).
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path
from typing import Optional

from cli_runner import subprocess_env
from conftest import FAST_TIMING

CLEAN = """
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(engines=["eager-fp32", "onnxruntime-fp32", "eager-int8"])
def test_cnn(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""
# An engine that fails its own check in the run: ONNX Runtime is not bit-exact with eager on this CNN.
FAILING = CLEAN + """
@pytest.mark.infercheck(backends=["onnxruntime"], atol=0, rtol=0)
def test_exact(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""


def write_report(directory: Path, source: str, *args: str, cache: Optional[Path] = None) -> Path:
    """A pytest run of the plugin in a subprocess, as the GPU job runs it; the JSON report it wrote. The engine
    cache is ``cache``, else a new one in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "test_model.py").write_text(source)
    report = directory / "report.json"
    engines = cache or directory / "cache"
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "-q",
                          *FAST_TIMING, f"--infer-cache-dir={engines}", f"--infer-report={report}", *args],
                         cwd=directory, capture_output=True, text=True, timeout=600, env=subprocess_env())
    assert report.exists(), run.stdout + run.stderr
    return report


def shared_report(root: Path, name: str, source: str, cache: Optional[Path] = None) -> Path:
    """``write_report(root / name, source, cache=cache)``'s report, written by the first of the processes sharing
    ``root`` to ask for it (the others wait for it, then read the same file)."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when the run fails
        report = root / name / "report.json"
        return report if report.exists() else write_report(root / name, source, cache=cache)

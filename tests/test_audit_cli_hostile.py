"""`infercheck audit` inputs from the second hostile attack on issue 23: factories raising what is not an
Exception, and shapes with an empty dimension."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE = """
import torch

class Stop(BaseException):
    pass

def generator_exit():
    raise GeneratorExit("bye")

def own_base_exception():
    raise Stop("their own")

def interrupted():
    raise KeyboardInterrupt()

def linear():
    return torch.nn.Linear(8, 4)
"""


def audit(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "hostile_factories.py").write_text(MODULE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest_infercheck", "audit", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("factory, named", [("generator_exit", "GeneratorExit: bye"), ("own_base_exception", "Stop: their own")])
def test_a_factory_raising_a_base_exception_exits_2_with_one_line(tmp_path: Path, factory: str, named: str) -> None:
    """Only Exception and SystemExit were caught: GeneratorExit or a BaseException of the user's own was a traceback."""
    run = audit(tmp_path, f"hostile_factories:{factory}", "--input-shape", "2,8", "--targets", "onnxruntime")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"infercheck audit: error: MODEL hostile_factories:{factory}: the factory "
                                       f"raised {named}"]


def test_ctrl_c_in_a_factory_exits_130_without_a_traceback(tmp_path: Path) -> None:
    run = audit(tmp_path, "hostile_factories:interrupted", "--input-shape", "2,8", "--targets", "onnxruntime")
    assert run.returncode == 130, run.stdout + run.stderr
    assert run.stderr.splitlines() == ["infercheck audit: interrupted"]


@pytest.mark.parametrize("shape", ["8,,8", "2,8,", ",2,8"])
def test_a_shape_with_an_empty_dimension_exits_2(tmp_path: Path, shape: str) -> None:
    """8,,8 was audited as 8,8 (and 2,8, as 2,8): a typo silently audited as another shape."""
    run = audit(tmp_path, "hostile_factories:linear", "--input-shape", shape, "--targets", "onnxruntime")
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.splitlines() == [f"infercheck audit: error: --input-shape {shape!r}: an empty dimension; "
                                       "expected comma-separated integers, e.g. 1,3,224,224"]

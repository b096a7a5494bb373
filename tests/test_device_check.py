"""--infer-device=cuda where torch sees no GPU is refused with a reason; auto and cpu never are."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_infercheck.core.device_check import check_device_available

REPO = Path(__file__).resolve().parents[1]


def test_auto_and_cpu_are_always_available() -> None:
    assert check_device_available("auto") is None
    assert check_device_available("cpu") is None


def test_cuda_without_a_visible_device_says_why() -> None:
    # CUDA_VISIBLE_DEVICES="" hides every GPU from a CUDA build too, so this runs the same on a GPU machine.
    code = ("from pytest_infercheck.core.device_check import check_device_available\n"
            "print(check_device_available('cuda'))\n")
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("--infer-device=cuda: torch sees no CUDA device (torch ")
    assert "CUDA_VISIBLE_DEVICES=''" in run.stdout and "or use --infer-device=auto or cpu" in run.stdout


def test_cuda_on_this_machine() -> None:
    torch = pytest.importorskip("torch")
    problem = check_device_available("cuda")
    assert (problem is None) == torch.cuda.is_available()

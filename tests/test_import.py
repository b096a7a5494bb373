"""Importing the plugin (what `pytest --help` does) must not import torch or any engine."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "onnx", "onnxruntime", "tensorrt", "polygraphy", "numpy")


def test_plugin_import_is_light() -> None:
    code = ("import sys, pytest_infercheck, pytest_infercheck.plugin, pytest_infercheck.report.table;"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_pytest_help_is_light() -> None:
    code = ("import sys, pytest; pytest.main(['--help', '-p', 'no:cacheprovider']);"
            f"print('HEAVY', [m for m in {HEAVY[:5]!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "--infer-budget" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"

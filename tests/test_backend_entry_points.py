"""A backend from another package: one module with a DESCRIPTOR, named under the entry point group
``pytest_infercheck.backends``.  The test installs a tiny one (a dist-info on the path of a fresh
pytest process, as pip would leave it) and runs a real check through it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

TINY = '''
"""A tiny third-party backend: eager PyTorch under another name, on the CPU, FP32 only."""
from pytest_infercheck.backends.base import BackendDescriptor
from pytest_infercheck.backends.torch_eager import EagerBackend

DESCRIPTOR = BackendDescriptor(name="tiny", implementation="tiny_backend:TinyBackend", precisions=("fp32",),
                               devices=("cpu",), libraries=("torch",), install="pip install tiny-backend",
                               profiler="torch")


class TinyBackend(EagerBackend):
    descriptor = DESCRIPTOR
'''

TEST = '''
import pytest, torch

@pytest.mark.infercheck(engines=["tiny-fp32", "tiny-fp16"])
def test_model(infercheck):
    torch.manual_seed(0)
    result = infercheck(torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval(), torch.randn(2, 8))
    assert result.accuracy.passed and result.spec_id == "tiny-fp32"
'''


def install(site: Path, name: str, entry: str, module: str = "", source: str = TINY) -> None:
    """What ``pip install`` leaves: the module and a dist-info whose entry_points.txt names it."""
    if module:
        (site / f"{module}.py").write_text(source)
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[pytest_infercheck.backends]\n{entry}\n")


def run_pytest(tmp_path: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_model.py").write_text(textwrap.dedent(TEST))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "test_model.py", "-p", "no:randomly", "-p", "no:xdist",
                           "-p", "no:cacheprovider", f"--infer-cache-dir={tmp_path / 'cache'}", "--infer-min-iters=5",
                           "--infer-min-time=0", "--infer-max-time=0.2", "-rs", *args],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


def test_a_backend_from_another_package_runs_through_the_plugin(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, "tiny_backend", "tiny = tiny_backend", module="tiny_backend")
    run = run_pytest(tmp_path, site)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed, 1 skipped" in run.stdout
    assert "tiny-fp32" in run.stdout and "the tiny backend has no FP16 engine (it offers fp32)" in run.stdout


@pytest.mark.parametrize("entry, module, source, said", [
    ("broken = broken_backend", "broken_backend", "raise ImportError('no libtiny.so')",
     "could not be loaded: ImportError: no libtiny.so"),
    ("eager = fake_eager", "fake_eager", TINY.replace('name="tiny"', 'name="eager"'),
     "names the backend 'eager', which is already registered"),
    ("ref = fake_ref", "fake_ref", TINY.replace('profiler="torch"', 'profiler="torch", reference=True'),
     "claims the reference role"),
    ("odd = odd_backend", "odd_backend", "DESCRIPTOR = 42", "is neither a BackendDescriptor"),
])
def test_a_broken_backend_package_is_left_out_with_a_warning(tmp_path: Path, entry: str, module: str, source: str,
                                                              said: str) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, module, entry, module=module, source=source)
    from_python = subprocess.run(
        [sys.executable, "-W", "always", "-c", "from pytest_infercheck.backends import names; print(names())"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}, capture_output=True, text=True,
        timeout=120)
    assert from_python.returncode == 0, from_python.stderr
    assert said in from_python.stderr
    assert from_python.stdout.strip() == "('eager', 'inductor', 'aoti', 'onnxruntime', 'tensorrt', 'tensorrt-rtx')"

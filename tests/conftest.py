"""Shared test set-up: pytester runs of the plugin that reuse one engine cache, fast timing settings."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from _pytest import pytester as _pytester

# pytester's in-process runs restore sys.modules afterwards, dropping every module first imported
# inside a run. torch, ONNX Runtime and friends register C-level state on import (operator
# libraries, custom ops), so importing them a second time in the same process crashes or raises
# "Only a single TORCH_LIBRARY can be used...". Keep those libraries' modules across runs, the way
# pytester already keeps zope's and readline's; the test files themselves are still dropped.
_KEEP = ("torch", "functorch", "onnx", "onnxruntime", "onnxscript", "onnx_ir", "polygraphy", "numpy", "sympy",
         "triton", "matplotlib", "ml_dtypes", "fixtures", "pytest_infercheck", "transformers", "tokenizers",
         "huggingface_hub", "safetensors")
_original_snapshot_init = _pytester.SysModulesSnapshot.__init__


def _inside_kept_package(name: str) -> bool:
    """onnxruntime.transformers puts its own directory on sys.path (once, on import) and imports
    ``fusion_utils`` and friends as top-level modules: a run that drops them, or restores sys.path
    without that directory, breaks the quantizer in the next run.  Keep both."""
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None) or ""
    return f"{os.sep}onnxruntime{os.sep}" in path


def _keep_onnxruntime_transformers_on_path() -> None:
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    for location in (spec.submodule_search_locations or []) if spec else []:
        directory = os.path.join(location, "transformers")
        if os.path.isdir(directory) and directory not in sys.path:
            sys.path.append(directory)


_keep_onnxruntime_transformers_on_path()


def _snapshot_keeping_libraries(self, preserve=None) -> None:  # type: ignore[no-untyped-def]
    def keep(name: str) -> bool:
        return (name.split(".", 1)[0] in _KEEP or _inside_kept_package(name)
                or bool(preserve and preserve(name)))

    _original_snapshot_init(self, preserve=keep)


_pytester.SysModulesSnapshot.__init__ = _snapshot_keeping_libraries  # type: ignore[method-assign]

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `import fixtures.models` in tests and in pytester-made files

# Fast timing for behaviour tests: figures are checked for shape, not for speed.
FAST_TIMING = ["--infer-warmup=2", "--infer-min-iters=5", "--infer-min-time=0.01", "--infer-max-iters=200",
               "--infer-max-time=0.05"]  # the stopping rule stays on, capped: a loaded CPU never meets +-1%


def _suite_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's temporary folder: under xdist every worker has its own basetemp, and this is their
    common parent, shared by the workers."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if base.name.startswith("popen-gw") else base


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine cache for the tests of a process (an xdist worker), so each fixture model is exported
    once there.

    Not one for the whole suite: processes on one cache share its CPU locks (core/locks.py), so a timed
    loop in one worker waited for every export and compile of the other, and their builds for its timings,
    as the plugin means them to in a real run. Measured on 11 files run with -n 2: 24 s and 19 s of the
    workers' time went in waiting for those locks, and the files took 100 s; with a cache per worker,
    building again what the other worker had built, 70 s.
    """
    path = tmp_path_factory.getbasetemp() / "infercheck-shared-cache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def clean_report(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path) -> Path:
    """The report of saved_reports.CLEAN's run (every engine passed or skipped), written once for the suite."""
    from saved_reports import CLEAN, shared_report

    return shared_report(_suite_root(tmp_path_factory) / "saved-reports", "clean", CLEAN, cache=shared_cache_dir)


@pytest.fixture(scope="session")
def failing_report(tmp_path_factory: pytest.TempPathFactory, shared_cache_dir: Path) -> Path:
    """The report of saved_reports.FAILING's run (an engine failed its check), written once for the suite."""
    from saved_reports import FAILING, shared_report

    return shared_report(_suite_root(tmp_path_factory) / "saved-reports", "failing", FAILING, cache=shared_cache_dir)


@pytest.fixture
def separate_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """For ``pytester.runpytest_subprocess`` runs, as a user's separate pytest processes are: they import this
    checkout, are no xdist workers of this suite, and keep their own Inductor cache (an in-process run before
    the test pointed Inductor at its own)."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)


@pytest.fixture
def run_plugin(pytester: pytest.Pytester, shared_cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    """``run_plugin(source, *args)``: write a test file and run pytest on it in-process with the plugin."""
    pytester.syspathinsert(REPO)
    # A CI job's summary file is for the suite's own report, not for the runs these tests make.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)

    def run(source: str, *args: str, cache: bool = True, timing: bool = True) -> pytest.RunResult:
        pytester.makepyfile(test_model=source)
        extra = [f"--infer-cache-dir={shared_cache_dir}"] if cache else []
        return pytester.runpytest("-p", "no:randomly", "-W", "ignore::DeprecationWarning",
                                  *(FAST_TIMING if timing else []), *extra, *args)

    return run

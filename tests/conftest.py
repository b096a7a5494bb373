"""Shared test set-up: pytester runs of the plugin that reuse one engine cache, fast timing settings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # `import fixtures.models` in tests and in pytester-made files

# Fast timing for behaviour tests: figures are checked for shape, not for speed.
FAST_TIMING = ["--infer-warmup=2", "--infer-min-iters=5", "--infer-min-time=0.01", "--infer-max-iters=200"]


@pytest.fixture(scope="session")
def shared_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine cache for the whole suite, so each fixture model is exported once."""
    return tmp_path_factory.mktemp("infercheck-cache")


@pytest.fixture
def run_plugin(pytester: pytest.Pytester, shared_cache_dir: Path):
    """``run_plugin(source, *args)``: write a test file and run pytest on it in-process with the plugin."""
    pytester.syspathinsert(REPO)

    def run(source: str, *args: str, cache: bool = True, timing: bool = True) -> pytest.RunResult:
        pytester.makepyfile(test_model=source)
        extra = [f"--infer-cache-dir={shared_cache_dir}"] if cache else []
        return pytester.runpytest("-p", "no:randomly", "-W", "ignore::DeprecationWarning",
                                  *(FAST_TIMING if timing else []), *extra, *args)

    return run

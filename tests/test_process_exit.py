"""A process that ran checks ends without the interpreter's final collections walking its heap (process_exit.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import FAST_TIMING, REPO

# Registered when the conftest is imported, before any check: atexit runs handlers last-in first-out,
# so this one runs after the plugin's and sees what the interpreter's final collections will see.
FREEZE_PROBE = """
import atexit, gc, os

def _frozen_at_exit():
    name = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with open(f"frozen-{name}.txt", "w") as handle:
        handle.write(str(gc.get_freeze_count()))

atexit.register(_frozen_at_exit)
"""

CHECKS = """
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_one(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_two(infercheck):
    infercheck(small_cnn(), cnn_inputs())
"""


def frozen_counts(where: Path) -> dict[str, int]:
    return {path.stem.removeprefix("frozen-"): int(path.read_text()) for path in where.glob("frozen-*.txt")}


@pytest.mark.parametrize("workers", [("-p", "no:xdist"), ("-p", "xdist", "-n", "2")], ids=["one-process", "xdist"])
def test_every_process_that_ran_a_check_freezes_its_heap_at_exit(pytester: pytest.Pytester, shared_cache_dir: Path,
                                                                  workers: tuple[str, ...],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))  # fixtures.models
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # when this suite itself runs under xdist
    pytester.makeconftest(FREEZE_PROBE)
    pytester.makepyfile(test_checks=CHECKS)
    result = pytester.runpytest_subprocess(*workers, "-p", "no:randomly", f"--infer-cache-dir={shared_cache_dir}",
                                           *FAST_TIMING)
    result.assert_outcomes(passed=2)
    counts = frozen_counts(pytester.path)
    expected = {"main"} if "no:xdist" in workers else {"gw0", "gw1", "main"}
    assert set(counts) == expected
    ran_checks = {name for name in counts if name != "main"} or {"main"}
    assert all(counts[name] > 0 for name in ran_checks), counts
    if "main" not in ran_checks:  # the xdist controller ran no check: its exit is left as it was
        assert counts["main"] == 0


def test_a_process_that_ran_no_check_is_left_alone(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # when this suite itself runs under xdist
    pytester.makeconftest(FREEZE_PROBE)
    pytester.makepyfile(test_plain="def test_plain():\n    assert 1 + 1 == 2\n")
    pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly").assert_outcomes(passed=1)
    assert frozen_counts(pytester.path) == {"main": 0}

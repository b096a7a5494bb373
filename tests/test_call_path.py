"""call_path.py: the host path of one engine call, the fact that says a warm engine runs as the cold one.

Pure logic on plain Python callables (the plugin-level rule, cold against warm, is in
tests/test_precompile.py); the engine chains below are stand-ins named as such.
"""

from __future__ import annotations

import sys

from pytest_infercheck.measure import call_path
from pytest_infercheck.measure.results import CallPath, CheckResult


def helper(x: int) -> int:
    return x + 1


def one_layer(x: int) -> int:
    return helper(x)


def two_layers(x: int) -> int:
    return one_layer(helper(x))


class FakeEngine:
    def __init__(self, fn):
        self.fn = fn


class FakeGraphEngine:
    def __init__(self, inner):
        self.inner = inner


def test_the_same_call_takes_the_same_path_and_another_wrapper_shows() -> None:
    first = call_path.measure(one_layer, lambda: one_layer(1))
    again = call_path.measure(one_layer, lambda: one_layer(2))
    wrapped = call_path.measure(two_layers, lambda: two_layers(1))
    assert first == again and first.python_calls == 3  # the lambda, one_layer, helper
    assert wrapped.python_calls == 5 and wrapped.digest != first.digest  # + two_layers and its own helper call


def test_measuring_leaves_an_installed_profiler_in_place() -> None:
    """Another profiler owns the hook: no path is measured, the call is not made, the profiler stays."""
    events = []
    calls = []

    def fake_profiler(frame, event, arg):
        events.append(event)

    sys.setprofile(fake_profiler)
    try:
        assert call_path.measure(one_layer, lambda: calls.append(1)) is None and not calls
        assert sys.getprofile() is fake_profiler
    finally:
        sys.setprofile(None)


def test_a_check_run_under_cprofile_passes_and_cprofile_keeps_profiling(run_plugin) -> None:
    """cProfile installs its hook from C: sys.setprofile cannot put it back (TypeError: 'Profile' object is
    not callable), so a check run under cProfile (python -m cProfile -m pytest) must leave the hook alone."""
    result = run_plugin("""
import cProfile, sys, pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_profiled(infercheck):
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        found = infercheck(torch.nn.Linear(8, 8), torch.randn(2, 8))
        assert sys.getprofile() is profiler
    finally:
        profiler.disable()
    assert found.call_path is None
""")
    result.assert_outcomes(passed=1)


def test_the_kind_names_the_chain_of_callables() -> None:
    assert call_path.engine_kind(FakeGraphEngine(FakeEngine(helper))) == "FakeGraphEngine > FakeEngine > function"
    assert call_path.engine_kind(FakeEngine(None)) == "FakeEngine"


def test_the_path_travels_with_the_result() -> None:
    result = CheckResult(nodeid="t.py::test[inductor-fp32]", spec_id="inductor-fp32", backend="inductor",
                         precision="fp32", cuda_graphs=False,
                         call_path=CallPath(kind="TorchEngine > PrecompiledForward", python_calls=60, digest="ab12"))
    assert CheckResult.from_dict(result.to_dict()).call_path == result.call_path

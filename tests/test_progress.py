"""Long builds: progress lines while they run, a failed item (not a stuck session) past the deadline."""

from __future__ import annotations

import threading
from typing import Callable
import time

import pytest

from pytest_infercheck.core import progress
from pytest_infercheck.core.progress import BuildTimeout, ProgressReporter, run_build


def test_a_fast_build_returns_its_value_silently() -> None:
    reporter = ProgressReporter()
    assert run_build(lambda: 42, what="eager-fp32 of M", timeout_s=5, reporter=reporter) == 42
    assert reporter.lines == []


def test_a_build_error_reaches_the_caller() -> None:
    def broken() -> None:
        raise RuntimeError("no kernel for this op")

    with pytest.raises(RuntimeError, match="no kernel"):
        run_build(broken, what="x", timeout_s=None)


def test_a_slow_build_reports_progress_with_the_engine_and_elapsed_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "FIRST_REPORT_S", 0.05)
    monkeypatch.setattr(progress, "REPORT_EVERY_S", 0.05)
    written: list[str] = []
    reporter = ProgressReporter(written.append)
    assert run_build(lambda: time.sleep(0.3) or "engine", what="inductor-fp16 of ResNet", timeout_s=None,
                     reporter=reporter) == "engine"
    assert written == reporter.lines
    assert len(written) >= 3
    assert written[0].startswith("infercheck: building inductor-fp16 of ResNet ... ")
    assert written[-1].startswith("infercheck: built inductor-fp16 of ResNet in ")


def test_a_build_past_the_deadline_is_interrupted_promptly_and_names_the_option() -> None:
    finished = []

    def stuck_build() -> None:
        threading.Event().wait(30)
        finished.append(True)

    start = time.monotonic()
    with pytest.raises(BuildTimeout, match=r"aoti-fp16 of M took longer than --infer-build-timeout=0.2s"):
        run_build(stuck_build, what="aoti-fp16 of M", timeout_s=0.2)
    assert time.monotonic() - start < 2
    assert finished == []  # the build itself was stopped, not left running


def test_a_builder_catching_every_exception_cannot_swallow_the_timeout() -> None:
    def exporter_like() -> str:
        try:
            time.sleep(5)
        except Exception:  # what exporters do with every error
            return "swallowed"
        return "finished"

    with pytest.raises(BuildTimeout):
        run_build(exporter_like, what="x", timeout_s=0.1)


def test_the_previous_alarm_handler_is_restored() -> None:
    import signal

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGALRM, mine)
    try:
        run_build(lambda: None, what="x", timeout_s=1)
        assert signal.getsignal(signal.SIGALRM) is mine
    finally:
        signal.signal(signal.SIGALRM, previous)


def test_a_build_timeout_is_a_failed_item_and_the_session_goes_on(run_plugin) -> None:
    result = run_plugin(
        """
import threading, pytest, torch
from pytest_infercheck.backends.torch_eager import EagerBackend

never = threading.Event()
slow_build = EagerBackend.build

def build_that_hangs(self, request):
    never.wait(60)  # a stuck builder: the deadline below interrupts it
    return slow_build(self, request)

@pytest.mark.infercheck(backends=["eager"], build_timeout=0.3)
def test_hangs(infercheck, monkeypatch):
    monkeypatch.setattr(EagerBackend, "build", build_that_hangs)
    infercheck(torch.nn.Linear(4, 4).eval(), torch.randn(2, 4))

def test_after():
    pass
""", "--infer-device=cpu")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["*build: building eager-fp32 of Linear took longer than --infer-build-timeout=0.3s*"])


def test_the_build_deadline_covers_the_export(run_plugin) -> None:
    """A model whose trace is slow (each forward sleeps) fails at its export, within the deadline."""
    result = run_plugin(
        """
import pytest, torch
from fixtures.problem_models import SlowToTrace

@pytest.mark.infercheck(backends=["onnxruntime"], build_timeout=1)
def test_slow(infercheck):
    infercheck(SlowToTrace(0.6).eval(), torch.randn(2, 4))
""", "--infer-device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*export: building the ONNX export of SlowToTrace took longer than "
                                 "--infer-build-timeout=1s*"])


def test_a_progress_line_never_lands_on_the_line_of_pytests_dots(run_plugin) -> None:
    """Under -q pytest writes its dots straight after each other; a build's progress starts a new line."""
    result = run_plugin(
        """
import time, pytest, torch
from pytest_infercheck.core import progress
from pytest_infercheck.backends.torch_eager import EagerBackend

fast_build = EagerBackend.build

def slow_build(self, request):
    time.sleep(0.3)
    return fast_build(self, request)

def test_before():
    pass

@pytest.mark.infercheck(backends=["eager"])
def test_slow(infercheck, monkeypatch):
    monkeypatch.setattr(progress, "FIRST_REPORT_S", 0.1)
    monkeypatch.setattr(EagerBackend, "build", slow_build)
    infercheck(torch.nn.Linear(4, 4).eval(), torch.randn(2, 4))
""", "--infer-device=cpu", "-q")
    result.assert_outcomes(passed=2)
    progress_lines = [line for line in result.outlines if "infercheck: built" in line or "infercheck: building" in line]
    assert progress_lines and all(line.startswith("infercheck: ") for line in progress_lines), result.outlines


def swallowing_build(swallow: int, seconds: float) -> Callable[[], str]:
    """A build that loses its first ``swallow`` BuildTimeouts, as Python loses one raised while it runs a
    weakref callback or a __del__ (an unraisable exception), and works on for ``seconds``."""
    def build() -> str:
        lost, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                time.sleep(0.02)
            except BuildTimeout:
                lost += 1
                if lost > swallow:
                    raise
        return "engine"
    return build


def test_a_timeout_python_swallowed_is_raised_again_at_the_next_tick_with_its_own_stage() -> None:
    """Seen in CI: the export's timeout was raised inside a weakref callback and lost; the export ran on and
    the build stage failed in its place ("building onnxruntime-fp32 ... gave up after 0 s")."""
    reporter = ProgressReporter()
    with pytest.raises(BuildTimeout, match="building the ONNX export of M took longer than --infer-build-timeout=0.2s"):
        run_build(swallowing_build(1, 5.0), what="the ONNX export of M", timeout_s=0.2, reporter=reporter)
    assert [line for line in reporter.lines if "gave up" in line] == ["infercheck: building the ONNX export of M: "
                                                                      "gave up after 0 s"]


def test_a_build_that_lost_every_timeout_and_finished_still_ran_too_long() -> None:
    with pytest.raises(BuildTimeout, match="building x took longer than"):
        run_build(swallowing_build(1000, 0.5), what="x", timeout_s=0.2)


def test_cleanup_unwinding_a_timeout_runs_to_its_end() -> None:
    """A finally block that handles the timeout (a staging directory removed, logging restored) is not cut
    short by the next tick: a reviewer saw 4 of 30 cleanup steps run."""
    steps: list[int] = []

    def build() -> None:
        try:
            time.sleep(5)
        finally:
            for step in range(30):
                time.sleep(0.05)  # 1.5 s of cleanup: several ticks of a 0.2 s deadline
                steps.append(step)

    with pytest.raises(BuildTimeout):
        run_build(build, what="x", timeout_s=0.2)
    assert len(steps) == 30


def test_a_timeout_the_build_wrapped_in_its_own_error_is_still_a_timeout() -> None:
    def build() -> None:
        try:
            time.sleep(5)
        except BuildTimeout as exc:
            raise RuntimeError("the exporter failed") from exc

    with pytest.raises(BuildTimeout, match="building x took longer than"):
        run_build(build, what="x", timeout_s=0.2)

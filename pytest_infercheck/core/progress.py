"""Long builds: a progress line on the terminal while they run, and a deadline.

A two-minute autotune must not look like a hang, and a build that never ends must not hold the
session: ``run_build`` runs the build in the calling (main) thread under an interval timer
(SIGALRM).  Every few seconds the timer's handler prints "building <engine> ... <elapsed>" through
pytest's terminal reporter; past the deadline it raises ``BuildTimeout`` inside the build, which
unwinds it, and the check turns that into a failed item.

Why not a worker thread: compilers (Inductor, AOTInductor, TensorRT) are not all safe to drive
from a second thread (a build in a thread crashed the process on the H100), and a thread cannot be
stopped.  The handler runs between Python bytecodes, so a single long C++ call delays the line and
the deadline until it returns.  Off the main thread (where signals cannot be used) the build runs
plainly, without progress or deadline.  Another SIGALRM user (pytest-timeout's signal method) is
paused for the build's duration and restored afterwards.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

FIRST_REPORT_S = 5.0  # builds shorter than this print nothing
REPORT_EVERY_S = 15.0


class BuildTimeout(BaseException):
    """The build ran past its deadline; the message names the engine, the limit and the option.

    A BaseException, like KeyboardInterrupt, so that a builder's ``except Exception`` (exporters
    wrap every error) cannot swallow it on its way out of the build.
    """


@dataclass
class ProgressReporter:
    """Writes progress lines to the terminal even while pytest captures output.

    ``write`` is None when there is no terminal to write to (an xdist worker, a plain script):
    then builds run silently, with the deadline still enforced.
    """

    write: Optional[Callable[[str], None]] = None
    lines: list[str] = field(default_factory=list)  # every line reported, for tests and logs

    def report(self, text: str) -> None:
        self.lines.append(text)
        if self.write is not None:
            self.write(text)

    @classmethod
    def for_config(cls, config: Any) -> "ProgressReporter":
        """The terminal reporter of this pytest run, with capture suspended around each line."""
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if terminal is None or hasattr(config, "workerinput"):
            return cls()

        def write(text: str) -> None:
            if capture is not None:
                with capture.global_and_fixture_disabled():
                    _own_line(terminal, text)
            else:
                _own_line(terminal, text)

        return cls(write)


def _own_line(terminal: Any, text: str) -> None:
    """``text`` on a line of its own: under ``-q`` pytest writes its dots with no file name first, so
    ``write_line`` (which starts a new line only after a file name) would append to the dots."""
    if getattr(getattr(terminal, "_tw", None), "width_of_current_line", 0):
        terminal.write("\n")
    terminal.write_line(text)


def run_build(build: Callable[[], T], *, what: str, timeout_s: Optional[float],
              reporter: Optional[ProgressReporter] = None, limit_s: Optional[float] = None) -> T:
    """``build()`` with progress lines and a deadline (``timeout_s`` of None or 0: no deadline).

    ``limit_s`` is the option's value for the message, when ``timeout_s`` is what is left of it
    after earlier steps (the export before the build).
    """
    reporter = reporter or ProgressReporter()
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return build()
    start = time.monotonic()
    state = {"next_report": FIRST_REPORT_S, "gave_up": False}
    too_long = (f"building {what} took longer than --infer-build-timeout={limit_s or timeout_s or 0:g}s; raise "
                "the option (or mark the test with build_timeout=...) if the build is expected to be this slow")

    def on_alarm(signum: int, frame: Any) -> None:
        elapsed = time.monotonic() - start
        if timeout_s and elapsed >= timeout_s:
            # The timer keeps ticking: Python swallows an exception raised while it runs a weakref callback or a
            # __del__ (an "unraisable" warning), and the build then ran on past its deadline until the next
            # stage's check failed with that stage's name (seen in CI). Until the raise reaches run_build,
            # whose finally stops the timer, a tick raises it again, unless the timeout is being unwound now
            # (the interrupted frame is in a finally or __exit__ handling it): cleanup runs to its end.
            if not state["gave_up"]:
                state["gave_up"] = True
                reporter.report(f"infercheck: building {what}: gave up after {elapsed:.0f} s")
            if not isinstance(sys.exc_info()[1], BuildTimeout):
                raise BuildTimeout(too_long)
            return
        if elapsed >= state["next_report"]:
            reporter.report(f"infercheck: building {what} ... {elapsed:.0f} s")
            state["next_report"] += REPORT_EVERY_S

    tick = min(1.0, FIRST_REPORT_S, REPORT_EVERY_S, *([timeout_s] if timeout_s else []))
    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, tick, tick)
    try:
        value = build()
    except BuildTimeout:
        raise
    except Exception as exc:
        if state["gave_up"]:  # the build wrapped the timeout in an error of its own: the timeout is the cause
            raise BuildTimeout(too_long) from exc
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0] > 0:  # resume another user's alarm, less the time the build took
            signal.setitimer(signal.ITIMER_REAL, max(previous_timer[0] - (time.monotonic() - start), 0.001),
                             previous_timer[1])
    if state["gave_up"]:  # every raise was swallowed and the build finished anyway: it still ran too long
        raise BuildTimeout(too_long)
    elapsed = time.monotonic() - start
    if elapsed >= FIRST_REPORT_S:
        reporter.report(f"infercheck: built {what} in {elapsed:.1f} s")
    return value

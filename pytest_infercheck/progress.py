"""Long builds: a progress line on the terminal while they run, and a deadline.

A two-minute autotune must not look like a hang, and a build that never ends must not hold the
session: ``run_build`` runs the build in a worker thread, prints "building <engine> ... <elapsed>"
every few seconds through pytest's terminal reporter, and gives up at the deadline with
``BuildTimeout``, which the check turns into a failed item.

Python cannot stop a thread.  A build that timed out keeps running in its (daemon) thread until it
finishes on its own or the process exits; the message says so, and nothing waits for it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

FIRST_REPORT_S = 5.0  # builds shorter than this print nothing
REPORT_EVERY_S = 15.0


class BuildTimeout(Exception):
    """The build ran past its deadline; the message names the engine, the limit and the option."""


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
                    terminal.write_line(text)
            else:
                terminal.write_line(text)

        return cls(write)


def run_build(build: Callable[[], T], *, what: str, timeout_s: Optional[float],
              reporter: Optional[ProgressReporter] = None) -> T:
    """``build()`` with progress lines and a deadline (``timeout_s`` of None or 0: no deadline)."""
    reporter = reporter or ProgressReporter()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = build()
        except BaseException as exc:  # handed to the caller's thread, which re-raises it
            outcome["error"] = exc

    worker = threading.Thread(target=target, name=f"infercheck-build {what}", daemon=True)
    start = time.monotonic()
    worker.start()
    next_report = FIRST_REPORT_S
    while True:
        elapsed = time.monotonic() - start
        wait = next_report - elapsed
        if timeout_s:
            wait = min(wait, timeout_s - elapsed)
        worker.join(max(wait, 0.0))
        elapsed = time.monotonic() - start
        if not worker.is_alive():
            break
        if timeout_s and elapsed >= timeout_s:
            reporter.report(f"infercheck: building {what}: gave up after {elapsed:.0f} s")
            raise BuildTimeout(
                f"building {what} took longer than --infer-build-timeout={timeout_s:g}s; "
                "raise the option (or mark the test with build_timeout=...) if the build is expected to be this slow "
                "(the abandoned build keeps running in the background until it ends or the session exits)")
        if elapsed >= next_report:
            reporter.report(f"infercheck: building {what} ... {elapsed:.0f} s")
            next_report += REPORT_EVERY_S
    if "error" in outcome:
        raise outcome["error"]
    if elapsed >= FIRST_REPORT_S:
        reporter.report(f"infercheck: built {what} in {elapsed:.1f} s")
    return outcome["value"]

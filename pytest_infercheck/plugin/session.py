"""Per-run state kept on the pytest config: settings layers, the run's state, collected results.

Results travel on the test reports (``report.infercheck``), which pytest-xdist serialises from
worker to controller, so the controller sees every item exactly once whether or not xdist runs,
and the summary, reports and baseline are written only there.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ContextManager, Iterator, Optional, Sequence

import pytest

from ..core.memo import Memo
from ..measure.results import CheckResult, FailedBeforeCheck, TestOutcome
from ..core.spec import Outcome
from ..config.settings import Layer, resolve

RESULTS_ON_ITEM = pytest.StashKey[list]()
FIXTURE_ON_ITEM = pytest.StashKey[Any]()  # the item's Infercheck, to tell whether the test used it


class RunState:
    """What a run keeps between checks, owned by the session (no module globals): one instance of
    each backend, the reference outputs and timings of the current test, failed exports."""

    def __init__(self) -> None:
        self.backends: dict[str, Any] = {}
        # A test's items share the reference; released when the next test starts (reference outputs
        # can be hundreds of MiB).
        self.references = Memo(size=4)
        self.reference_latencies = Memo(size=4)
        self.failed_exports: dict[str, Any] = {}  # an export that failed fails alike for every engine
        self.current_test: Optional[str] = None

    def backend(self, name: str) -> Any:
        if name not in self.backends:
            from ..backends import create_backend

            self.backends[name] = create_backend(name)
        return self.backends[name]

    def artifacts(self, mut: Any, cache: Any) -> Any:
        from ..backends.artifacts import ModelArtifacts

        # A model that cannot be hashed whole never meets an entry or a failed export of another.
        return ModelArtifacts(mut, cache if mut.shared else cache.private(), self.failed_exports)

    def start_test(self, test: str) -> None:
        """Release the previous test's reference outputs when another test's items begin."""
        if test != self.current_test:
            self.references.clear()
            self.reference_latencies.clear()
            self.current_test = test


class InfercheckSession:
    def __init__(self, config: pytest.Config, layers: list[Layer]) -> None:
        self.config = config
        self.layers = layers
        self.run_settings = resolve(layers)
        self.run = RunState()
        self.results: list[CheckResult] = []
        self._cache: Any = None
        self._baseline: Any = None  # BaselineStore, read on first use in each process
        self.baseline_update: Any = None  # UpdateSummary once the controller has written the file
        self.write_problems: list[str] = []  # report writes that failed at session end, one line each
        self.baseline_refused = False  # --infer-baseline-update wrote nothing: the run ends as a usage error
        # Tests of the infercheck fixture that failed before any check made a result, and collection errors
        # ({nodeid, when, message}): the JSON report keeps them, so a gate on it does not pass a model
        # whose import or forward broke before its check.
        self.failed_before_check: list[FailedBeforeCheck] = []

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def path(self, name: str) -> Optional[Path]:
        """An output or input path setting, resolved as pytest resolves its own: an ini value against
        the ini file's directory, a command-line value against the directory pytest was started in."""
        value = getattr(self.run_settings, name)
        if not value:
            return None
        given = Path(value).expanduser()
        if given.is_absolute():
            return given
        source = self.run_settings.sources.get(name)
        inipath = getattr(self.config, "inipath", None)
        base = inipath.parent if source == "ini file" and inipath else self.config.invocation_params.dir
        return Path(base) / given

    def cache_dir(self) -> Path:
        """--infer-cache-dir, else pytest's cache dir, else a private per-user directory (never /tmp)."""
        from ..core.cache_dirs import resolve_cache_dir

        pytest_cache = self.config.cache.mkdir("infercheck") if getattr(self.config, "cache", None) else None
        return resolve_cache_dir(self.path("cache_dir"), Path(pytest_cache) if pytest_cache else None)

    def engine_cache(self) -> Any:
        """The engine cache, made on first use (its directory was checked at start-up)."""
        if self._cache is None:
            from ..backends.cache import EngineCache

            self._cache = EngineCache(self.cache_dir(), enabled=not self.run_settings.no_cache)
        return self._cache

    def close(self) -> None:
        """Remove the run's temporary build directories (--infer-no-cache) in every process."""
        if self._cache is not None:
            self._cache.close()

    def baseline(self) -> Any:
        """The baseline store of ``--infer-baseline``, read and validated once per process; None without it."""
        path = self.path("baseline")
        if path is not None and self._baseline is None:
            from ..baseline.store import BaselineStore

            self._baseline = BaselineStore.load(path)
        return self._baseline

    def unmatched_entries(self) -> list[Any]:
        """The baseline's entries of this machine that no result of the run matched (baseline/summary.py), for
        the summary and the Markdown report; none where the file cannot be read (said where it was compared)."""
        from ..baseline.summary import unmatched_entries

        try:
            store = self.baseline() if self.run_settings.baseline else None
        except pytest.UsageError:
            return []
        return unmatched_entries(store, self.results)

    # -- recording ------------------------------------------------------------------------------

    def record(self, item: pytest.Item, result: CheckResult) -> None:
        """Keep the result on the item: it goes out on the call report (``attach``)."""
        item.stash.setdefault(RESULTS_ON_ITEM, []).append(result)

    def attach(self, item: pytest.Item, report: pytest.TestReport, call: Optional[pytest.CallInfo] = None) -> None:
        """Put the item's results, settled by its outcome, on its call report, and their figures in its
        JUnit properties; a test that never called the fixture fails here.  A test of the fixture that
        failed (setup or call) before any check made a result is marked on its report, for the JSON report."""
        try:
            self._attach(item, report, call)
        finally:  # after _attach: its "never called the fixture" failure is one too
            if report.failed and report.when in ("setup", "call") and not item.stash.get(RESULTS_ON_ITEM, []) \
                    and "infercheck" in getattr(item, "fixturenames", ()):
                # Plain data on the report: it travels to the xdist controller like report.infercheck.
                report.infercheck_failed = asdict(  # type: ignore[attr-defined]
                    failed_entry(item.nodeid, report.when, report))

    def _attach(self, item: pytest.Item, report: pytest.TestReport, call: Optional[pytest.CallInfo] = None) -> None:
        if report.when != "call":
            return
        results = item.stash.get(RESULTS_ON_ITEM, [])
        if results:
            # Whether the test's failure is the one a check raised (plain data: it travels to the xdist
            # controller with the report, and settles the results the same way there).
            excinfo = getattr(call, "excinfo", None)
            raised = getattr(item.stash.get(FIXTURE_ON_ITEM, None), "raised", [])
            report.infercheck_raised = bool(  # type: ignore[attr-defined]
                excinfo is not None and any(excinfo.value is failure for failure in raised))
            # Settled records are new ones (every record is frozen): they replace the item's.
            results = item.stash[RESULTS_ON_ITEM] = settle(results, report)
            # Written once every check of the test is known: a test with several checks names the check
            # in each property, so two checks' figures never share a name. (JUnit XML reads them from
            # the teardown report, which copies the item's.)
            from ..report.junit import junit_properties

            item.user_properties.extend(prop for result in results
                                        for prop in junit_properties(result, name_check=len(results) > 1))
            report.infercheck = [result.to_dict() for result in results]  # type: ignore[attr-defined]
        elif report.passed and not getattr(item.stash.get(FIXTURE_ON_ITEM, None), "used", True):
            # Green would claim an engine was checked: nothing was.
            report.outcome = "failed"
            report.longrepr = (f"{item.nodeid}: the test requested the infercheck fixture but never called "
                               "infercheck(model, example_inputs) (nor infercheck.audit(...)), so no engine was checked")

    def collect(self, report: pytest.TestReport) -> None:
        # Settled again on the controller: a plugin may have changed the report since.
        self.results += settle([CheckResult.from_dict(data) for data in getattr(report, "infercheck", None) or []],
                               report)
        failed = getattr(report, "infercheck_failed", None)
        if isinstance(failed, dict) and report.failed:  # a rerun's first attempt is "rerun", not failed
            self.failed_before_check.append(FailedBeforeCheck(**failed))
        elif report.failed and report.when == "???":  # xdist: the worker crashed (a segfault, an OOM kill)
            self.failed_before_check.append(failed_entry(report.nodeid, "worker crashed", report))

    def collection_failed(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.failed_before_check.append(failed_entry(report.nodeid or ".", "collection", report))

    # -- timing lock ----------------------------------------------------------------------------

    def timing_lock(self, device: str) -> ContextManager[None]:
        """One timed loop at a time per physical GPU, or on the CPU, across xdist workers and concurrent
        runs; a CPU timing also waits for other workers' builds to pause (locks.py)."""
        if not device.startswith("cuda"):
            from ..core.locks import cpu_timing_lock

            return cpu_timing_lock(self.cache_dir())
        from ..core.gpus import timing_lock_key

        return gpu_lock(self.cache_dir(), timing_lock_key(device))

    def build_lock(self) -> ContextManager[None]:
        """Shared by builds (exports, compiles): they overlap each other, never a CPU timing."""
        from ..core.locks import cpu_work_lock

        return cpu_work_lock(self.cache_dir())


def failed_entry(nodeid: str, when: str, report: Any) -> FailedBeforeCheck:
    """A failure before any check, its message pytest's crash line (the exception:
    ``RuntimeError: the forward broke``; a collection error's first ``E`` line, ``ModuleNotFoundError: No
    module named 'x'``), on one line, at most 300 characters."""
    crash = getattr(getattr(report, "longrepr", None), "reprcrash", None)
    message = str(getattr(crash, "message", "") or "")  # "RuntimeError: ...", every line of its message
    if not message:
        text = str(getattr(report, "longreprtext", "") or getattr(report, "longrepr", "") or "")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        message = next((line.lstrip("E").strip() for line in lines if line.startswith("E ")), lines[-1] if lines else "")
    return FailedBeforeCheck(nodeid, when, " ".join(message.split())[:300])


LOCK_LOG = "INFERCHECK_GPU_LOCK_LOG"  # a file to which each timed loop appends "key pid start end" (docs/multi-gpu.md)


@contextmanager
def gpu_lock(cache_root: Path, key: str) -> Iterator[None]:
    """An flock on a file named after the GPU (``gpus.timing_lock_key``: its UUID), in the private cache:
    other workers keep exporting and building in parallel, and only timed loops on one GPU take turns."""
    from ..core.cache_dirs import lock_name
    from ..core.locks import held_lock

    with held_lock(lock_name("gpu", key), cache_root):
        start = time.monotonic()  # CLOCK_MONOTONIC is one clock for every process of the host
        yield
        log = os.environ.get(LOCK_LOG)
        if log:  # written while the lock is held, so the proof of turns is the lock's own record
            with open(log, "a") as handle:
                handle.write(f"{key}\t{os.getpid()}\t{start:.6f}\t{time.monotonic():.6f}\n")


def settle(results: Sequence[CheckResult], report: pytest.TestReport) -> list[CheckResult]:
    """The test's results with pytest's outcome of the test recorded, each judged again with it
    (judge/verdict.py): new records, the same on the worker and on the controller, where a plugin may have
    changed the report since."""
    from ..judge.verdict import Thresholds, judge, verdict

    xfail = hasattr(report, "wasxfail")
    # A failure a check raised is that check's: the test stopped there, so it did not fail on its own, and the
    # checks before it keep their outcomes (a passing first check of two read "failed (test)" when the second
    # one failed). _attach marks the report with whether the test's exception is the one a check raised; a
    # report without the mark (a plugin's, written before it) is read from the verdicts.
    raised = getattr(report, "infercheck_raised", None)
    if raised is None:
        raised = any(verdict(result, Thresholds.recorded(result.settings)).outcome == Outcome.FAILED
                     and result.raise_on_failure for result in results)
    own_failure = report.failed and not raised
    reason = last_line(report.longreprtext) if own_failure else skip_reason(report) if report.skipped and not xfail else ""
    test = TestOutcome(failed=own_failure, skipped=report.skipped, xfail=xfail, reason=reason)
    return [judge(replace(result, test=test), test) for result in results]


def skip_reason(report: pytest.TestReport) -> str:
    """A skip's reason: pytest keeps it as the third part of (path, line, reason)."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return last_line(str(longrepr))


def last_line(text: str) -> str:
    """The last non-empty line of a failure's text: pytest ends a report with the assertion's message."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""

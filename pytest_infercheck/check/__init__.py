"""The ``infercheck`` fixture's callable: ``infercheck(model, example_inputs, ...) -> CheckResult``.

The check itself is check/flow.py's ordered list of stages; this module turns its outcome into
pytest's (a failure, a skip, or the result handed back) and records the result whatever happens, so
the summary and reports see every check: the frozen ``CheckResult`` is built once from the facts the
stages gathered (facts.py), with the stop or skip that ended them.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, Iterable, Optional

import pytest

from ..judge.verdict import judge, summary_line
from ..measure.results import CheckResult, Failure
from ..config.parsers import OptionError
from ..core.failure_location import where_called
from ..config.settings import CALL_KEYS, parse_layer, resolve
from ..core.spec import Outcome
from .context import CheckContext
from .facts import Facts
from .failure import StageFailure, StageSkip
from .flow import CheckInputs, resolve_device, run_check

__all__ = ["CheckContext", "Infercheck", "InfercheckWarning", "StageFailure"]


class InfercheckWarning(UserWarning):
    """Something the user should know that does not fail the check (e.g. generated calibration data)."""


class Infercheck:
    """``infercheck(model, example_inputs, calibration=None, name=None, **settings) -> CheckResult``.

    Raises pytest's failure (with a message naming what fell short) when the engine fails its
    accuracy or latency check, and pytest's skip when the engine cannot run here.  Use
    ``raise_on_failure=False`` to get the result back and assert on it yourself.  A test may call
    it several times (several models or configurations): each call is a check of its own in the
    summary, the reports and the baseline, named by the model or by ``name=``.
    """

    def __init__(self, context: CheckContext) -> None:
        self.context = context
        self.results: list[CheckResult] = []
        # The failures this fixture raised: the test's failure is a check's only when it is one of these
        # (a test may catch a check's raise and then fail on its own assertion).
        self.raised: list[BaseException] = []
        self.audited = False

    @property
    def used(self) -> bool:
        """Whether the test checked anything through this fixture (a check, or the audit)."""
        return bool(self.results) or self.audited

    @property
    def spec(self) -> Any:
        return self.context.spec

    def audit(self, model: Any, example_inputs: Any = None, *, targets: Optional[Iterable[str]] = None,
              trt_version: Optional[str] = None, allow_ops: Iterable[str] = (),
              allow_nodes: Iterable[str] = ()) -> Any:
        """The compatibility audit (``AuditReport``) of ``model`` for the test's own assertions.

        ``targets`` defaults to this item's backend's audit target, or tensorrt and onnxruntime for
        backends the audit does not cover.  Known gaps given here or in the marker
        (allow_ops=/allow_nodes=) are marked allowed and stop blocking.
        """
        from ..audit.runner import DEFAULT_TARGETS, audit
        from ..backends import descriptor_of

        self.audited = True
        settings = resolve(self.context.layers)
        if targets is None:
            own = descriptor_of(self.spec.backend).audit_target(resolve_device(settings.device))
            targets = [own] if own else list(DEFAULT_TARGETS)
        return audit(model, example_inputs, targets=targets, trt_version=trt_version,
                     allow_ops=[*settings.allow_ops, *allow_ops], allow_nodes=[*settings.allow_nodes, *allow_nodes],
                     dynamic_batch=settings.dynamic_batch)

    def __call__(self, model: Any, example_inputs: Any, *, calibration: Optional[Iterable[Any]] = None,
                 name: Optional[str] = None, raise_on_failure: bool = True, **overrides: Any) -> CheckResult:
        caller = sys._getframe(1)  # named in a failure's message (where_called), formatted only then
        try:
            settings = resolve(self.context.layers + [("fixture call", parse_layer("infercheck() call", overrides,
                                                                                   CALL_KEYS))])
        except OptionError as err:
            usage = str(err)
        else:
            usage = ""
        if usage:  # raised outside the except block, so pytest does not print the parser's error twice
            # A usage error in the test's own call or marker: the option and its accepted forms, at the
            # user's line, not a traceback through the plugin's parsers.
            pytest.fail(f"{usage}{where_called(caller, self.context.nodeid)}", pytrace=False)
        spec = self.context.spec
        facts = Facts(CheckResult(nodeid=self.context.nodeid, spec_id=spec.id, backend=spec.backend,
                                  precision=spec.precision, cuda_graphs=spec.cuda_graphs,
                                  check_name=self._check_name(model, name),
                                  budget=str(settings.budget) if settings.budget else None,
                                  settings=settings.describe(), raise_on_failure=bool(raise_on_failure)))
        try:
            run_check(self.context, settings, CheckInputs(model, example_inputs, calibration), facts)
        except StageFailure as failure:
            facts.add(stopped=Failure(failure.stage, str(failure)), traceback=failure.detail)
        except StageSkip as skip:
            facts.add(skipped=Failure(skip.stage, str(skip)))
        finally:
            # Built once, from what the stages found (up to a stop), and judged under the thresholds its
            # recorded settings hold, as the controller and the gate read them.
            result = judge(facts.result())
            self.results.append(result)
            self.context.record(result)
        raised_note = self._warn(result, spec.id)
        if result.outcome == Outcome.SKIPPED and not raised_note:
            # Point the skip at the test, not at this line (what pytest's own skip marker does).
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.failures and raise_on_failure:
            # The first line is what pytest's -rf short summary shows: the stage and the reason, not a header.
            failed = pytest.fail.Exception(
                f"{summary_line(result)}\n{result.message}{where_called(caller, self.context.nodeid)}", pytrace=False)
            self.raised.append(failed)  # kept to tell the test's own failure from this one (plugin/session.settle)
            raise failed
        if raised_note:
            # The run's filters (-W error, filterwarnings = error) raised the check's own note: fail at the
            # user's line with what the note says and how to keep it a warning, not a traceback through here.
            pytest.fail(f"{spec.id}: the check {result.outcome.value}, and its note was raised as an error by this "
                        f"run's warning filters (-W error or filterwarnings = error):\n  {raised_note}\n  "
                        "act on the note, or keep the plugin's notes warnings: filterwarnings = "
                        f"[\"default::{InfercheckWarning.__module__}.InfercheckWarning\"]"
                        f"{where_called(caller, self.context.nodeid)}", pytrace=False)
        return result

    @staticmethod
    def _warn(result: CheckResult, spec_id: str) -> str:
        """Issue the check's notes as InfercheckWarnings at the test's line; the first note the run's warning
        filters raised as an error ("" when none was), after which the rest are not issued."""
        for note in result.warnings:
            try:
                warnings.warn(InfercheckWarning(f"{spec_id}: {note}"), stacklevel=3)
            except InfercheckWarning:
                return note
        return ""

    def _check_name(self, model: Any, name: Optional[str]) -> str:
        """The model's class (or ``name=``), with ``#2``, ``#3``... when the test repeats it."""
        base = str(name) if name else type(model).__name__
        taken = sum(1 for result in self.results if result.check_name.split("#", 1)[0] == base)
        return base if taken == 0 else f"{base}#{taken + 1}"


"""The ``infercheck`` fixture's callable: ``infercheck(model, example_inputs, ...) -> CheckResult``.

The check itself is check/flow.py's ordered list of stages; this module turns its outcome into
pytest's (a failure, a skip, or the result handed back) and records the result whatever happens, so
the summary and reports see every check: the frozen ``CheckResult`` is built once from the facts the
stages gathered (facts.py), with the stop or skip that ended them.
"""

from __future__ import annotations

import linecache
import os
import sys
import warnings
from typing import Any, Iterable, Optional

import pytest

from ..judge.verdict import judge, summary_line
from ..measure.results import CheckResult, Failure
from ..config.parsers import OptionError
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
        for note in result.warnings:
            warnings.warn(InfercheckWarning(f"{spec.id}: {note}"), stacklevel=2)
        if result.outcome == Outcome.SKIPPED:
            # Point the skip at the test, not at this line (what pytest's own skip marker does).
            raise pytest.skip.Exception(result.message, _use_item_location=True)
        if result.failures and raise_on_failure:
            # The first line is what pytest's -rf short summary shows: the stage and the reason, not a header.
            pytest.fail(f"{summary_line(result)}\n{result.message}{where_called(caller, self.context.nodeid)}",
                        pytrace=False)
        return result

    def _check_name(self, model: Any, name: Optional[str]) -> str:
        """The model's class (or ``name=``), with ``#2``, ``#3``... when the test repeats it."""
        base = str(name) if name else type(model).__name__
        taken = sum(1 for result in self.results if result.check_name.split("#", 1)[0] == base)
        return base if taken == 0 else f"{base}#{taken + 1}"


def where_called(frame: Any, nodeid: str) -> str:
    """``\n  at test_models.py:16 in test_resnet: infercheck(model, x)``: the user's line that made the check,
    which a failure raised without pytest's traceback (pytrace=False, to keep the plugin's frames out)
    must name itself.  Called through a helper (a conftest function), the test's own line first and the
    helper's after it.  "" for the test module ``infercheck check`` writes (the CLI names its target), or
    where the frames cannot be read: a message is never lost to its location."""
    try:
        if frame.f_globals.get("__infercheck_generated__"):
            return ""
        test = frame_of_test(frame, nodeid)
        if test is None or test is frame:
            return f"\n  at {_line_of(frame)}"
        return f"\n  at {_line_of(test)}\n  (infercheck called at {_line_of(frame)})"
    except Exception:  # noqa: BLE001 - a location is a courtesy; the failure itself must go out
        return ""


def frame_of_test(frame: Any, nodeid: str) -> Any:
    """The test function's own frame among ``frame`` and its callers: the one running the function the
    node id names (``test_x`` of ``dir/test_m.py::TestC::test_x[eager-fp32]``), in the test's file where the
    node id says which (a file outside the rootdir has none); else the outermost frame in that file; else None."""
    parts = nodeid.split("::")
    test_file = parts[0].replace("/", os.sep) if len(parts) > 1 else ""
    function = parts[-1].split("[", 1)[0]
    in_file = None
    outer = frame
    while outer is not None:
        here = not test_file or _is_file(outer.f_code.co_filename, test_file)
        if here and outer.f_code.co_name == function:
            return outer
        if here and test_file:
            in_file = outer
        outer = outer.f_back
    return in_file


def _is_file(filename: str, test_file: str) -> bool:
    path = os.path.abspath(filename)
    return path == os.path.abspath(test_file) or path.endswith(os.sep + test_file)


def _line_of(frame: Any) -> str:
    """``test_models.py:16 in test_resnet: infercheck(model, x)`` (relative to the working directory where it can be)."""
    path = frame.f_code.co_filename
    try:
        shown = os.path.relpath(path)
        if shown.startswith(".." + os.sep):
            shown = path
    except (ValueError, OSError):  # another drive (Windows), or the working directory is gone
        shown = path
    code = _statement(frame, path)
    return f"{shown}:{frame.f_lineno} in {frame.f_code.co_name}" + (f": {code}" if code else "")


MAX_STATEMENT = 200  # characters of a call split over several lines, joined into one


def _statement(frame: Any, path: str) -> str:
    """The source of the call the frame is in, all its lines joined (a call split over several lines read
    ``result = infercheck(``), shortened to MAX_STATEMENT characters."""
    first = last = frame.f_lineno
    try:  # the instruction's span (Python 3.11+): the whole call expression
        start, end = list(frame.f_code.co_positions())[frame.f_lasti // 2][:2]
        if start and end and start <= frame.f_lineno <= end and end - start < 50:
            first, last = start, end
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    text = " ".join(linecache.getline(path, line).strip() for line in range(first, last + 1)).strip()
    text = text.replace("( ", "(").replace(" )", ")").replace("[ ", "[").replace(" ]", "]")
    return text if len(text) <= MAX_STATEMENT else text[: MAX_STATEMENT - 1] + "…"

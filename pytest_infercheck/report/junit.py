"""``infercheck gate --junitxml=PATH``: the gate's verdicts as JUnit XML, one test case per result.

The properties are the session's (session.junit_properties: every figure and the baseline's side),
so a CI dashboard reads a gated report the way it reads the run's own ``--junitxml``.  A result
that regressed or failed in the run is a ``<failure>`` (not one whose failure its test took with
``raise_on_failure=False``: the run did not fail it either); one that was skipped in the run, ``<skipped>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from ..results import CheckResult, check_label, several_checks
from ..spec import Outcome

# XML 1.0 cannot hold these characters at all, escaped or not: an error message may carry them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def junit_case(result: CheckResult, several: set[str] = frozenset()) -> ET.Element:
    """``several``: the items that ran several checks, whose cases' names say which check they are."""
    from ..session import junit_properties

    module, _, name = result.nodeid.partition("::")
    case = ET.Element("testcase", classname=_text(module.removesuffix(".py").replace("/", ".")),
                      name=_text((name or module) + check_label(result, several)))
    properties = ET.SubElement(case, "properties")
    for key, value in junit_properties(result):
        ET.SubElement(properties, "property", name=_text(key), value=_text(value))
    if result.outcome == Outcome.FAILED and not result.not_raised:  # a failure its test took is the test's
        lines = [str(failure) for failure in result.failures] or [result.message or "failed"]
        failure = ET.SubElement(case, "failure", message=_text(lines[0].splitlines()[0] if lines[0] else "failed"))
        failure.text = _text("\n".join(lines))
    elif result.outcome == Outcome.SKIPPED:
        ET.SubElement(case, "skipped", message=_text(result.message or "skipped"))
    return case


def render_junit(results: Sequence[CheckResult], suite: str = "infercheck gate") -> str:
    several = several_checks(results)
    cases = [junit_case(result, several) for result in results]
    root = ET.Element("testsuites")
    failures = sum(1 for r in results if r.outcome == Outcome.FAILED and not r.not_raised)
    skipped = sum(1 for r in results if r.outcome == Outcome.SKIPPED)
    suite_element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                                  errors="0", skipped=str(skipped))
    suite_element.extend(cases)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, results: Sequence[CheckResult]) -> None:
    from ..files import write_atomic

    write_atomic(Path(path), render_junit(results))

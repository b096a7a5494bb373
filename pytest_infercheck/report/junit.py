"""JUnit XML: every figure of a check as properties, and ``infercheck gate --junitxml=PATH``.

``junit_properties`` (every figure and the baseline's side) is what the session puts on each item for
pytest's own ``--junitxml``, and what the gate's test cases carry, so a CI dashboard reads a gated report the way it reads the run's own ``--junitxml``.  A result
that regressed or failed in the run is a ``<failure>`` (not one whose failure its test took with
``raise_on_failure=False``: the run did not fail it either); one that was skipped in the run, ``<skipped>``.
"""

from __future__ import annotations

from typing import AbstractSet

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Sequence

from ..measure.results import CheckResult, FailedBeforeCheck, check_label, round_figure, several_checks
from ..core.spec import Outcome

# XML 1.0 cannot hold these characters at all, escaped or not: an error message may carry them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _text(value: object) -> str:
    return _NOT_XML.sub("\ufffd", str(value))


def junit_properties(result: CheckResult, *, name_check: bool = False) -> list[tuple[str, Any]]:
    """Every scalar figure, prefixed by the engine id, for JUnit XML's <properties>; ``name_check``
    (a test with several checks): ``infercheck.<engine>[<check>].``."""
    prefix = f"infercheck.{result.spec_id}" + (f"[{result.check_name}]" if name_check else "")
    props: list[tuple[str, Any]] = [(f"{prefix}.outcome", str(result.outcome)), (f"{prefix}.device", result.device)]
    if result.stage:
        props.append((f"{prefix}.stage", str(result.stage)))
    if result.undecided:
        props.append((f"{prefix}.undecided", "; ".join(result.undecided)))
    if result.accuracy is not None:
        for output in result.accuracy.outputs:
            for metric in ("max_abs", "max_rel", "mean_abs", "rel_l2", "cosine", "mismatch_ratio", "top1_agreement"):
                value = getattr(output, metric)
                if value is not None:
                    props.append((f"{prefix}.{output.name}.{metric}", round_figure(value)))
    if result.latency:
        lat = result.latency
        for metric, value in lat.figures().items():
            props.append((f"{prefix}.latency.{metric}", round_figure(value)))
        for metric in ("mean_ms", "std_ms", "min_ms", "count", "throughput"):
            props.append((f"{prefix}.latency.{metric}", round_figure(getattr(lat, metric))))
        if lat.peak_memory_bytes is not None:
            props.append((f"{prefix}.latency.peak_memory_bytes", lat.peak_memory_bytes))
        if lat.kernel is not None:  # a GPU engine's kernel time beside its wall time (kernel_time.py)
            props += [(f"{prefix}.latency.kernel.{name}", round_figure(value))
                      for name, value in lat.kernel.figures().items()]
    if result.speedup is not None:
        props.append((f"{prefix}.speedup_vs_eager", round_figure(result.speedup)))
    if result.build_seconds is not None:
        props.append((f"{prefix}.build_seconds", round_figure(result.build_seconds)))
    if result.budget:
        props.append((f"{prefix}.budget", result.budget))
    props.append((f"{prefix}.cache", result.cache_summary))
    from ..baseline.summary import baseline_properties

    props.extend(baseline_properties(result, prefix))
    return props


def junit_case(result: CheckResult, several: AbstractSet[str] = frozenset()) -> ET.Element:
    """``several``: the items that ran several checks, whose cases' names say which check they are."""
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
    if result.undecided:  # a pass that the figures could not decide is said where CI dashboards read
        ET.SubElement(case, "system-out").text = _text("\n".join(f"undecided: {note}" for note in result.undecided))
    return case


def failed_case(failed: FailedBeforeCheck) -> ET.Element:
    """A test that failed before any check, as a failing case: the gate fails on it, and a JUnit file of
    "0 tests, 0 failures" would read green beside a red job."""
    module, _, name = failed.nodeid.partition("::")
    case = ET.Element("testcase", classname=_text(module.removesuffix(".py").replace("/", ".")),
                      name=_text(name or module))
    text = f"failed in the run before any check ({failed.when}): {failed.message}"
    ET.SubElement(case, "failure", message=_text(text)).text = _text(text)
    return case


def render_junit(results: Sequence[CheckResult], suite: str = "infercheck gate",
                 failed_before_check: Sequence[FailedBeforeCheck] = (), gate_failed: str = "") -> str:
    """``gate_failed``: the gate's failed verdict, a case of its own where no other case fails (a report with
    nothing to judge), so the file never reads "0 failures" beside a failed job."""
    several = several_checks(results)
    cases = [junit_case(result, several) for result in results]
    cases += [failed_case(failed) for failed in failed_before_check]
    failures = sum(1 for r in results if r.outcome == Outcome.FAILED and not r.not_raised) + len(failed_before_check)
    if gate_failed and not failures:
        case = ET.Element("testcase", classname="infercheck", name="gate")
        ET.SubElement(case, "failure", message=gate_failed).text = gate_failed
        cases.append(case)
        failures = 1
    root = ET.Element("testsuites")
    skipped = sum(1 for r in results if r.outcome == Outcome.SKIPPED)
    suite_element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)), failures=str(failures),
                                  errors="0", skipped=str(skipped))
    suite_element.extend(cases)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, results: Sequence[CheckResult], failed_before_check: Sequence[FailedBeforeCheck] = (),
                gate_failed: str = "") -> None:
    from ..core.files import write_atomic

    write_atomic(Path(path), render_junit(results, failed_before_check=failed_before_check, gate_failed=gate_failed))

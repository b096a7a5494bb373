"""Every fact record is frozen and holds tuples; the codec reads ``tuple[X, ...]`` back; a report saved
before the records were frozen (lists in its JSON, the same schema) still loads, figure for figure.

No engine runs here: the report is a real one written by the plugin at commit 3828906
(tests/reference/README.md), and the records are the ones the loader builds from it.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from pytest_infercheck.audit import findings
from pytest_infercheck.check.facts import FACT_FIELDS, VERDICT_FIELDS, Facts
from pytest_infercheck.core.codec import DecodeError, from_data
from pytest_infercheck.core.spec import Outcome, Stage
from pytest_infercheck.judge.verdict import judge
from pytest_infercheck.measure import budget, max_batch, memory, profiling, regression, results
from pytest_infercheck.measure.results import CheckResult, Failure, LatencyStats
from pytest_infercheck.report.saved import load_report

SAVED = Path(__file__).resolve().parents[1] / "reference" / "report-schema-3-lists.json"
RECORD_MODULES = (results, profiling, regression, budget, memory, max_batch)


def nested(kind: Any) -> Iterator[type]:
    """The dataclasses a field's annotation names, however deep (``Optional[tuple[Finding, ...]]``)."""
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        yield kind
    for arg in typing.get_args(kind):
        yield from nested(arg)


def record_classes() -> list[type]:
    """Every dataclass of the record modules, and every one a ``CheckResult`` nests (a record added to it
    later, in any module, is held to the rule too)."""
    found = {value for module in RECORD_MODULES for value in vars(module).values()
             if isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == module.__name__}
    pending = [CheckResult]
    while pending:
        cls = pending.pop()
        found.add(cls)
        pending += [inner for hint in typing.get_type_hints(cls).values() for inner in nested(hint)
                    if inner not in found]
    return sorted(found, key=lambda cls: cls.__qualname__)


def test_the_records_include_the_nested_ones() -> None:
    assert {findings.Finding, profiling.ProfileRow, max_batch.BatchTrial, results.TestOutcome} <= set(record_classes())


@pytest.mark.parametrize("cls", record_classes(), ids=lambda cls: cls.__qualname__)
def test_every_record_class_is_frozen_and_holds_no_list(cls: type) -> None:
    assert cls.__dataclass_params__.frozen, f"{cls.__qualname__} is not @dataclass(frozen=True)"  # type: ignore[attr-defined]
    hints = typing.get_type_hints(cls)
    lists = [f.name for f in dataclasses.fields(cls) if "list[" in str(hints[f.name]).replace("List[", "list[")]
    assert not lists, f"{cls.__qualname__} holds lists: {lists} (a frozen record holds tuples)"


def walk(value: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every dataclass instance inside ``value`` (itself included), with where it sits."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        yield where, value
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from walk(item, f"{where}[{index}]")


@pytest.fixture(scope="module")
def saved() -> tuple[dict[str, Any], list[CheckResult]]:
    return json.loads(SAVED.read_text("utf-8")), load_report(SAVED).results


def test_the_saved_report_holds_every_kind_of_record(saved: tuple[dict[str, Any], list[CheckResult]]) -> None:
    _, loaded = saved
    kinds = {type(record).__name__ for result in loaded for _, record in walk(result, "r")}
    assert {"AccuracyResult", "OutputAccuracy", "LatencyStats", "BudgetVerdict", "ProfileTable", "ProfileRow",
            "MaxBatchResult", "BatchTrial", "BaselineComparison", "LatencyComparison", "AccuracyChange",
            "DynamicBatchCheck", "Divergence", "TensorError", "ExportInfo", "CalibrationInfo", "PrecisionRecipe",
            "RepairResult", "RepairTrial", "Finding", "Failure", "TestOutcome", "Tolerance"} <= kinds


def test_no_record_of_a_loaded_report_can_be_changed(saved: tuple[dict[str, Any], list[CheckResult]]) -> None:
    _, loaded = saved
    tried = 0
    for index, result in enumerate(loaded):
        for where, record in walk(result, f"results[{index}]"):
            name = dataclasses.fields(record)[0].name
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(record, name, getattr(record, name))
            tried += 1
            for f in dataclasses.fields(record):
                assert not isinstance(getattr(record, f.name), list), f"{where}.{f.name} is a list"
    assert tried > 50


def contained(saved_value: Any, read_back: Any, where: str) -> None:
    """Every key the old writer wrote reads back with the same value (a newer field beside it is allowed)."""
    if isinstance(saved_value, dict):
        assert isinstance(read_back, dict), where
        for key, value in saved_value.items():
            assert key in read_back, f"{where}.{key} is lost"
            contained(value, read_back[key], f"{where}.{key}")
    elif isinstance(saved_value, list):
        assert isinstance(read_back, list) and len(read_back) == len(saved_value), where
        for index, (old, new) in enumerate(zip(saved_value, read_back)):
            contained(old, new, f"{where}[{index}]")
    else:
        assert read_back == saved_value, f"{where}: {saved_value!r} reads back as {read_back!r}"


def test_a_report_saved_with_lists_reads_back_figure_for_figure(
        saved: tuple[dict[str, Any], list[CheckResult]]) -> None:
    data, loaded = saved
    assert data["schema"] == results.SCHEMA_VERSION and len(loaded) == len(data["results"]) == 6
    for index, (written, result) in enumerate(zip(data["results"], loaded)):
        contained(written, result.to_dict(), f"results[{index}]")
    # and the sequences are tuples now
    failing = next(result for result in loaded if result.repair is not None)
    assert isinstance(failing.failures, tuple) and isinstance(failing.repair.keep_fp32, tuple)
    assert isinstance(failing.accuracy.outputs, tuple) and isinstance(failing.accuracy.outputs[0].shape, tuple)


def test_judging_a_saved_result_again_gives_its_verdict_and_a_new_record(
        saved: tuple[dict[str, Any], list[CheckResult]]) -> None:
    _, loaded = saved
    for result in loaded:
        again = judge(result, result.test)
        assert again is not result
        assert (again.outcome, again.stage, again.failures, again.message) == \
            (result.outcome, result.stage, result.failures, result.message)


# -- the codec's tuples --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Pair:
    names: tuple[str, ...]
    point: tuple[int, float]
    maybe: Optional[tuple[float, ...]] = None


def test_the_codec_reads_tuples_back_as_tuples() -> None:
    read = from_data(_Pair, {"names": ["a", "b"], "point": [1, 2], "maybe": ["nan", 1]})
    assert read.names == ("a", "b") and read.point == (1, 2.0) and isinstance(read.point[1], float)
    assert read.maybe is not None and read.maybe[0] != read.maybe[0] and read.maybe[1] == 1.0
    assert from_data(_Pair, {"names": [], "point": [0, 0]}) == _Pair((), (0, 0.0))


@pytest.mark.parametrize("data, problem", [
    ({"names": ["a", 1], "point": [1, 2]}, "_Pair.names[1] is 1, expected a string"),
    ({"names": [], "point": [1, 2, 3]}, "_Pair.point has 3 items, expected 2"),
    ({"names": [], "point": [1, "x"]}, "_Pair.point[1] is 'x', expected a number"),
    ({"names": "ab", "point": [1, 2]}, "_Pair.names is 'ab', expected a list"),
])
def test_the_codec_refuses_a_tuple_that_is_not_what_it_says(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(DecodeError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        from_data(_Pair, data)


# -- the flow's accumulator ----------------------------------------------------------------------


def _start() -> CheckResult:
    return CheckResult(nodeid="t.py::t[eager-fp32]", spec_id="eager-fp32", backend="eager", precision="fp32",
                       cuda_graphs=False, warnings=("given",))


def test_facts_build_a_new_record_each_time_with_what_was_gathered_so_far() -> None:
    facts = Facts(_start())
    facts.add(device="cpu", build_seconds=1.5)
    facts.warnings.append("a note")
    first = facts.result()
    facts.add(stopped=Failure(Stage.BUILD, "no"), traceback="trace")
    second = facts.result()
    assert (first.device, first.build_seconds, first.stopped, first.warnings) == ("cpu", 1.5, None, ("given", "a note"))
    assert second.stopped == Failure(Stage.BUILD, "no") and second.build_seconds == 1.5 and first is not second
    assert judge(second).outcome == Outcome.FAILED and second.outcome == Outcome.PASSED  # judged: a new record


@pytest.mark.parametrize("name", sorted(VERDICT_FIELDS))
def test_facts_refuse_the_verdicts_fields(name: str) -> None:
    with pytest.raises(TypeError, match="the verdict's"):
        Facts(_start()).add(**{name: None})


def test_facts_refuse_a_field_no_record_has() -> None:
    with pytest.raises(TypeError, match="no such fact"):
        Facts(_start()).add(lateny=None)
    assert "latency" in FACT_FIELDS and "warnings" not in FACT_FIELDS


def test_a_latency_with_its_budget_is_a_new_record() -> None:
    stats = LatencyStats(samples_ms=(1.0, 2.0), timer="cpu", count=2, percentiles_ms={"p50": 1.5})
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.budget_verdict = None  # type: ignore[misc]
    assert stats.p50_ms == 1.5 and dataclasses.replace(stats, probe_ms=0.5).p50_ms == 1.5

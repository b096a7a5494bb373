"""Option parsing alone, and bad values as usage errors that name the option and the accepted forms."""

from __future__ import annotations

import pytest

from pytest_infercheck.options import (
    Budget, OptionError, parse_backends, parse_budget, parse_cuda_graphs, parse_duration_ms, parse_percent,
    parse_precisions, parse_seconds,
)


@pytest.mark.parametrize("text, expected", [
    ("30ms", Budget("p90", 30.0)),
    ("2.5ms", Budget("p90", 2.5)),
    ("1s", Budget("p90", 1000.0)),
    ("250us", Budget("p90", 0.25)),
    ("p99:30ms", Budget("p99", 30.0)),
    ("P50:1s", Budget("p50", 1000.0)),
    ("mean:2.5ms", Budget("mean", 2.5)),
])
def test_budget_forms(text: str, expected: Budget) -> None:
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["30", "ms", "30 minutes", "p95:30ms", "-5ms", "0ms", "p99:"])
def test_bad_budgets_name_the_accepted_forms(text: str) -> None:
    with pytest.raises(OptionError, match="30ms|p99|unit|greater than zero"):
        parse_budget(text)


def test_duration_units() -> None:
    assert parse_duration_ms("1.5s") == 1500.0
    assert parse_seconds("500ms") == 0.5
    assert parse_seconds("2") == 2.0


def test_backend_and_precision_lists() -> None:
    assert parse_backends("onnxruntime, eager,onnxruntime") == ("onnxruntime", "eager")
    assert parse_precisions(["FP16", "int8"]) == ("fp16", "int8")
    with pytest.raises(OptionError, match="unknown backend 'trt'; known backends: eager, inductor, aoti, onnxruntime, tensorrt"):
        parse_backends("trt")
    with pytest.raises(OptionError, match="known precisions: fp32, fp16, bf16, int8"):
        parse_precisions("fp8")


def test_cuda_graph_modes() -> None:
    assert parse_cuda_graphs("both") == (False, True)
    assert parse_cuda_graphs(True) == (True,)
    assert parse_cuda_graphs([False, True, True]) == (False, True)
    with pytest.raises(OptionError, match="off, on, both"):
        parse_cuda_graphs("sometimes")


def test_percent() -> None:
    assert parse_percent("5%") == pytest.approx(0.05)
    assert parse_percent(0.1) == 0.1
    with pytest.raises(OptionError):
        parse_percent("five")


def test_command_line_values_are_parsed(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("--infer-budget=p99:12ms", "--infer-backends=onnxruntime",
                                     "--infer-cuda-graphs=both", "--infer-min-time=250ms")
    assert config.getoption("budget") == Budget("p99", 12.0)
    assert config.getoption("backends") == ("onnxruntime",)
    assert config.getoption("cuda_graphs") == (False, True)
    assert config.getoption("min_time") == 0.25


@pytest.mark.parametrize("args, fragment", [
    (["--infer-budget=fast"], "--infer-budget: 'fast'"),
    (["--infer-backends=trt"], "--infer-backends: unknown backend 'trt'; known backends: eager, inductor"),
    (["--infer-precisions=fp8"], "--infer-precisions: unknown precision 'fp8'"),
    (["--infer-device=tpu"], "--infer-device: unknown device 'tpu'; known devices: auto, cpu, cuda"),
    (["--infer-min-iters=many"], "--infer-min-iters: 'many' is not a whole number"),
])
def test_bad_option_is_a_usage_error(pytester: pytest.Pytester, args: list[str], fragment: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{fragment}*"])


def test_bad_ini_value_is_a_usage_error_naming_the_key(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\ninfer_budget = soon\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option infer_budget = 'soon'*use a number with a unit*"])


def test_help_lists_the_option_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*inference engine checks (pytest-infercheck)*", "*--infer-budget=BUDGET*",
                                 "*infer_budget*"])

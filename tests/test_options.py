"""Option parsing alone, and bad values as usage errors that name the option and the accepted forms."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_infercheck.config.options import (
    Budget, OptionError, parse_backends, parse_budget, parse_cosine, parse_count, parse_cuda_graphs,
    parse_duration_ms, parse_factor, parse_float, parse_fraction, parse_percent, parse_positive_int,
    parse_precisions, parse_seconds, parse_seed, parse_timeout, parse_value,
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


def test_a_bad_budget_is_quoted_once_and_whole_only_where_it_differs_from_its_duration() -> None:
    with pytest.raises(OptionError) as raised:
        parse_budget("fast")
    assert str(raised.value).startswith("'fast' is not a duration; use a number with a unit")  # was "'fast': 'fast' ..."
    with pytest.raises(OptionError) as raised:
        parse_budget("p99:fast")
    assert str(raised.value).startswith("'p99:fast': 'fast' is not a duration")


def test_duration_units() -> None:
    assert parse_duration_ms("1.5s") == 1500.0
    assert parse_seconds("500ms") == 0.5
    assert parse_seconds("2") == 2.0


def test_backend_and_precision_lists() -> None:
    assert parse_backends("onnxruntime, eager,onnxruntime") == ("onnxruntime", "eager")
    assert parse_precisions(["FP16", "int8"]) == ("fp16", "int8")
    with pytest.raises(OptionError, match="unknown backend 'trt'; known backends: eager, inductor, aoti, onnxruntime, tensorrt"):
        parse_backends("trt")
    with pytest.raises(OptionError, match="known precisions: fp32, fp16, bf16, int8, fp8"):
        parse_precisions("fp4")


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
    (["--infer-precisions=fp4"], "--infer-precisions: unknown precision 'fp4'"),
    (["--infer-device=tpu"], "--infer-device: unknown device 'tpu'; known devices: auto, cpu, cuda"),
    # a list where one value is taken would silently drop the rest: refused, naming the option
    (["--infer-device=cpu,cuda"], "--infer-device: one device, not cpu, cuda; known devices: auto, cpu, cuda"),
    (["--infer-compile-mode=default,max-autotune"], "--infer-compile-mode: one torch.compile mode, not default, "
                                                    "max-autotune*"),
    (["--infer-xdist-groups=on,off"], "--infer-xdist-groups: one xdist grouping, not on, off*"),
    (["--infer-min-iters=many"], "--infer-min-iters: 'many' is not a whole number"),
    # ONNX Runtime's quantizer reads an empty list as every type: the engine quantized everything while its
    # recipe said nothing (found by an attacker's session); an unknown type failed every INT8 item at build.
    (["--infer-int8-ops="], "--infer-int8-ops: '' names no operator type; use ONNX operator types such as "
                            "MatMul,Gemm,Conv,ConvTranspose (the default), or all"),
    (["--infer-int8-ops=,"], "--infer-int8-ops: ',' names no operator type*"),
    (["--infer-int8-ops=MatMul,bogus"], "--infer-int8-ops: 'bogus' is no operator type ONNX Runtime's QDQ "
                                        "quantizer handles; it handles *Conv*MatMul*"),
    (["--infer-engines=eager-fp32", "--infer-backends=eager"], "--infer-engines and --infer-backends spell the same "
                                                                "engine matrix two ways in the command line*"),
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


# No value switches a check off: NaN compares false with every limit, inf disables one, and a seed torch
# cannot take errors every item later.  Each is a usage error naming the option and the accepted forms.
@pytest.mark.parametrize("args, fragment", [
    (["--infer-max-regression=nan"], "--infer-max-regression: 'nan' is not a finite number; use a percentage"),
    (["--infer-max-regression=inf"], "--infer-max-regression: 'inf' is not a finite number"),
    (["--infer-accuracy-factor=inf"], "--infer-accuracy-factor: 'inf' is not a finite number; use a finite factor"),
    (["--infer-accuracy-factor=nan"], "--infer-accuracy-factor: 'nan' is not a finite number"),
    (["--infer-accuracy-floor=nan"], "--infer-accuracy-floor: 'nan' is not a finite number"),
    (["--infer-accuracy-floor=-1e-3"], "--infer-accuracy-floor: '-1e-3' must not be negative"),
    (["--infer-min-time=nan"], "--infer-min-time: 'nan' is not a finite number; use a number of seconds"),
    (["--infer-min-time=inf"], "--infer-min-time: 'inf' is not a finite number"),
    (["--infer-min-time=" + "9" * 400 + "s"], "--infer-min-time: '99999*' is too large"),
    (["--infer-build-timeout=nan"], "--infer-build-timeout: 'nan' is not a deadline; use seconds (600)*or off"),
    (["--infer-build-timeout=0"], "--infer-build-timeout: '0' must be greater than zero*or off for no deadline"),
    (["--infer-seed=99999999999999999999"], "--infer-seed: '99999999999999999999' is out of range; use a whole "
                                             "number from 0 to 18446744073709551615"),
    (["--infer-seed=-1"], "--infer-seed: '-1' is out of range"),
    (["--infer-min-iters=0"], "--infer-min-iters: '0' must be at least 1"),
    (["--infer-max-iters=2.5"], "--infer-max-iters: '2.5' is not a whole number"),
    (["--infer-warmup=-1"], "--infer-warmup: '-1' must not be negative"),
    (["--infer-budget=" + "9" * 400 + "ms"], "--infer-budget: *too large"),
])
def test_non_finite_and_out_of_range_values_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                                             fragment: str) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{fragment}*"])
    assert "Traceback" not in result.stderr.str()


@pytest.mark.parametrize("key, value, fragment", [
    ("infer_max_regression", "nan", "is not a finite number"),
    ("infer_accuracy_factor", "inf", "is not a finite number"),
    ("infer_accuracy_floor", "nan", "is not a finite number"),
    ("infer_min_time", "inf", "is not a finite number"),
    ("infer_build_timeout", "0", "must be greater than zero"),
    ("infer_seed", "99999999999999999999", "out of range"),
])
def test_non_finite_ini_values_are_usage_errors_naming_the_key(pytester: pytest.Pytester, key: str, value: str,
                                                               fragment: str) -> None:
    pytester.makeini(f"[pytest]\n{key} = {value}\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*ini option {key} = '{value}'*{fragment}*"])


def test_documented_zero_and_off_values_are_accepted(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfigure("--infer-warmup=0", "--infer-min-time=0", "--infer-build-timeout=off",
                                     f"--infer-seed={2**64 - 1}", "--infer-max-regression=500%")
    assert config.getoption("warmup") == 0
    assert config.getoption("min_time") == 0.0
    assert config.getoption("build_timeout") == 0.0  # "off": progress.run_build reads 0 as no deadline
    assert config.getoption("seed") == 2**64 - 1
    assert config.getoption("max_regression") == 5.0


def test_the_largest_accepted_seed_is_one_torch_takes() -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(parse_seed(str(2**64 - 1)))  # raises "Overflow when unpacking" one past it


@pytest.mark.parametrize("parser, value", [
    (parse_float, float("nan")), (parse_float, float("inf")), (parse_float, True),
    (parse_percent, float("nan")), (parse_fraction, "150%"), (parse_cosine, 1.5), (parse_cosine, float("nan")),
    (parse_positive_int, 2.5), (parse_positive_int, True), (parse_count, float("inf")),
    (parse_timeout, float("inf")), (parse_seconds, float("-inf")), (parse_factor, float("nan")),
])
def test_marker_values_of_other_types_are_checked_too(parser: Any, value: Any) -> None:
    # A marker or an infercheck(...) call passes Python values, not strings: the same limits apply.
    with pytest.raises(OptionError, match="finite|whole number|not a number|not a deadline|more than 100%|above 1"):
        parser(value)


def test_non_finite_marker_value_fails_naming_the_setting() -> None:
    with pytest.raises(OptionError, match="marker max_regression: nan is not a finite number"):
        parse_value("max_regression", float("nan"), "marker")
    with pytest.raises(OptionError, match="call min_cosine: 2 is above 1"):
        parse_value("min_cosine", 2, "call")


# A floor above its cap is a setting the sampler would silently not honour: refused where it is given.
@pytest.mark.parametrize("args, ini, fragment", [
    (["--infer-min-iters=600", "--infer-max-iters=500"], "",
     "*--infer-min-iters=600 (command line) is above --infer-max-iters=500 (command line): sampling would stop at "
     "the cap before the floor is reached; raise max_iters or lower min_iters*"),
    ([], "infer_min_time = 3s", "*--infer-min-time=3.0 (ini file) is above --infer-max-time=1.0 (default)*"),
    (["--infer-max-time=0.5s"], "infer_min_time = 0.8s", "*--infer-min-time=0.8 (ini file) is above "
                                                         "--infer-max-time=0.5 (command line)*"),
])
def test_a_sampling_floor_above_its_cap_is_a_usage_error(pytester: pytest.Pytester, args: list[str], ini: str,
                                                          fragment: str) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([fragment])


def test_a_cap_below_a_default_floor_is_the_users_choice(pytester: pytest.Pytester) -> None:
    """--infer-max-time=50ms is below the default 0.1 s floor: asked for, so the cap wins, as documented."""
    pytester.makepyfile("def test_nothing():\n    pass\n")
    pytester.runpytest("--infer-max-time=50ms", "--infer-max-iters=20").assert_outcomes(passed=1)


def test_a_sampling_floor_above_its_cap_fails_the_marker_or_call_that_set_it(run_plugin) -> None:
    result = run_plugin('''
import pytest
from fixtures.models import small_cnn, cnn_inputs

@pytest.mark.infercheck(backends=["eager"], min_time="2s")
def test_marker(infercheck):
    infercheck(small_cnn(), cnn_inputs())

@pytest.mark.infercheck(backends=["eager"])
def test_call(infercheck):
    infercheck(small_cnn(), cnn_inputs(), max_iters=10, min_iters=20)

@pytest.mark.infercheck(backends=["eager"])
def test_fine(infercheck):
    infercheck(small_cnn(), cnn_inputs())
''')
    result.assert_outcomes(passed=1, failed=1, errors=1)  # the marker's test errors at setup, as any bad marker
    result.stdout.fnmatch_lines([
        "*test_model.py:4: @pytest.mark.infercheck: min_time=2.0 (marker) is above --infer-max-time=*",
        "*min_iters=20 (fixture call) is above max_iters=10 (fixture call)*"])


def test_int8_ops_in_a_marker_or_call_name_at_least_one_type() -> None:
    from pytest_infercheck.config.parsers import OptionError, parse_int8_ops

    assert parse_int8_ops(["MatMul", " Gemm "]) == ("MatMul", "Gemm")
    assert parse_int8_ops("all") == ("all",)
    assert parse_int8_ops({"MatMul": 1}) == ("MatMul",)  # a dict gives its keys, as any iterable of names
    for empty in ([], "", " , ", [""]):
        with pytest.raises(OptionError, match="names no operator type"):
            parse_int8_ops(empty)


def test_keep_fp32_refuses_an_empty_module_name_rather_than_dropping_it() -> None:
    """keep_fp32=[""] (or ",") meant the root, the whole model: it was dropped without a word and the item
    passed with an empty keep-list recorded (an attacker's session)."""
    from pytest_infercheck.config.parsers import OptionError, parse_keep_fp32

    assert parse_keep_fp32(["encoder.layer.3", " pooler "]) == ("encoder.layer.3", "pooler")
    assert parse_keep_fp32("encoder, pooler,") == ("encoder", "pooler") and parse_keep_fp32([]) == ()
    for empty in ([""], [" "], ",", ["net.0", ""]):
        with pytest.raises(OptionError, match="holds an empty module name: the root module cannot be kept in FP32"):
            parse_keep_fp32(empty)


def test_markers_of_the_module_the_class_and_the_test_merge_the_nearest_winning(run_plugin) -> None:
    """A module's ``pytestmark`` was dropped whenever the test had a marker of its own (pytest's closest marker
    alone was read): its impossible budget never applied, and the item passed."""
    result = run_plugin("""
import pytest, torch

pytestmark = pytest.mark.infercheck(budget="p50:500s", tolerances={"output": {"atol": 1e-3}}, warmup=3)

@pytest.mark.infercheck(budget="p90:900s", tolerances={"output": {"rtol": 1e-2}})
class TestModels:
    @pytest.mark.infercheck(engines=["eager-fp32"], warmup=4)
    def test_linear(self, infercheck):
        result = infercheck(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8))
        settings = result.settings
        assert settings["budget"] == {"value": "p90:900000ms", "source": "marker"}  # the class's over the module's
        assert settings["warmup"] == {"value": 4, "source": "marker"}  # the test's over the module's
        assert settings["tolerances"]["value"] == {"output": {"atol": 1e-3, "rtol": 1e-2}}  # merged per output

@pytest.mark.infercheck(engines=["eager-fp32"])
def test_module_level(infercheck):
    result = infercheck(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8))
    assert result.settings["budget"] == {"value": "p50:500000ms", "source": "marker"}
""", "--infer-device=cpu")
    result.assert_outcomes(passed=2)


def test_two_markers_on_one_test_that_disagree_are_a_marker_error(run_plugin) -> None:
    """Stacked markers on one test: one of them was silently dropped (only onnxruntime-fp32 ran)."""
    result = run_plugin("""
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"])
@pytest.mark.infercheck(engines=["onnxruntime-fp32"])
def test_two(infercheck):
    infercheck(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8))

@pytest.mark.infercheck(engines=["eager-fp32"])
@pytest.mark.infercheck(warmup=3)
def test_complementary(infercheck):
    assert infercheck(torch.nn.Linear(8, 4).eval(), torch.randn(2, 8)).settings["warmup"]["value"] == 3
""", "--infer-device=cpu")
    result.assert_outcomes(passed=1, errors=1)
    assert ("test_model.py:3: @pytest.mark.infercheck: two markers stacked on test_two set engines to different "
            "values (['onnxruntime-fp32'] and ['eager-fp32']); give each key once") in result.stdout.str()


def test_a_derived_class_a_parameter_set_and_the_engine_spelling_follow_the_nearest_marker(run_plugin) -> None:
    """The review of the marker merge: a derived class's marker clashed with its base's; a pytest.param's marker
    clashed with the test's, in a traceback; a module's engines= beat the test's own backends/precisions."""
    result = run_plugin(NEAREST, "--infer-device=cpu", "--co", "-q")
    out = result.stdout.str()
    assert "test_model.py::test_own_spelling[eager-bf16]" in out and "test_own_spelling[eager-fp32]" not in out
    result = run_plugin(NEAREST, "--infer-device=cpu")
    result.assert_outcomes(passed=4, errors=1)
    assert ("@pytest.mark.infercheck: a pytest.param(marks=...) marker cannot set engines: the engines are the "
            "test's items") in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


NEAREST = """
import pytest, torch

pytestmark = pytest.mark.infercheck(engines=["eager-fp32"])

@pytest.mark.infercheck(warmup=3)
class Base:
    pass

@pytest.mark.infercheck(warmup=4)
class TestDerived(Base):
    def test_derived(self, infercheck):
        assert infercheck(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4)).settings["warmup"]["value"] == 4

@pytest.mark.infercheck(warmup=2)
@pytest.mark.parametrize("n, warmup", [(1, 2), pytest.param(2, 5, marks=pytest.mark.infercheck(warmup=5))])
def test_param(infercheck, n, warmup):
    assert infercheck(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4)).settings["warmup"]["value"] == warmup

@pytest.mark.parametrize("n", [pytest.param(2, marks=pytest.mark.infercheck(engines=["onnxruntime-fp32"]))])
def test_param_engines(infercheck, n):
    infercheck(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4))

@pytest.mark.infercheck(backends=["eager"], precisions=["bf16"])
def test_own_spelling(infercheck):
    infercheck(torch.nn.Linear(4, 2).eval(), torch.randn(2, 4))
"""


def test_the_command_lines_engines_yield_to_a_markers_backends(run_plugin) -> None:
    """--infer-engines on the command line overrode a marker's backends (newcomer trial 4): command line < marker."""
    result = run_plugin("""
import pytest, torch

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_marked(infercheck):
    pass

def test_unmarked(infercheck):
    pass
""", "--infer-engines=eager-bf16", "--co", "-q")
    out = result.stdout.str()
    assert "test_model.py::test_marked[eager-fp32]" in out and "test_marked[eager-bf16]" not in out
    assert "test_model.py::test_unmarked[eager-bf16]" in out


def test_one_marker_giving_both_spellings_of_the_engine_matrix_is_refused(run_plugin) -> None:
    """engines= beside backends= in one marker: backends was silently ignored (the second review)."""
    result = run_plugin("""
import pytest, torch

@pytest.mark.infercheck(engines=["eager-fp32"], backends=["onnxruntime"])
def test_both(infercheck):
    pass
""")
    result.assert_outcomes(errors=1)
    assert ("test_model.py:3: @pytest.mark.infercheck: engines and backends spell the same engine matrix two ways in "
            "the marker: give engines (e.g. onnxruntime-fp16,eager-fp32), or backends and precisions, not both"
            ) in result.stdout.str()


def test_int8_ops_take_every_type_that_all_quantizes() -> None:
    """int8_ops=["Softmax"] (or Add, Mul, Concat, Sigmoid) was refused while int8_ops=all quantized those types
    (quantize_static reads both of ONNX Runtime's registries; newcomer trial 5)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    from pytest_infercheck.model.precision import int8_op_types, unknown_int8_ops

    for op in ("Softmax", "Add", "Mul", "Concat", "Sigmoid", "MatMul"):
        assert unknown_int8_ops([op]) is None and int8_op_types([op]) == [op]
    assert set(QLinearOpsRegistry) - set(QDQRegistry) >= {"Softmax", "Add", "Mul"}  # the types that were refused
    assert "'Bogus' is no operator type" in (unknown_int8_ops(["Bogus"]) or "")

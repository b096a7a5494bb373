"""Metrics, tolerances and the worst element, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_infercheck.measure.compare import DEFAULT_TOLERANCES, compare_outputs, measure_output, tolerance_for
from pytest_infercheck.measure.results import Tolerance

TIGHT = Tolerance(atol=1e-3, rtol=0.0, max_mismatch=0.0, min_cosine=0.999)


def test_identical_outputs_pass_with_zero_error() -> None:
    ref = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    acc = measure_output("logits", ref.copy(), ref, TIGHT)
    assert acc.passed
    assert acc.max_abs == 0.0 and acc.rel_l2 == 0.0 and acc.mismatched == 0
    assert acc.cosine == pytest.approx(1.0)
    assert acc.top1_agreement == 1.0


def test_worst_element_is_located() -> None:
    ref = np.zeros((2, 3, 4), dtype=np.float32) + 1.0
    out = ref.copy()
    out[1, 2, 3] = 1.5
    out[0, 0, 0] = 1.01
    acc = measure_output("y", out, ref, TIGHT)
    assert acc.worst_index == (1, 2, 3)  # a frozen record holds tuples
    assert acc.worst_value == pytest.approx(1.5) and acc.worst_reference == pytest.approx(1.0)
    assert acc.mismatched == 2 and acc.total == 24
    assert acc.max_abs == pytest.approx(0.5)
    message = acc.describe()
    assert "output 'y' [2, 3, 4]" in message
    assert "2/24 elements (8.33%) exceed atol=0.001" in message
    assert "worst element [1, 2, 3]: engine 1.5 vs reference 1" in message


def test_mismatch_share_within_allowance_passes() -> None:
    ref = np.ones(1000, dtype=np.float32)
    out = ref.copy()
    out[:5] += 0.1  # 0.5% of elements off
    assert measure_output("o", out, ref, Tolerance(1e-3, 0, max_mismatch=0.01, min_cosine=0.99)).passed
    assert not measure_output("o", out, ref, Tolerance(1e-3, 0, max_mismatch=0.001, min_cosine=0.99)).passed


def test_nan_and_inf_are_failures_even_with_loose_bounds() -> None:
    ref = np.ones(10, dtype=np.float32)
    out = ref.copy()
    out[3] = np.nan
    out[4] = np.inf
    acc = measure_output("o", out, ref, Tolerance(atol=1e9, rtol=1e9, max_mismatch=1.0, min_cosine=0.0))
    assert acc.nonfinite == 2
    assert not acc.passed
    assert "the engine produced 2 NaN/Inf element(s) where the reference is finite" in acc.failures[0]
    assert acc.max_abs == float("inf")  # an Inf error is reported as Inf, not as float's largest number


def test_nan_in_both_counts_as_equal() -> None:
    ref = np.array([1.0, np.nan], dtype=np.float32)
    acc = measure_output("o", ref.copy(), ref, Tolerance(1e-6, 0, 0, 0))
    assert acc.nonfinite == 0 and acc.mismatched == 0


def test_cosine_catches_scaled_outputs() -> None:
    ref = np.random.default_rng(1).standard_normal(100)
    acc = measure_output("o", -ref, ref, Tolerance(atol=10, rtol=10, max_mismatch=1, min_cosine=0.99))
    assert acc.cosine == pytest.approx(-1.0)
    assert any("cosine similarity" in failure for failure in acc.failures)


def test_structure_errors_show_both_sides() -> None:
    ref = [("a", np.zeros((2, 3))), ("b", np.zeros(4))]
    assert "returned 1 outputs, the reference 2 (a, b)" in compare_outputs([np.zeros((2, 3))], ref, TIGHT).structure_error
    result = compare_outputs([np.zeros((3, 2)), np.zeros(4)], ref, TIGHT)
    assert result.structure_error == "output 'a': engine shape (3, 2) vs reference shape (2, 3)"
    assert not result
    ints = compare_outputs([np.zeros(4, np.float32)], [("ids", np.zeros(4, np.int64))], TIGHT)
    assert "engine dtype float32 vs reference dtype int64" in ints.structure_error


def test_fp16_engine_output_width_is_accepted() -> None:
    ref = [("a", np.ones(3, np.float32))]
    assert compare_outputs([np.ones(3, np.float16)], ref, TIGHT).passed


def test_per_output_tolerance_overrides() -> None:
    ref = [("a", np.ones(10)), ("b", np.ones(10))]
    outs = [np.ones(10) + 0.05, np.ones(10) + 0.05]
    loose = Tolerance(atol=0.1, rtol=0, min_cosine=0.9)
    result = compare_outputs(outs, ref, TIGHT, {"b": loose})
    assert not result["a"].passed and result["b"].passed
    assert result.worst().name == "a"


def test_default_tolerances_loosen_with_precision() -> None:
    order = ["fp32", "fp16", "bf16", "int8"]
    atols = [DEFAULT_TOLERANCES[p].atol for p in order]
    cosines = [DEFAULT_TOLERANCES[p].min_cosine for p in order]
    assert atols == sorted(atols) and cosines == sorted(cosines, reverse=True)
    assert tolerance_for("fp16", atol=0.5).atol == 0.5
    assert tolerance_for("fp16", atol=0.5).rtol == DEFAULT_TOLERANCES["fp16"].rtol


def test_relative_error_bound_judges_the_output_as_a_whole() -> None:
    ref = np.random.default_rng(2).standard_normal(1000)
    noisy = ref + 0.01 * np.random.default_rng(3).standard_normal(1000)  # rel err ~1e-2
    loose_elements = Tolerance(atol=1.0, rtol=1.0, max_mismatch=1.0, min_cosine=0.0, max_rel_l2=5e-3)
    acc = measure_output("o", noisy, ref, loose_elements)
    assert acc.rel_l2 == pytest.approx(0.01, rel=0.2)
    assert acc.failures == (f"relative error {acc.rel_l2:.3g} > 0.005",)
    assert measure_output("o", noisy, ref, Tolerance(1.0, 1.0, 1.0, 0.0, max_rel_l2=2e-2)).passed


def test_fp16_defaults_accept_a_realistic_fp16_engine_and_reject_a_broken_one() -> None:
    """FP16 rounding of every activation (unit roundoff 4.9e-4) passes; a 3% scale error does not."""
    rng = np.random.default_rng(4)
    ref = rng.standard_normal((32, 1000)).astype(np.float32)
    fp16_like = ref * (1 + 1e-3 * rng.standard_normal(ref.shape))  # rel err ~1e-3, as measured on resnet50
    fp16 = DEFAULT_TOLERANCES["fp16"]
    assert measure_output("logits", fp16_like, ref, fp16).passed
    assert not measure_output("logits", ref * 1.03, ref, fp16).passed


def test_an_integer_output_is_compared_exactly_by_the_share_of_elements_that_differ() -> None:
    """Class indices were judged by cosine and relative error ("cosine similarity 0.870302" on an argmax, and a
    repair that "fixed" it; an attacker's session): an index 7 for 6 is as wrong as 0 for 6."""
    reference = np.array([5, 5, 6, 6] * 25, dtype=np.int64)
    one_off = reference.copy()
    one_off[3] = 7  # 1 of 100 differs
    fp16, fp32 = DEFAULT_TOLERANCES["fp16"], DEFAULT_TOLERANCES["fp32"]
    within = measure_output("labels", one_off, reference, fp16)
    assert within.exact and within.passed and within.mismatched == 1  # 1% within fp16's 5%
    strict = measure_output("labels", one_off, reference, fp32)
    assert strict.failures == ("1/100 elements (1.00%) differ from the reference (an integer output, compared "
                               "exactly; allowed 0.00%)",)
    assert strict.worst_index == (3,) and strict.worst_value == 7.0 and "relative error" not in strict.describe()
    many = reference.copy()
    many[:10] = 0
    failed = measure_output("labels", many, reference, fp16)
    assert len(failed.failures) == 1 and "10/100 elements (10.00%) differ" in failed.failures[0]
    assert not any("cosine" in failure for failure in failed.failures)
    mask = measure_output("mask", np.array([True, False]), np.array([True, False]), fp32)
    assert mask.exact and mask.passed

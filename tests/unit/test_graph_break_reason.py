"""The audit's graph-break rows: torch's several-line reason read as one line (it broke the table)."""

from __future__ import annotations

from pytest_infercheck.audit.torch_stage import graph_break_reason

TORCH_2_13 = """Dynamic shape operator
  Explanation: Operator `aten.nonzero.default`'s output shape depends on input Tensor data.
  Hint: Enable tracing of dynamic shape operators with `torch._dynamo.config.capture_dynamic_output_shape_ops = True`

  Developer debug context: aten.nonzero.default

 For more details about this graph break, please visit: https://meta-pytorch.github.io/compile-graph-break-site/gb/gb0036.html"""


def test_a_multi_line_reason_is_one_line_without_developer_context_or_link() -> None:
    assert graph_break_reason(TORCH_2_13) == (
        "Dynamic shape operator Explanation: Operator `aten.nonzero.default`'s output shape depends on input Tensor "
        "data. Hint: Enable tracing of dynamic shape operators with "
        "`torch._dynamo.config.capture_dynamic_output_shape_ops = True`")


def test_a_one_line_reason_stays_and_a_long_one_is_cut() -> None:
    assert graph_break_reason("call_function args: Tensor") == "call_function args: Tensor"
    assert graph_break_reason("x" * 500, max_chars=40) == "x" * 37 + "..."

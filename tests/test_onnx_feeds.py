"""What ONNX Runtime is fed: each input at its own dtype where numpy has it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_infercheck.model.inputs import onnx_feeds


@pytest.mark.parametrize("dtype, expected", [(torch.float16, np.float16), (torch.float32, np.float32),
                                             (torch.float64, np.float64), (torch.int64, np.int64),
                                             (torch.bool, np.bool_), (torch.bfloat16, np.float32)])
def test_feeds_keep_the_inputs_dtype(dtype: torch.dtype, expected: type) -> None:
    """A float16 input was widened to float32 (to_numpy's rule for the comparison), and ONNX Runtime
    refused it: ``Unexpected input data type. Actual: (tensor(float)), expected: (tensor(float16))``, a
    failure blamed on the engine. bfloat16, which numpy lacks, is still widened."""
    feeds = onnx_feeds(["x"], (torch.ones(2, 3, dtype=dtype),))
    assert feeds["x"].dtype == expected


def test_a_float16_input_model_runs_on_onnxruntime(run_plugin, pytester: pytest.Pytester) -> None:
    """In this process (conftest's run_plugin), as the plugin's other end-to-end runs are: a pytest
    subprocess for this one check cost 5 s of start-up, torch's import and a cold export."""
    result = run_plugin("""
        import pytest, torch

        class Widen(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = torch.nn.Linear(4, 4)

            def forward(self, x):
                return self.linear(x.float())

        @pytest.mark.infercheck(engines=["onnxruntime-fp32"])
        def test_half_input(infercheck):
            infercheck(Widen(), (torch.randn(2, 4).half(),))
    """, "--infer-warmup=1", "--infer-min-iters=5", "--infer-min-time=0.01", "--infer-max-time=0.05",
                        f"--infer-cache-dir={pytester.path / 'cache'}", cache=False, timing=False)
    result.assert_outcomes(passed=1)

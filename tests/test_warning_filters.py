"""A model repo with `filterwarnings = error` (or `pytest -W error`): the toolchain's warnings about its own
internals are shown, not raised; the model's own forward and the plugin's notes keep the run's filters, and
a failure they cause says it was a warning, at the user's line, with no traceback through the plugin."""

from __future__ import annotations

from pathlib import Path

import pytest

WARNS_IN_BF16 = """
import warnings
import pytest, torch

class WarnsInBf16(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(8, 4)

    def forward(self, x):
        if x.dtype == torch.bfloat16:
            warnings.warn("the bfloat16 path is slow here", UserWarning)
        return self.linear(x)

@pytest.mark.infercheck(engines=["eager-fp32", "eager-bf16"])
def test_model(infercheck):
    torch.manual_seed(0)
    infercheck(WarnsInBf16().eval(), torch.randn(2, 8))
"""


def test_a_warning_while_an_engine_runs_is_shown_not_raised(run_plugin) -> None:
    """The warning comes only from the engine's run (the FP32 reference issues none): under -W error it was
    an exception that failed eager-bf16 at its first run; it is now in the warnings summary."""
    result = run_plugin(WARNS_IN_BF16, "--infer-device=cpu", "-W", "error")
    result.assert_outcomes(passed=2)
    assert "UserWarning: the bfloat16 path is slow here" in result.stdout.str()


def test_a_warning_from_the_models_own_forward_stops_the_check_and_says_so(run_plugin) -> None:
    result = run_plugin(WARNS_IN_BF16.replace("if x.dtype == torch.bfloat16:", "if True:"),
                        "--infer-device=cpu", "-W", "error")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "failed at reference: the eager model itself failed" in out
    assert "UserWarning: the bfloat16 path is slow here" in out
    assert ("(a UserWarning, issued in test_model, raised as an error by this run's warning filters: "
            "-W error or filterwarnings = error)") in out
    assert 'test_model.py:11 in forward: warnings.warn("the bfloat16 path is slow here", UserWarning)' in out
    assert "at test_model.py:17 in test_model: infercheck(WarnsInBf16().eval(), torch.randn(2, 8))" in out
    assert "Traceback" not in out and "pytest_infercheck/" not in out


NOTE = """
import pytest, torch

@pytest.mark.infercheck(engines=["onnxruntime-int8"])
def test_int8(infercheck):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4)).eval()
    infercheck(model, torch.randn(4, 16))  # no calibration=: the check notes its generated batches
"""


def strict_ini_of_the_docs() -> str:
    """docs/usage.md's ini block under "Strict warning filters": the entries that keep the notes warnings."""
    from conftest import REPO

    text = (REPO / "docs" / "usage.md").read_text()
    section = text[text.index("## Strict warning filters"):]
    return section[section.index("```ini\n") + len("```ini\n"):section.index("\n```", section.index("```ini"))]


def test_the_plugins_own_note_raised_as_an_error_fails_at_the_users_line(run_plugin, pytester: pytest.Pytester) -> None:
    pytest.importorskip("onnxruntime")
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    result = run_plugin(NOTE, "--infer-device=cpu")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert ("onnxruntime-int8: the check passed, and its note was raised as an error by this run's warning "
            "filters (-W error or filterwarnings = error):") in out
    assert "INT8 calibrated on 8 generated batches" in out
    assert 'filterwarnings = ["default::pytest_infercheck.check.InfercheckWarning"]' in out
    assert "at test_model.py:7 in test_int8: infercheck(model, torch.randn(4, 16))" in out
    assert "Traceback" not in out and "pytest_infercheck/check" not in out
    # The docs' entries keep the note a warning: the same run passes, the note in the warnings summary.
    pytester.makeini(strict_ini_of_the_docs())
    again = run_plugin(NOTE, "--infer-device=cpu")
    again.assert_outcomes(passed=1)
    assert "InfercheckWarning: onnxruntime-int8: INT8 calibrated on 8 generated batches" in again.stdout.str()


def test_torchs_own_deprecation_at_inductors_import_does_not_fail_the_build(pytester: pytest.Pytester,
                                                                            separate_processes: None,
                                                                            tmp_path: Path) -> None:
    """torch 2.13 issues a DeprecationWarning (torch.jit.script_method, in torch/utils/mkldnn.py) the first time
    a process imports Inductor: a repo with `filterwarnings = error` had every inductor engine fail at build
    on it. A separate process, so that the import is the first."""
    from conftest import FAST_TIMING

    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(test_model="""
import pytest, torch

@pytest.mark.infercheck(engines=["inductor-fp32"])
def test_compiled(infercheck):
    torch.manual_seed(0)
    infercheck(torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU()).eval(), torch.randn(2, 8))
""")
    result = pytester.runpytest_subprocess("-p", "no:xdist", "-p", "no:randomly", "--infer-device=cpu",
                                           f"--infer-cache-dir={tmp_path / 'cache'}", *FAST_TIMING)
    result.assert_outcomes(passed=1)
    assert "DeprecationWarning: `torch.jit.script_method` is deprecated" in result.stdout.str()

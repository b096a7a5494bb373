"""The plugin on models as model repositories write them: keyword inputs, dict and dataclass outputs,
side effects in forward, forwards without a tensor output, and export failures shown at the user's line."""

from __future__ import annotations

import json
from pathlib import Path


def test_dict_inputs_with_a_mask_keyword_only_forward_and_short_output_names(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.repo_models import KeywordOnlyEncoder, TokenClassifier, token_inputs

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32", "fp16"], dynamic_batch=True)
def test_text(infercheck):
    infercheck(TokenClassifier(), token_inputs(), tolerances={"logits": {"atol": 5e-3}})

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], dynamic_batch=True)
def test_keyword_only(infercheck):
    infercheck(KeywordOnlyEncoder(), {"input_features": torch.randn(2, 8, 5)},
               tolerances={"output['last_hidden_state']": {"atol": 1e-4}})
'''
    result = run_plugin(source)
    result.assert_outcomes(passed=5)


def test_int8_calibrated_on_dict_batches_says_which_keys_it_ignored(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.repo_models import TokenClassifier, token_inputs

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["int8"])
def test_int8(infercheck):
    batches = [{**token_inputs(), "labels": torch.zeros(2, dtype=torch.long)} for _ in range(4)]
    infercheck(TokenClassifier(), token_inputs(), calibration=batches, max_mismatch=1.0, min_cosine=0.0,
               max_rel_l2=10.0, atol=10.0)
'''
    result = run_plugin(source)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*calibration batches: key(s) 'labels' ignored (the forward does not take them)*"])


def test_the_users_model_is_never_modified(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.repo_models import CountingModel

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32", "fp16"], dynamic_batch=True)
def test_untouched(infercheck):
    model = CountingModel()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    infercheck(model, torch.randn(4, 8))
    assert model.python_calls == 0 and float(model.calls) == 0, "the check ran the user's module"
    assert model.training, "the check switched the user's module to eval mode"
    assert all(torch.equal(before[name], t) for name, t in model.state_dict().items())
'''
    result = run_plugin(source)
    result.assert_outcomes(passed=4)


def test_a_forward_without_a_tensor_output_fails_naming_the_type(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.repo_models import ReturnsNothing, ReturnsText

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_none(infercheck):
    infercheck(ReturnsNothing(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_text(infercheck):
    infercheck(ReturnsText(), torch.randn(2, 8))
'''
    result = run_plugin(source)
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "infercheck onnxruntime-fp32 on cpu (ReturnsNothing) failed:",
        "  - outputs: the model's forward returned None, which holds no tensor*",
    ])
    result.stdout.fnmatch_lines(["  - outputs: the model's forward returned a str ('label'), which holds no tensor*"])


def test_bad_inputs_fail_naming_the_input_and_the_accepted_forms(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.repo_models import KeywordOnlyEncoder

@pytest.mark.infercheck(backends=["eager"], precisions=["fp32"])
def test_positional_to_keyword_only(infercheck):
    infercheck(KeywordOnlyEncoder(), torch.randn(2, 8, 5))
'''
    result = run_plugin(source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["infercheck eager-fp32 on cpu (KeywordOnlyEncoder) failed:",
                                 "  - inputs: the example inputs do not fit KeywordOnlyEncoder.forward(*, input_features*"])


def test_export_failures_show_the_users_line_and_torchs_decisive_sentence(run_plugin, tmp_path: Path) -> None:
    source = '''
import pytest, torch
from fixtures.models import data_dependent_branch
from fixtures.repo_models import FixedBatch

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_branch(infercheck):
    infercheck(data_dependent_branch(), torch.randn(2, 8))

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], dynamic_batch=True)
def test_fixed_batch(infercheck):
    infercheck(FixedBatch(), torch.randn(4, 8))
'''
    report = tmp_path / "report.json"
    result = run_plugin(source, f"--infer-report={report}")
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    branch = _failure_block(text, "test_branch[onnxruntime-fp32]")
    assert "fixtures/models.py:" in branch[2] and "in forward: if " in branch[2], branch[:4]
    assert any("the TorchScript-based exporter (fallback) failed too" in line for line in branch)
    assert len(branch) <= 10, branch  # a few lines, not the exporter's 200
    fixed = "\n".join(_failure_block(text, "test_fixed_batch[onnxruntime-fp32]"))
    assert "inferred a static shape of 4 for dimension inputs['x'].shape[0]" in fixed
    data = json.loads(report.read_text())
    assert all("Traceback (most recent call last)" in r["traceback"] for r in data["results"])


def test_no_torch_trace_records_in_the_output(run_plugin) -> None:
    source = '''
import pytest, torch
from fixtures.models import dynamic_mlp

@pytest.mark.infercheck(backends=["inductor", "onnxruntime"], precisions=["fp32"])
def test_compiled(infercheck):
    infercheck(dynamic_mlp(), torch.randn(4, 64), budget="p50:0.000001ms")
'''
    result = run_plugin(source, "--log-level=DEBUG")
    result.assert_outcomes(failed=2)
    assert "torch.__trace" not in result.stdout.str()


def _failure_block(text: str, item: str) -> list[str]:
    """The lines of ``item``'s failure section, between its header and the next section, from the
    message's header on (the one-line summary above it is for pytest's -rf)."""
    after_header = text.split(f" {item} _", 1)[1].partition("\n")[2]
    lines = after_header.split("_____")[0].split("=====")[0].strip().splitlines()
    return lines[1:] if lines and not lines[0].startswith("infercheck ") else lines

"""Hugging Face models as a model repository has them, no wrapper code: dict inputs with an attention
mask, ModelOutput outputs named by their fields, a keyword-only-style audio encoder, the T5 encoder
through the exporter fallback, and GPT-2's cache output refused with the fix.  Tiny random-weight
models from configs (fixtures/hf_models.py): nothing is downloaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("transformers")


def test_text_and_audio_models_run_without_wrappers(run_plugin, tmp_path: Path) -> None:
    source = '''
import pytest
from fixtures import hf_models as hf

@pytest.mark.infercheck(backends=["eager", "onnxruntime"], precisions=["fp32"], dynamic_batch=True)
@pytest.mark.parametrize("name", ["bert", "distilbert", "gpt2"])
def test_text(infercheck, name):
    infercheck(getattr(hf, name)(), hf.text_inputs(), tolerances={"last_hidden_state": {"atol": 1e-4}})

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"], dynamic_batch=True)
def test_whisper_encoder(infercheck):
    infercheck(hf.whisper_encoder(), hf.audio_inputs())

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_t5_encoder(infercheck):
    infercheck(hf.t5_encoder(), hf.text_inputs())
'''
    report = tmp_path / "report.json"
    result = run_plugin(source, f"--infer-report={report}")
    result.assert_outcomes(passed=8)
    results = {r["nodeid"].split("::")[1]: r for r in json.loads(report.read_text())["results"]}
    t5 = results["test_t5_encoder[onnxruntime-fp32]"]
    assert t5["export"]["exporter"] == "torch.onnx.export (TorchScript-based)"
    assert "Cannot view a tensor" in t5["export"]["fallback_reason"]
    assert any("the dynamo exporter failed" in note for note in t5["warnings"])
    bert = results["test_text[onnxruntime-fp32-bert]"]
    assert bert["export"]["exporter"] == "torch.onnx.export (dynamo)"
    assert {o["name"] for o in bert["accuracy"]["outputs"]} == {"output['last_hidden_state']", "output['pooler_output']"}


def cache_output_field() -> str:
    """Where this transformers release puts GPT-2's cache: past_key_values up to 5.24, cache from 5.25.

    The test asserts that the plugin names the field the model really returns, not a field name of
    one transformers release.
    """
    import torch
    from transformers.cache_utils import Cache

    from fixtures import hf_models as hf

    with torch.no_grad():
        output = hf.gpt2(use_cache=True)(**hf.text_inputs())
    fields = [name for name, value in output.items() if isinstance(value, Cache)]
    assert len(fields) == 1, f"GPT-2 with use_cache=True returned no single Cache field: {list(output.keys())}"
    return fields[0]


def test_a_cache_in_the_output_fails_naming_it_and_the_fix(run_plugin) -> None:
    source = '''
import pytest
from fixtures import hf_models as hf

@pytest.mark.infercheck(backends=["onnxruntime"], precisions=["fp32"])
def test_gpt2_with_cache(infercheck):
    infercheck(hf.gpt2(use_cache=True), hf.text_inputs())
'''
    field = cache_output_field()
    result = run_plugin(source)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "infercheck onnxruntime-fp32 on cpu (GPT2Model) failed:",
        f"  - outputs: the model returns a transformers.cache_utils.DynamicCache at output[[]'{field}']*"
        "Build the model with use_cache=False*",
    ])


def test_a_failure_that_lies_only_at_masked_positions_is_said_so(run_plugin) -> None:
    """A left-padded Qwen2 on onnxruntime-fp32 failed at rel err 0.156 with nothing saying that every mismatch lay
    in the pad rows (eager sdpa and the export fill a fully masked query row differently; newcomer trial 5). The
    failure stands, with a note naming the mask; an unmasked model's failure gets none."""
    result = run_plugin("""
import pytest, torch
import transformers as T

@pytest.mark.infercheck(engines=["onnxruntime-fp32"])
def test_qwen(infercheck):
    config = T.Qwen2Config(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, use_cache=False)
    ids = torch.randint(3, 100, (2, 8))
    mask = torch.ones(2, 8, dtype=torch.long)
    mask[0, :3] = 0  # left padding
    infercheck(T.Qwen2ForCausalLM(config).eval(), {"input_ids": ids, "attention_mask": mask})
""", "--infer-device=cpu")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["  note: every element out of tolerance lies at a position attention_mask masks out "
                                 "(3 of 16 positions): padding*the unmasked positions are within tolerance"])

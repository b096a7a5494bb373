"""A model repo on the GPU: torchvision and Hugging Face models with random weights, no wrapper code.

Needs a CUDA GPU, torchvision and transformers (the lent H100's image has both); skipped elsewhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.gpu

REPO = '''
import pytest, torch

ENGINES = ["eager-fp16", "eager-fp16-cudagraph", "inductor-fp16"]

@pytest.mark.infercheck(engines=ENGINES)
def test_resnet18(infercheck):
    import torchvision
    infercheck(torchvision.models.resnet18(weights=None).eval(), torch.randn(2, 3, 224, 224))

@pytest.mark.infercheck(engines=["eager-fp16"])
def test_vit_zero_head(infercheck):
    import torchvision
    infercheck(torchvision.models.vit_b_16(weights=None).eval(), torch.randn(1, 3, 224, 224))

@pytest.mark.infercheck(engines=ENGINES)
def test_bert_dict_inputs(infercheck):
    from transformers import BertConfig, BertModel
    model = BertModel(BertConfig(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                                 intermediate_size=256)).eval()
    ids = torch.randint(0, 1000, (2, 32))
    mask = torch.ones(2, 32, dtype=torch.long)
    mask[1, 20:] = 0
    result = infercheck(model, {"input_ids": ids, "attention_mask": mask})
    assert "last_hidden_state" in result.accuracy

@pytest.mark.infercheck(engines=["eager-fp16", "inductor-fp16"])
def test_gpt2_without_cache(infercheck):
    from transformers import GPT2Config, GPT2Model
    model = GPT2Model(GPT2Config(n_layer=2, n_embd=128, n_head=2, use_cache=False)).eval()
    infercheck(model, {"input_ids": torch.randint(0, 1000, (1, 16))})
'''


def test_a_model_repo_runs_on_the_gpu_without_wrapper_code(run_plugin: Any, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (run scripts/gpu_check.sh)")
    pytest.importorskip("torchvision", reason="pip install torchvision")
    pytest.importorskip("transformers", reason="pip install transformers")
    report = tmp_path / "report.json"
    result = run_plugin(REPO, "--infer-device=cuda", f"--infer-report={report}", "-rs")
    results = {(r["nodeid"].split("::")[-1].split("[")[0], r["spec_id"]): r
               for r in json.loads(report.read_text())["results"]}
    # vit_b_16(weights=None) zero-initialises its head: a reference that checks nothing fails, saying so.
    vit = results[("test_vit_zero_head", "eager-fp16")]
    assert (vit["outcome"], vit["stage"]) == ("failed", "reference") and "is all zero" in vit["message"]
    others = {key: r for key, r in results.items() if key[0] != "test_vit_zero_head"}
    assert len(others) == 8
    assert all(r["outcome"] == "passed" for r in others.values()), {k: r["message"] for k, r in others.items()}
    result.assert_outcomes(passed=8, failed=1)

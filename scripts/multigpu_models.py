# A pytest source for scripts/multigpu_compare.py --source: model-repo sized work (torchvision
# resnet50 and BERT-base, random weights), eager and Inductor at FP16 and BF16 with and without CUDA
# graphs: 16 items whose builds and timings, not process start-up, make up most of the run.
# MULTIGPU_SIZES=both adds a second input size to each model (resnet50 at batch 32, BERT at sequence
# 384: 32 items), parametrised the way a model repo parametrises its tests.  Not collected by the test
# suite (no test_ prefix); the compare script copies it into its run directory as test_matrix.py.
import os

import pytest
import torch

ENGINES = dict(backends=["eager", "inductor"], precisions=["fp16", "bf16"], cuda_graphs="both")
BOTH = os.environ.get("MULTIGPU_SIZES") == "both"


@pytest.mark.parametrize("batch", [8, 32] if BOTH else [8])
@pytest.mark.infercheck(**ENGINES)
def test_resnet50(infercheck, batch):
    import torchvision

    torch.manual_seed(0)
    infercheck(torchvision.models.resnet50(weights=None).eval(), torch.randn(batch, 3, 224, 224))


@pytest.mark.parametrize("sequence", [128, 384] if BOTH else [128])
@pytest.mark.infercheck(**ENGINES)
def test_bert_base(infercheck, sequence):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    infercheck(BertModel(BertConfig()).eval(), {"input_ids": torch.randint(0, 30522, (1, sequence))})

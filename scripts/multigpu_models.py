# A pytest source for scripts/multigpu_compare.py --source: model-repo sized work (torchvision
# resnet50 at batch 8 and BERT-base at sequence 128, random weights), eager and Inductor at FP16 and
# BF16 with and without CUDA graphs: 16 items whose builds and timings, not process start-up, make
# up most of the run.  Not collected by the test suite (no test_ prefix); the compare script copies
# it into its run directory as test_matrix.py.
import pytest
import torch

ENGINES = dict(backends=["eager", "inductor"], precisions=["fp16", "bf16"], cuda_graphs="both")


@pytest.mark.infercheck(**ENGINES)
def test_resnet50(infercheck):
    import torchvision

    torch.manual_seed(0)
    infercheck(torchvision.models.resnet50(weights=None).eval(), torch.randn(8, 3, 224, 224))


@pytest.mark.infercheck(**ENGINES)
def test_bert_base(infercheck):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    infercheck(BertModel(BertConfig()).eval(), {"input_ids": torch.randint(0, 30522, (1, 128))})

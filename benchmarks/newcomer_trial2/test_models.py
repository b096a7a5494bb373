import pytest
import torch

import models as m

CPU5 = ["eager-fp32", "inductor-fp32", "onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"]


# ---- text encoders, tokenizer dicts with a padded attention_mask --------------------------
@pytest.mark.infercheck(engines=CPU5 + ["aoti-fp32"], dynamic_batch=True)
def test_mpnet(infercheck):
    infercheck(m.make_mpnet(), m.text_inputs())


@pytest.mark.infercheck()
def test_funnel(infercheck):
    infercheck(m.make_funnel(), m.text_inputs())


# ---- decoders -------------------------------------------------------------------------------
@pytest.mark.infercheck(dynamic_batch=True)
def test_mistral(infercheck):
    infercheck(m.make_mistral(), m.text_inputs())


@pytest.mark.infercheck()
def test_phi_causal_lm(infercheck):
    result = infercheck(m.make_phi(), m.text_inputs())
    assert result.accuracy["logits"].cosine > 0.9


@pytest.mark.infercheck()
def test_gemma(infercheck):
    infercheck(m.make_gemma(), m.text_inputs())


# ---- encoder-decoder -----------------------------------------------------------------------
@pytest.mark.infercheck()
def test_pegasus(infercheck):
    infercheck(m.make_pegasus(), m.seq2seq_inputs())


# ---- vision ---------------------------------------------------------------------------------
@pytest.mark.infercheck(engines=CPU5 + ["aoti-fp32"], dynamic_batch=True)
def test_vit(infercheck):
    infercheck(m.make_vit(), m.image_inputs())


@pytest.mark.infercheck()
def test_convnext_calibrated(infercheck):
    # a dataset-style calibration: dict batches that also carry labels (ignored, with a note)
    calib = [dict(b, labels=torch.tensor([i % 10])) for i, b in enumerate(m.image_calibration(8))]
    result = infercheck(m.make_convnext(), m.image_inputs(), calibration=calib)
    assert result.passed


@pytest.mark.infercheck()
def test_swin(infercheck):
    infercheck(m.make_swin(), m.image_inputs())


# ---- detection --------------------------------------------------------------------------------
@pytest.mark.infercheck(engines=CPU5 + ["aoti-fp32"],
                        tolerances={"pred_boxes": {"atol": 1e-3}, "last_hidden_state": {"max_rel_l2": 2e-4}})
def test_yolos(infercheck):
    infercheck(m.make_yolos(), m.image_inputs())


@pytest.mark.infercheck()
def test_detr(infercheck):
    infercheck(m.make_detr(), m.detr_inputs())


# ---- audio ---------------------------------------------------------------------------------
@pytest.mark.infercheck(dynamic_batch=True)
def test_hubert(infercheck):
    infercheck(m.make_hubert(), m.audio_inputs())

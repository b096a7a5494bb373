"""A model repo's deployment tests, written from README.md and docs/ only (issue 22's new-user trial).

Random weights, small configs, inputs built here: nothing is downloaded.  A model whose library is
not installed skips (pytest.importorskip inside the test, so the others still run).  The engines come
from the command line (run.py passes --infer-engines); the markers carry what each model needs.
"""

from __future__ import annotations

import pytest
import torch

VOCAB = 100


def text_inputs(batch: int = 2, length: int = 16) -> dict[str, torch.Tensor]:
    """A tokenizer's output: ids (never the pad id 0/1) and a mask with padding in the first row."""
    generator = torch.Generator().manual_seed(1)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length - 5:] = 0
    return {"input_ids": torch.randint(3, VOCAB, (batch, length), generator=generator), "attention_mask": mask}


def image(batch: int, size: int) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))


# --- torchvision: detection (called as model([img])), segmentation (dict output), classification ---

@pytest.mark.infercheck()
def test_ssdlite_detection(infercheck):
    models = pytest.importorskip("torchvision.models.detection")
    model = models.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()
    infercheck(model, ([image(1, 320)[0]],))


@pytest.mark.infercheck()
def test_fcos_detection(infercheck):
    models = pytest.importorskip("torchvision.models.detection")
    model = models.fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=5,
                                     min_size=256, max_size=256).eval()
    infercheck(model, ([image(1, 256)[0]],))


@pytest.mark.infercheck()
def test_lraspp_segmentation(infercheck):
    models = pytest.importorskip("torchvision.models.segmentation")
    model = models.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=4).eval()
    infercheck(model, image(1, 128))


@pytest.mark.infercheck(dynamic_batch=True)
@pytest.mark.parametrize("name", ["regnet_y_400mf", "convnext_tiny", "mobilenet_v3_small"])
def test_torchvision_classifier(infercheck, name):
    models = pytest.importorskip("torchvision.models")
    infercheck(models.get_model(name, weights=None).eval(), image(2, 96))


# --- timm ---

@pytest.mark.infercheck()
@pytest.mark.parametrize("name, size", [("deit_tiny_patch16_224", 224), ("levit_128s", 224)])
def test_timm(infercheck, name, size):
    timm = pytest.importorskip("timm")
    infercheck(timm.create_model(name, pretrained=False).eval(), image(1, size))


# --- Hugging Face transformers: dict inputs with attention masks, ModelOutput outputs ---

@pytest.mark.infercheck(dynamic_batch=True)
def test_roberta(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.RobertaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                        intermediate_size=64, max_position_embeddings=64, pad_token_id=1)
    calibration = [text_inputs() for _ in range(4)]
    result = infercheck(transformers.RobertaModel(config).eval(), text_inputs(), calibration=calibration)
    assert result.accuracy["last_hidden_state"].cosine > 0.9


@pytest.mark.infercheck()
def test_albert(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.AlbertConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    infercheck(transformers.AlbertModel(config).eval(), text_inputs())


@pytest.mark.infercheck(tolerances={"logits": {"atol": 1e-3}})
def test_electra_classifier(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.ElectraConfig(vocab_size=VOCAB, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                        num_labels=3)
    infercheck(transformers.ElectraForSequenceClassification(config).eval(), text_inputs())


@pytest.mark.infercheck()
def test_deberta_v2(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.DebertaV2Config(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                          intermediate_size=64, max_position_embeddings=64, relative_attention=True,
                                          position_buckets=16, pos_att_type=["p2c", "c2p"])
    infercheck(transformers.DebertaV2Model(config).eval(), text_inputs())


@pytest.mark.infercheck()
def test_opt_decoder(infercheck):
    """OPT's learned positions come from the attention mask's cumulative sum."""
    transformers = pytest.importorskip("transformers")
    config = transformers.OPTConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                                    num_attention_heads=2, max_position_embeddings=64, word_embed_proj_dim=32,
                                    use_cache=False, pad_token_id=1)
    infercheck(transformers.OPTModel(config).eval(), text_inputs())


@pytest.mark.infercheck()
def test_qwen2_decoder(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.Qwen2Config(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                      use_cache=False)
    infercheck(transformers.Qwen2Model(config).eval(), text_inputs())


@pytest.mark.infercheck()
def test_bart_seq2seq(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=1, decoder_layers=1,
                                     encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                                     decoder_ffn_dim=64, max_position_embeddings=64, use_cache=False)
    inputs = text_inputs()
    inputs["decoder_input_ids"] = inputs["input_ids"][:, :6].clone()
    infercheck(transformers.BartModel(config).eval(), inputs)


@pytest.mark.infercheck(dynamic_batch=True)
def test_clip_vision(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                           num_attention_heads=2, image_size=32, patch_size=8)
    infercheck(transformers.CLIPVisionModel(config).eval(), {"pixel_values": image(2, 32)})


@pytest.mark.infercheck()
def test_wav2vec2_audio_with_mask(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                         intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 2),
                                         conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                         num_conv_pos_embedding_groups=2, feat_extract_norm="layer",
                                         do_stable_layer_norm=True)
    mask = torch.ones(2, 1600, dtype=torch.long)
    mask[0, 1200:] = 0
    audio = torch.randn(2, 1600, generator=torch.Generator().manual_seed(3)) * mask
    infercheck(transformers.Wav2Vec2Model(config).eval(), {"input_values": audio, "attention_mask": mask})


@pytest.mark.infercheck()
def test_segformer_segmentation(infercheck):
    transformers = pytest.importorskip("transformers")
    config = transformers.SegformerConfig(num_encoder_blocks=2, depths=[1, 1], sr_ratios=[2, 1], hidden_sizes=[16, 32],
                                          patch_sizes=[7, 3], strides=[4, 2], num_attention_heads=[1, 2],
                                          mlp_ratios=[2, 2], decoder_hidden_size=32, num_labels=4)
    infercheck(transformers.SegformerForSemanticSegmentation(config).eval(), {"pixel_values": image(1, 64)})

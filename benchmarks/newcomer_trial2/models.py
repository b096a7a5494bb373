"""Tiny random-weight transformers models built from configs (nothing downloaded), and their inputs."""
import torch
import transformers as tf

VOCAB = 128


def text_inputs(batch=2, length=12, vocab=VOCAB, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, length - 4:] = 0  # padded first sequence
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    ids[0, length - 4:] = 1  # pad id
    return {"input_ids": ids, "attention_mask": mask}


def image_inputs(batch=1, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"pixel_values": torch.randn(batch, 3, size, size, generator=g)}


def image_calibration(n=8, batch=1, size=32):
    return [image_inputs(batch, size, seed=100 + i) for i in range(n)]


def audio_inputs(batch=2, samples=1600, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"input_values": torch.randn(batch, samples, generator=g)}


# --- text encoders -----------------------------------------------------------------------
def make_mpnet():
    c = tf.MPNetConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, max_position_embeddings=64, pad_token_id=1)
    return tf.MPNetModel(c).eval()


def make_funnel():
    c = tf.FunnelConfig(vocab_size=VOCAB, d_model=64, n_head=4, d_head=16, d_inner=128, block_sizes=[1, 1],
                        num_decoder_layers=1, pad_token_id=1)
    return tf.FunnelModel(c).eval()


# --- decoders ------------------------------------------------------------------------------
def make_mistral():
    c = tf.MistralConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         use_cache=False, pad_token_id=1, sliding_window=None)
    return tf.MistralModel(c).eval()


def make_phi():
    c = tf.PhiConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, max_position_embeddings=64, use_cache=False, pad_token_id=1)
    return tf.PhiForCausalLM(c).eval()


def make_gemma():
    c = tf.GemmaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
                       use_cache=False, pad_token_id=1)
    return tf.GemmaModel(c).eval()


# --- encoder-decoder -----------------------------------------------------------------------
def make_pegasus():
    c = tf.PegasusConfig(vocab_size=VOCAB, d_model=64, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
                         decoder_ffn_dim=128, max_position_embeddings=64, use_cache=False,
                         pad_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    return tf.PegasusForConditionalGeneration(c).eval()


def seq2seq_inputs(batch=2):
    enc = text_inputs(batch, 12)
    dec = text_inputs(batch, 6, seed=1)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
            "decoder_input_ids": dec["input_ids"], "decoder_attention_mask": dec["attention_mask"]}


# --- vision --------------------------------------------------------------------------------
def make_vit():
    c = tf.ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=64, num_hidden_layers=2,
                     num_attention_heads=4, intermediate_size=128, num_labels=10)
    return tf.ViTForImageClassification(c).eval()


def make_convnext():
    c = tf.ConvNextConfig(num_channels=3, patch_size=4, num_stages=2, hidden_sizes=[16, 32], depths=[1, 1],
                          num_labels=10, image_size=32)
    return tf.ConvNextForImageClassification(c).eval()


def make_swin():
    c = tf.SwinConfig(image_size=32, patch_size=4, num_channels=3, embed_dim=16, depths=[1, 1], num_heads=[2, 2],
                      window_size=4, num_labels=10)
    return tf.SwinForImageClassification(c).eval()


# --- detection -----------------------------------------------------------------------------
def make_yolos():
    c = tf.YolosConfig(image_size=[32, 32], patch_size=8, hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=128, num_detection_tokens=5, num_labels=4)
    return tf.YolosForObjectDetection(c).eval()


def make_detr():
    backbone = tf.ResNetConfig(num_channels=3, embedding_size=16, hidden_sizes=[16, 32, 32, 64], depths=[1, 1, 1, 1],
                               layer_type="basic", out_features=["stage4"])
    c = tf.DetrConfig(use_timm_backbone=False, use_pretrained_backbone=False, backbone_config=backbone,
                      d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
                      decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_queries=5,
                      num_labels=4)
    return tf.DetrForObjectDetection(c).eval()


def detr_inputs(batch=1):
    x = image_inputs(batch, 64)
    return {"pixel_values": x["pixel_values"], "pixel_mask": torch.ones(batch, 64, 64, dtype=torch.long)}


# --- audio ---------------------------------------------------------------------------------
def make_hubert():
    c = tf.HubertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                        num_conv_pos_embedding_groups=2, do_stable_layer_norm=False)
    return tf.HubertModel(c).eval()

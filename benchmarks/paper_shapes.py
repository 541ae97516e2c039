"""The paper-scale presets' published shapes (with random weights) and the synthetic
trajectories `paper_scale_gpu.py` trains and decodes them on: a question, a region search and a
text search each followed by injected evidence in the model's own format, and an answer,
rendered by the model's renderer and collated as the trainer does (`model/batch.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

from pixsearch.model.batch import Batch, collate
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.vision import DinoV2Tokens
from pixsearch.render import Rendered
from pixsearch.turns import Information, Part, SearchCall, Text
from pixsearch.types import Hit

BPE_VOCAB = 4096  # the BPE trained on the synthetic text; unused tokens pad it to the rows

SAM_VIT_H = dict(hidden_size=1280, num_hidden_layers=32, num_attention_heads=16, mlp_dim=5120,
                 global_attn_indexes=[7, 15, 23, 31], window_size=14)
LLAVA_13B = dict(
    text_config=dict(model_type="llama", hidden_size=5120, intermediate_size=13824,
                     num_hidden_layers=40, num_attention_heads=40, num_key_value_heads=40,
                     max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False),
    vision_config=dict(model_type="clip_vision_model", hidden_size=1024, intermediate_size=4096,
                       num_hidden_layers=24, num_attention_heads=16, image_size=336,
                       patch_size=14, projection_dim=768, hidden_act="quick_gelu"),
    vision_feature_layer=-2, vision_feature_select_strategy="default",
    projector_hidden_act="gelu", image_seq_length=576)
QWEN25_VL_7B = dict(
    text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                     num_attention_heads=28, num_key_value_heads=4, hidden_act="silu",
                     max_position_embeddings=128000, rms_norm_eps=1e-6, use_sliding_window=False,
                     sliding_window=32768, max_window_layers=28, tie_word_embeddings=False,
                     rope_parameters=dict(rope_type="default", rope_theta=1000000.0,
                                          mrope_section=[16, 24, 24])),
    vision_config=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16,
                       out_hidden_size=3584, patch_size=14, spatial_merge_size=2,
                       temporal_patch_size=2, window_size=112, tokens_per_second=2,
                       fullatt_block_indexes=[7, 15, 23, 31], hidden_act="silu"),
    tie_word_embeddings=False)
_GEMMA_LAYERS = (["sliding_attention"] * 5 + ["full_attention"]) * 3
GEMMA3_270M = dict(
    model_type="gemma3_text", hidden_size=640, intermediate_size=2048, num_hidden_layers=18,
    num_attention_heads=4, num_key_value_heads=1, head_dim=256, query_pre_attn_scalar=256,
    hidden_activation="gelu_pytorch_tanh", max_position_embeddings=32768,
    rms_norm_eps=1e-6, sliding_window=512, layer_types=_GEMMA_LAYERS,
    rope_parameters=dict(full_attention=dict(rope_type="default", rope_theta=1000000.0),
                         sliding_attention=dict(rope_type="default", rope_theta=10000.0)),
    attn_logit_softcapping=None, final_logit_softcapping=None, tie_word_embeddings=True,
    attention_bias=False)


@dataclass(frozen=True)
class Shape:
    """A preset at a checkpoint's shape with random weights.

    Attributes:
        preset: the preset built.
        tiny: its tiny random twin (`--tiny`).
        overrides: `ModelConfig` overrides giving the checkpoint's shape without its weights.
        rows: the checkpoint's embedding rows (the tokenizer is padded to them).
    """

    preset: str
    tiny: str
    overrides: dict = field(default_factory=dict)
    rows: int = 0


SHAPES: dict[str, Shape] = {
    "llava-1.5-13b": Shape("llava-1.5-13b", "llava-tiny", dict(
        lm=dict(pretrained="", hf_config=LLAVA_13B),
        mask_decoder=dict(sam_pretrained="", sam_vision_config=SAM_VIT_H)), 32064),
    "qwen2.5-vl-7b": Shape("qwen2.5-vl-7b", "qwen2.5-vl-tiny", dict(
        lm=dict(pretrained="", hf_config=QWEN25_VL_7B),
        mask_decoder=dict(sam_pretrained="", sam_vision_config=SAM_VIT_H)), 152064),
    "gemma-270m": Shape("gemma-270m", "gemma-tiny", dict(
        lm=dict(pretrained="", vocab_keep=0, hf_config=GEMMA3_270M)), 41040),
}

# ---- synthetic trajectories ---------------------------------------------------------------
_WORDS = ("the of and a to in is was for on that by with as it from at his an were are which "
          "this be or has had first one their its new after who they have her she two been "
          "other when there all during into school time may years more most only over city "
          "some world would where later up such used many can state about national out known "
          "university united then made county capital country flag river north south east "
          "west population area language currency official republic kingdom island coast "
          "mountain border government president century war independence colony empire red "
          "white blue green yellow black star stripe cross circle crescent sun eagle shield "
          "million square kilometres largest smallest people founded elected parliament "
          "province region district border lake sea ocean desert forest").split()
_PLACES = [("Peru", "Lima"), ("Japan", "Tokyo"), ("Kenya", "Nairobi"), ("Chile", "Santiago"),
           ("Norway", "Oslo"), ("Ghana", "Accra"), ("Nepal", "Kathmandu"), ("Fiji", "Suva")]
_REFS = ["the flag on the left", "the red and white flag", "the flag in the middle",
         "the smallest flag", "the flag with a star", "the flag on the right"]


def _words(rng: np.random.Generator, n: int) -> str:
    return " ".join(rng.choice(_WORDS, n))


def _evidence(rng: np.random.Generator, model: PixSearchModel, place: str) -> str:
    """Evidence as a search brings it back: the model's evidence budget over three hits."""
    hits = [Hit(doc_id=f"{place}:{i}", title=f"{place} — {_words(rng, 2)}", score=1.0 / (i + 1),
                text=f"{place} {_words(rng, int(rng.integers(40, 70)))}.", entity=place)
            for i in range(model.cfg.evidence.top_k)]
    return model.cfg.evidence.format(hits).text


def _turn(rng: np.random.Generator, model: PixSearchModel) -> tuple[str, list[Part]]:
    """A question and its gold turn: region search + evidence, text search + evidence, answer."""
    country, capital = _PLACES[int(rng.integers(len(_PLACES)))]
    ref = _REFS[int(rng.integers(len(_REFS)))]
    question = f"What is the capital of the country of {ref}? {_words(rng, int(rng.integers(0, 6)))}"
    parts: list[Part] = [
        Text(ref[0].upper() + ref[1:], refers=True), Text(" "), SearchCall("region"),
        Information(_evidence(rng, model, country)), Text(f" is the flag of {country}. "),
        SearchCall("text", f"capital of {country}"), Information(_evidence(rng, model, capital)),
        Text(f" The capital of {country} is {capital}. {_words(rng, int(rng.integers(4, 16)))}."),
    ]
    return question, parts


def scene(rng: np.random.Generator) -> tuple[Image.Image, np.ndarray]:
    """A 640×480 noise image with three coloured rectangles; the mask of the first."""
    w, h = 640, 480
    image = Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    draw = ImageDraw.Draw(image)
    mask = np.zeros((h, w), bool)
    for i in range(3):
        x0, y0 = 30 + 200 * i, int(rng.integers(40, 200))
        box = (x0, y0, x0 + 160, y0 + 110)
        draw.rectangle(box, fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        if i == 0:
            mask[box[1]:box[3] + 1, box[0]:box[2] + 1] = True
    return image, mask


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    """Text the BPE is trained on: the words and phrases the trajectories are made of."""
    rng = np.random.default_rng(seed)
    out = [" ".join(_WORDS), *(f"{c} {k}" for c, k in _PLACES), *_REFS]
    out += [_words(rng, 30) for _ in range(n)]
    out += [f"What is the capital of the country of {r}? The capital of {c} is {k}."
            for r in _REFS for c, k in _PLACES]
    return out


def image_inputs(model: PixSearchModel, image: Image.Image) -> dict[str, torch.Tensor]:
    """What a training batch holds for `image` (`PixSearchModel.preprocess`). A DINOv2 tower
    is frozen ONNX outside the model, read from the feature cache in training
    (`train/features.py`): random tokens of its shape stand in for it."""
    vision = getattr(model.backbone, "vision", None)
    if not isinstance(vision, DinoV2Tokens):
        return model.preprocess(image)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randn(1 + vision.grid**2, vision.dim, generator=g)
    return {"vision": tokens, **model._mask_inputs(image)}


def make_batch(model: PixSearchModel, size: int, seed: int) -> Batch:
    """`size` trajectories rendered by the model's renderer and collated as the trainer does."""
    rng = np.random.default_rng(seed)
    rendered: list[Rendered] = []
    feats, masks = [], []
    for _ in range(size):
        question, parts = _turn(rng, model)
        image, mask = scene(rng)
        rendered.append(model.renderer.render(question, parts))
        feats.append(image_inputs(model, image))
        masks.append([mask])
    return collate(model, rendered, feats, masks, ["trajectory"] * size)

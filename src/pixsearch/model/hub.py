"""Hub backbones: LLaVA-1.5 (the paper's shape) and Qwen2.5-VL (a modern backbone).

Each adapter wraps the `transformers` VLM class unchanged and uses its vision tower, its
projector and its LM; real checkpoints load by hub id or local folder (`LMConfig.pretrained`)
straight into the model's dtype (`ModelConfig.dtype`: llava-hf publishes float16, and a part
left in its published precision would meet float32 inputs), and the same classes are built
from tiny random configs in tests. Images go through the checkpoint's own image processor
(`model/processors.py`). Per backbone we fix the chat
layout (`ChatFormat`) and the token table: the backbone's own image placeholder (`<image>` for
LLaVA, `<|image_pad|>` for Qwen) is `image_placeholder`, and the paper's `<image>` query
payload gets the vocabulary string `<image_query>` on LLaVA so the two never collide.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import (
    LlavaConfig,
    LlavaForConditionalGeneration,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
)

from pixsearch.model.backbone import Backbone
from pixsearch.model.config import ModelConfig
from pixsearch.model.dtype import cast_input, torch_dtype
from pixsearch.model.processors import (
    CLIP_MEAN,
    build_image_processor,
    default_image_processor,
    pad_to_square,
    pretrained_image_processor,
)
from pixsearch.render import ChatFormat
from pixsearch.tokens import TokenTable


def _from_config(cls: type, config_cls: type, cfg: ModelConfig, tokenizer: Any,
                 placeholder_id: int, id_field: str) -> nn.Module:
    """Load `cfg.lm.pretrained`, or build random weights from `cfg.lm.hf_config`."""
    if cfg.lm.pretrained:
        try:
            return cls.from_pretrained(cfg.lm.pretrained, dtype=torch_dtype(cfg.dtype))
        except OSError as e:
            raise OSError(f"cannot load backbone {cfg.lm.pretrained!r}: give a local folder "
                          f"saved with save_pretrained, or a hub id on a machine with hub "
                          f"access ({e})") from e
    special = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")
               if getattr(tokenizer, k, None) is not None}
    conf = {**cfg.lm.hf_config, id_field: placeholder_id}
    conf["text_config"] = {**conf.get("text_config", {}), "vocab_size": len(tokenizer), **special}
    return cls(config_cls(**conf))


def image_processor_config(cfg: ModelConfig, side: int, vision: Any) -> dict[str, Any]:
    """`cfg.lm.image_processor`, filled in the first time from the checkpoint's
    `preprocessor_config.json` (or the backbone's published default), so that the config a
    checkpoint saves keeps this preprocessing."""
    if not cfg.lm.image_processor:
        saved = pretrained_image_processor(cfg.lm.pretrained) if cfg.lm.pretrained else None
        cfg.lm.image_processor = saved or default_image_processor(cfg.lm.backbone, side, vision)
    return cfg.lm.image_processor


class LlavaBackbone(Backbone):
    """`LlavaForConditionalGeneration`: CLIP ViT-L/14 → MLP projector → Vicuna (LLaVA-1.5)."""

    def __init__(self, cfg: ModelConfig, tokenizer: Any, table: TokenTable) -> None:
        super().__init__()
        self.cfg, self.table = cfg, table
        pid = table.id("image_placeholder")
        self.model = _from_config(LlavaForConditionalGeneration, LlavaConfig, cfg, tokenizer,
                                  pid, "image_token_index")
        mc = self.model.config
        mc.image_token_index = pid  # config mapping: the tokenizer's id is the truth
        vc = mc.vision_config
        self.image_size = vc.image_size
        self.n_image_tokens = (vc.image_size // vc.patch_size) ** 2 + (
            1 if mc.vision_feature_select_strategy == "full" else 0)
        self.chat = ChatFormat(user_prefix="USER: ", image_suffix="\n", user_suffix="",
                               assistant_prefix=" ASSISTANT:")
        self.processor = build_image_processor(image_processor_config(cfg, vc.image_size, vc))
        probe = self.preprocess(Image.new("RGB", (3, 2)))["pixel_values"]
        if tuple(probe.shape[-2:]) != (vc.image_size, vc.image_size):
            raise ValueError(f"the image processor ({cfg.lm.image_processor}) gives "
                             f"{tuple(probe.shape[-2:])} images, the vision tower expects "
                             f"{vc.image_size} × {vc.image_size}")

    def preprocess(self, image: Image.Image) -> dict[str, torch.Tensor]:
        out = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        return {"pixel_values": out["pixel_values"][0]}

    def encode(self, vis: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        mc = self.model.config
        px = cast_input(self.model.model.vision_tower, vis["pixel_values"])
        out = self.model.model.get_image_features(
            pixel_values=px, vision_feature_layer=mc.vision_feature_layer,
            vision_feature_select_strategy=mc.vision_feature_select_strategy)
        return torch.stack(list(out.pooler_output)), None

    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    def groups(self) -> dict[str, list[nn.Module]]:
        m = self.model
        return {"vision": [m.model.vision_tower], "projector": [m.model.multi_modal_projector],
                "lm": [m.model.language_model, m.lm_head],
                "embeddings": [m.get_input_embeddings(), m.get_output_embeddings()]}


class QwenVLBackbone(Backbone):
    """`Qwen2_5_VLForConditionalGeneration`: its ViT + patch merger + Qwen2.5 LM, with M-RoPE.

    The renderer gives every image the same number of slots, so where Qwen's own processor
    would pick a grid from the aspect ratio, the image is padded to a square with the
    processor's mean colour (no stretch) and resized to `LMConfig.image_size` (a multiple of
    patch × merge); the checkpoint's processor then normalises and patchifies it."""

    def __init__(self, cfg: ModelConfig, tokenizer: Any, table: TokenTable) -> None:
        super().__init__()
        self.cfg, self.table = cfg, table
        pid = table.id("image_placeholder")
        self.model = _from_config(Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLConfig, cfg,
                                  tokenizer, pid, "image_token_id")
        self.model.config.image_token_id = pid
        vc = self.model.config.vision_config
        side = cfg.lm.image_size
        unit = vc.patch_size * vc.spatial_merge_size
        if side % unit:
            raise ValueError(f"lm.image_size={side} must be a multiple of patch×merge={unit}")
        self.processor = build_image_processor(
            image_processor_config(cfg, side, vc),
            size={"shortest_edge": side * side, "longest_edge": side * side})
        self.fill = tuple(getattr(self.processor, "image_mean", None) or CLIP_MEAN)
        self.image_size = side
        self.n_image_tokens = (side // unit) ** 2
        self.chat = ChatFormat(
            system="<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
            user_prefix="<|im_start|>user\n<|vision_start|>", image_suffix="<|vision_end|>",
            user_suffix="<|im_end|>\n", assistant_prefix="<|im_start|>assistant\n", add_bos=False)

    def preprocess(self, image: Image.Image) -> dict[str, torch.Tensor]:
        im = pad_to_square(image.convert("RGB"), self.fill)
        im = im.resize((self.image_size, self.image_size), Image.BICUBIC)
        out = self.processor(images=[im], return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"][0]}

    def encode(self, vis: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        px = vis["pixel_values"]
        b = px.shape[0]
        out = self.model.model.get_image_features(
            cast_input(self.model.model.visual, px.reshape(-1, px.shape[-1])),
            vis["image_grid_thw"])
        feats = torch.cat(list(out.pooler_output), dim=0)
        return feats.reshape(b, -1, feats.shape[-1]), None

    def position_ids(self, input_ids: torch.Tensor, vis: dict[str, torch.Tensor] | None,
                     past: int, state: dict[str, Any]) -> torch.Tensor:
        if past == 0 and vis is not None:
            mm = (input_ids == self.table.id("image_placeholder")).int()
            pos, deltas = self.model.model.get_rope_index(
                input_ids, mm_token_type_ids=mm, image_grid_thw=vis["image_grid_thw"])
            state["rope_deltas"] = deltas
            return pos
        text = super().position_ids(input_ids, None, past, state)
        delta = state.get("rope_deltas")
        if delta is not None:
            text = text + delta.to(text.device)
        return text[None].expand(3, -1, -1)

    def language_model(self) -> nn.Module:
        return self.model.model.language_model

    def groups(self) -> dict[str, list[nn.Module]]:
        m = self.model
        return {"vision": [m.model.visual.patch_embed, m.model.visual.blocks],
                "projector": [m.model.visual.merger],
                "lm": [m.model.language_model, m.lm_head],
                "embeddings": [m.get_input_embeddings(), m.get_output_embeddings()]}

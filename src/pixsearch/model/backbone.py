"""Backbones: vision tower → projector → causal LM, behind one small interface.

`PixSearchModel` drives every backbone the same way: `preprocess` an image into tensors,
`encode` them into LM-width image tokens (spliced at the image-placeholder positions) plus an
optional coarse grid for the mask decoder, `position_ids` for a chunk of a sequence, and `run`
the LM over input embeddings with a KV cache. `NativeBackbone` (this file) is the `tiny` /
`mini` / `gemma-270m` stack: our vision tower + MLP projector + a causal LM. Hub backbones (LLaVA,
Qwen2.5-VL) are in `hub.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from PIL import Image
from torch import nn

from pixsearch.model.causal_lm import build_causal_lm
from pixsearch.model.config import ModelConfig
from pixsearch.model.dtype import cast_input, torch_dtype
from pixsearch.model.projector import Projector
from pixsearch.model.vision import build_vision, lm_tokens, split_grid
from pixsearch.render import ChatFormat
from pixsearch.tokens import TokenTable


class Backbone(nn.Module, ABC):
    """What `PixSearchModel` needs from a vision-language backbone.

    Attributes:
        model: the `transformers` model that returns next-token logits.
        chat: how this backbone lays out a single-image question.
        table: the control-token strings (image placeholder = the backbone's own).
        n_image_tokens: image tokens per image in the prompt.
        grid_dim: channels of `encode`'s coarse grid (0 if it gives none).
    """

    model: nn.Module
    chat: ChatFormat
    table: TokenTable
    n_image_tokens: int
    grid_dim: int = 0

    @abstractmethod
    def preprocess(self, image: Image.Image) -> dict[str, torch.Tensor]:
        """Tensors of one image (no batch dimension) under backbone-specific keys."""

    @abstractmethod
    def encode(self, vis: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batched image tensors → (LM image tokens [B, N, d_lm], coarse grid [B, D, h, h])."""

    def position_ids(self, input_ids: torch.Tensor, vis: dict[str, torch.Tensor] | None,
                     past: int, state: dict[str, Any]) -> torch.Tensor:
        """Position ids of `input_ids` [B, T] following `past` cached tokens; `state` carries
        what a backbone needs between prefill and extension (e.g. M-RoPE deltas)."""
        t = input_ids.shape[1]
        pos = torch.arange(past, past + t, device=input_ids.device)
        return pos.unsqueeze(0).expand(input_ids.shape[0], -1)

    def input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @abstractmethod
    def language_model(self) -> nn.Module:
        """The module LoRA adapters go into (never the vision tower)."""

    @abstractmethod
    def groups(self) -> dict[str, list[nn.Module]]:
        """Trainable-group name → modules ('vision', 'projector', 'lm', 'embeddings')."""

    def run(self, embeds: torch.Tensor, attention_mask: torch.Tensor | None,
            position_ids: torch.Tensor, cache: Any, logits_to_keep: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
        """LM over input embeddings → (logits [B, T', V], final hidden states [B, T, d_lm]).

        `logits_to_keep` = k > 0 projects only the last k positions onto the vocabulary
        (T' = k): decoding needs one row, and a 600-token prompt's full logits over a 150k
        vocabulary (Qwen2.5) would be 360 MB of float32 nobody reads. 0 keeps all (training).
        """
        out = self.model(inputs_embeds=embeds, attention_mask=attention_mask,
                         position_ids=position_ids, cache=cache,
                         use_cache=cache is not None, output_hidden_states=True,
                         logits_to_keep=logits_to_keep)
        return out.logits, out.hidden_states[-1]


class NativeBackbone(Backbone):
    """Our vision tower (random patch encoder or frozen DINOv2-S) + MLP projector + a causal
    LM (`causal_lm.py`: a from-scratch Llama, or a pretrained LM such as Gemma 3 270M)."""

    def __init__(self, cfg: ModelConfig, vocab_size: int, special_ids: dict[str, int],
                 lm: nn.Module | None = None) -> None:
        """`lm`: the causal LM, when the caller has loaded it (a vocabulary cut); else it is
        built from `cfg.lm`."""
        super().__init__()
        self.cfg = cfg
        # the tokenizer decides the vocabulary size, never the preset
        self.model = lm if lm is not None else build_causal_lm(
            cfg.lm.pretrained, cfg.lm.hf_config, vocab_size, special_ids, torch_dtype(cfg.dtype))
        self.vision = build_vision(cfg.vision)
        self.grid_dim = self.vision.dim
        self.projector = Projector(self.vision.dim, self.model.config.hidden_size, cfg.projector)
        self.chat = ChatFormat()
        self.table = TokenTable()
        self.n_image_tokens = 1 + cfg.vision.lm_grid ** 2

    def preprocess(self, image: Image.Image) -> dict[str, torch.Tensor]:
        return {"vision": self.vision.preprocess(image)}

    def encode(self, vis: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        tokens = self.vision(vis["vision"])  # frozen DINOv2 tokens arrive as float32
        pooled = cast_input(self.projector, lm_tokens(tokens, self.cfg.vision.lm_grid))
        return self.projector(pooled), split_grid(tokens)[1]

    def language_model(self) -> nn.Module:
        return self.model

    def groups(self) -> dict[str, list[nn.Module]]:
        return {"vision": [self.vision], "projector": [self.projector], "lm": [self.model],
                "embeddings": [self.model.get_input_embeddings(), self.model.get_output_embeddings()]}

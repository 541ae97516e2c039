"""The builder: a `ModelConfig` (+ tokenizer) → a `PixSearchModel` composed from its parts.

Order: tokenizer (given, loaded with a hub backbone, or trained on `corpus`) → control tokens
added once and resolved to ids → backbone (embeddings resized to the tokenizer, new rows set to
the mean embedding) → span tagger, g(·), mask decoder (SAM weights when configured), mask
feature map → LoRA adapters on the LM's q,v (`peft`) → trainable groups.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..tokens import TokenTable
from .backbone import Backbone, NativeBackbone
from .config import ModelConfig
from .hires import MaskFeatureMap
from .mask_decoder import MaskDecoder
from .pixsearch_model import PixSearchModel
from .span_query import SpanToQueries
from .span_tagger import SpanTagger
from .tokenizer import train_tokenizer

# Per backbone: its own image placeholder is `image_placeholder`; the paper's `<image>` query
# payload moves to another string where the backbone already uses `<image>`.
TOKEN_TABLES: dict[str, TokenTable] = {
    "native": TokenTable(),
    "llava": TokenTable(image_placeholder="<image>", image_query="<image_query>"),
    "qwen2_5_vl": TokenTable(image_placeholder="<|image_pad|>"),
}


def make_tokenizer(cfg: ModelConfig, corpus: Iterable[str] | None = None) -> Any:
    """The backbone's own tokenizer (hub; control tokens are added by `build_model`) or a
    byte-level BPE trained on `corpus` (native; control tokens included)."""
    if cfg.lm.pretrained:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(cfg.lm.pretrained)
    return train_tokenizer(corpus, cfg.lm.tokenizer_vocab, TOKEN_TABLES[cfg.lm.backbone])


def add_control_tokens(tokenizer: Any, table: TokenTable) -> tuple[TokenTable, list[int]]:
    """Add `table`'s strings once; return the resolved table and the ids that are new."""
    before = set(tokenizer.get_vocab())
    table.add_to(tokenizer)
    resolved = table.resolve(tokenizer)
    new = sorted(resolved.id(r) for r, s in table.strings().items() if s not in before)
    return resolved, new


def init_new_tokens(model: nn.Module, n_vocab: int, new_ids: list[int]) -> None:
    """Grow input/output embeddings to `n_vocab` rows if needed, and set the rows of the newly
    added token ids to the mean embedding of the pre-existing vocabulary (a hub model may
    already have spare rows for them, e.g. LLaVA's 32064-row table)."""
    if model.get_input_embeddings().weight.shape[0] < n_vocab:
        model.resize_token_embeddings(n_vocab, mean_resizing=False)
    if not new_ids:
        return
    n_old = min(new_ids)
    idx = torch.tensor(new_ids)
    with torch.no_grad():
        embs = (model.get_input_embeddings(), model.get_output_embeddings())
        for emb in {id(e): e for e in embs if e is not None}.values():
            emb.weight[idx] = emb.weight[:n_old].mean(dim=0, keepdim=True).to(emb.weight.dtype)


def build_backbone(cfg: ModelConfig, tokenizer: Any, table: TokenTable,
                   new_ids: list[int]) -> Backbone:
    if cfg.lm.backbone == "native":
        special = {k: getattr(tokenizer, k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")
                   if getattr(tokenizer, k, None) is not None}
        return NativeBackbone(cfg, len(tokenizer), special)
    from .hub import LlavaBackbone, QwenVLBackbone

    cls = {"llava": LlavaBackbone, "qwen2_5_vl": QwenVLBackbone}[cfg.lm.backbone]
    bb = cls(cfg, tokenizer, table)
    init_new_tokens(bb.model, len(tokenizer), new_ids if cfg.lm.pretrained else [])
    return bb


def build_mask_decoder(cfg: ModelConfig) -> MaskDecoder:
    if not cfg.mask_decoder.sam_pretrained:
        return MaskDecoder(cfg.mask_decoder)
    from transformers import SamModel

    try:
        sam = SamModel.from_pretrained(cfg.mask_decoder.sam_pretrained)
    except OSError as e:
        raise OSError(f"cannot load SAM {cfg.mask_decoder.sam_pretrained!r}: give a local folder "
                      f"saved with save_pretrained, or a hub id with hub access ({e})") from e
    return MaskDecoder(cfg.mask_decoder, sam)


def add_lora(cfg: ModelConfig, lm: nn.Module) -> None:
    """LoRA adapters (rank r, on `cfg.lora.targets`) injected into the LM only (not the
    vision tower, whose CLIP layers share the q_proj/v_proj names)."""
    from peft import LoraConfig, inject_adapter_in_model

    lc = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                    target_modules=list(cfg.lora.targets))
    inject_adapter_in_model(lc, lm)


def set_trainable(model: PixSearchModel) -> dict[str, list[str]]:
    """Freeze everything, then unfreeze `cfg.trainable` groups. Returns group → param names."""
    groups: dict[str, list[nn.Module]] = dict(model.backbone.groups())
    md = model.mask_decoder
    groups.update(span_tagger=[model.span_tagger], g=[model.g],
                  prompt_encoder=[md.prompt_encoder, md.shared_image_embedding],
                  mask_decoder=[md.mask_decoder],
                  hires=[model.mask_features] if model.mask_features is not None else [],
                  sam_vision=[md.vision_encoder] if md.vision_encoder is not None else [])
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    out: dict[str, list[str]] = {}
    for group in model.cfg.trainable:
        if group == "lora":
            params = [p for n, p in model.backbone.language_model().named_parameters() if "lora_" in n]
        else:
            params = [p for m in groups[group] for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        out[group] = sorted(names[id(p)] for p in params)
    return out


def build_model(cfg: ModelConfig, tokenizer: Any = None, corpus: Iterable[str] | None = None
                ) -> PixSearchModel:
    """Build the model of `cfg`. `tokenizer` is reused as is (e.g. from a checkpoint);
    otherwise it is loaded (hub) or trained on `corpus` (native; the world's text)."""
    torch.manual_seed(cfg.seed)
    if cfg.mask_decoder.sam_vision and cfg.hires.enabled:
        raise ValueError("hires branch and SAM vision encoder are alternatives; disable one")
    tok = tokenizer if tokenizer is not None else make_tokenizer(cfg, corpus)
    table, new_ids = add_control_tokens(tok, TOKEN_TABLES[cfg.lm.backbone])
    backbone = build_backbone(cfg, tok, table, new_ids)
    d_lm = backbone.model.get_input_embeddings().weight.shape[1]
    md = build_mask_decoder(cfg)
    feats = None
    if md.vision_encoder is None:
        feats = MaskFeatureMap(backbone.grid_dim, md.hidden, md.grid, cfg.hires)
    model = PixSearchModel(cfg, backbone, SpanTagger(d_lm, cfg.span_tagger),
                           SpanToQueries(d_lm, md.hidden, cfg.mask_decoder.num_queries),
                           md, feats, tok, table)
    if "lora" in cfg.trainable:
        add_lora(cfg, backbone.language_model())
    set_trainable(model)
    return model

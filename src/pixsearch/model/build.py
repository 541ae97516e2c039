"""The builder: a `ModelConfig` (+ tokenizer) → a `PixSearchModel` composed from its parts.

Order: tokenizer (given, loaded with a hub backbone, or trained on `corpus`) → control tokens
added once and resolved to ids → backbone (embeddings resized to the tokenizer, new rows set to
the mean embedding) → span tagger, g(·), mask decoder (SAM weights when configured), mask
feature map → LoRA adapters on the LM's q,v (`peft`) → trainable groups. Random weights come
from a fork of torch's generator seeded with `cfg.seed`; the caller's RNG is left untouched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from pixsearch.model.backbone import Backbone, NativeBackbone
from pixsearch.model.config import TRAINABLE_GROUPS, ModelConfig
from pixsearch.model.dtype import cast_parameters, torch_dtype
from pixsearch.model.hires import MaskFeatureMap
from pixsearch.model.mask_decoder import MaskDecoder
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.model.proposals import InstanceProposer
from pixsearch.model.referent import ReferentSelector, SelectorEnsemble, feature_dim
from pixsearch.model.refiner import ZoomRefiner
from pixsearch.model.span_query import SpanToQueries
from pixsearch.model.span_tagger import SpanTagger
from pixsearch.model.tokenizer import train_tokenizer
from pixsearch.tokens import TokenTable

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
        from pixsearch.model.causal_lm import load_lm_tokenizer

        base = load_lm_tokenizer(cfg.lm.pretrained)
        if not cfg.lm.vocab_keep:
            return base
        from pixsearch.model.vocab_cut import cut_tokenizer

        return cut_tokenizer(base, corpus or [], cfg.lm.vocab_keep)
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
        lm = None
        if cfg.lm.pretrained and cfg.lm.vocab_keep:
            from pixsearch.model.causal_lm import load_cut_lm

            lm = load_cut_lm(cfg.lm.pretrained, tokenizer, torch_dtype(cfg.dtype))
        bb = NativeBackbone(cfg, len(tokenizer), special, lm=lm)
    else:
        from pixsearch.model.hub import LlavaBackbone, QwenVLBackbone

        cls = {"llava": LlavaBackbone, "qwen2_5_vl": QwenVLBackbone}[cfg.lm.backbone]
        bb = cls(cfg, tokenizer, table)
    init_new_tokens(bb.model, len(tokenizer), new_ids if cfg.lm.pretrained else [])
    return bb


def build_mask_decoder(cfg: ModelConfig) -> MaskDecoder:
    if not cfg.mask_decoder.sam_pretrained:
        return MaskDecoder(cfg.mask_decoder)
    from transformers import SamModel

    try:
        sam = SamModel.from_pretrained(cfg.mask_decoder.sam_pretrained,
                                       dtype=torch_dtype(cfg.dtype))
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


def group_modules(model: PixSearchModel) -> dict[str, list[nn.Module]]:
    """Every trainable group of `model` but "lora" → its modules (empty where it has no such
    part)."""
    modules: dict[str, list[nn.Module]] = dict(model.backbone.groups())
    md = model.mask_decoder
    modules.update(span_tagger=[model.span_tagger], g=[model.g],
                   prompt_encoder=[md.prompt_encoder, md.shared_image_embedding],
                   mask_decoder=[md.mask_decoder],
                   hires=[model.mask_features] if model.mask_features is not None else [],
                   sam_vision=[md.vision_encoder] if md.vision_encoder is not None else [],
                   proposals=[model.proposer] if model.proposer is not None else [],
                   referent=[model.referent] if model.referent is not None else [],
                   refiner=[model.refiner] if model.refiner is not None else [])
    return modules


def trainable_groups(model: PixSearchModel) -> dict[str, list[nn.Parameter]]:
    """Every trainable group of `model` → its parameters ("lora" only where the model was
    built with adapters; "hires" / "sam_vision" empty where it has no such part)."""
    modules = group_modules(model)
    out = {name: [p for m in ms for p in m.parameters()] for name, ms in modules.items()}
    lora = [p for n, p in model.backbone.language_model().named_parameters() if "lora_" in n]
    if lora:
        out["lora"] = lora
    out["control_rows"] = list({id(p): p for p in out["embeddings"]}.values())
    return out


def _control_rows_only(model: PixSearchModel, weight: nn.Parameter,
                       roles: Sequence[str] = ()) -> None:
    """Make `weight`'s gradient zero outside the control-token rows (of `roles` only, when
    given) while its `control_rows_only` flag is set (the hook is registered once per
    parameter; the rows are set again on every call).

    A LoRA-tuned pretrained LM keeps its embedding frozen, but the rows of the control tokens
    the build added all start as the same mean row: frozen, `<search>` and `</search>` could
    never be told apart. Training only those rows keeps the base's rows as published (and
    the adapter checkpoint small: it stores the control rows, `adapter_state.py`)."""
    ids = model.tokens.ids
    unknown = sorted(set(roles) - set(ids))
    if unknown:
        raise ValueError(f"unknown control role(s) {unknown}; known: {sorted(ids)}")
    rows = torch.zeros(weight.shape[0], 1, dtype=torch.bool)
    rows[sorted({ids[r] for r in (roles or ids)})] = True
    weight.control_rows_only, weight.control_rows = True, rows
    if getattr(weight, "_control_rows_hook", False):
        return
    weight.register_hook(lambda grad: grad * weight.control_rows.to(grad.device)
                         if weight.control_rows_only else grad)
    weight._control_rows_hook = True


def set_trainable(model: PixSearchModel, groups: Sequence[str],
                  control_roles: Sequence[str] = ()) -> dict[str, list[str]]:
    """Freeze everything, then unfreeze `groups` (names of `TRAINABLE_GROUPS`; "control_rows"
    moves the rows of `control_roles` only, when given). Returns
    group → parameter names. The model's config is not touched: `cfg.trainable` says what the
    model was built with (LoRA adapters exist only if it lists "lora").

    Raises ValueError for an unknown group, or for "lora" / "sam_vision" on a model built
    without LoRA adapters / SAM's image encoder. "hires" on a model whose mask embeddings come
    from SAM's ViT selects nothing: presets share one group list for both mask branches.
    """
    unknown = [g for g in groups if g not in TRAINABLE_GROUPS]
    if unknown:
        raise ValueError(f"unknown trainable group(s) {unknown}; known: {list(TRAINABLE_GROUPS)}")
    params = trainable_groups(model)
    if "lora" in groups and "lora" not in params:
        raise ValueError("cannot train 'lora': the model was built without LoRA adapters "
                         f"(built with trainable={list(model.cfg.trainable)}; list 'lora' "
                         "there to add them)")
    if "sam_vision" in groups and not params["sam_vision"]:
        raise ValueError("cannot train 'sam_vision': the model has no SAM image encoder "
                         "(mask_decoder.sam_vision is off)")
    if "control_rows" in groups and "embeddings" in groups:
        raise ValueError("'control_rows' trains a subset of 'embeddings': list one of them")
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
        p.control_rows_only = False  # set again below for a stage that trains "control_rows"
    out: dict[str, list[str]] = {}
    for group in groups:
        for p in params[group]:
            p.requires_grad_(True)
            if group == "control_rows":
                _control_rows_only(model, p, control_roles)
        out[group] = sorted(names[id(p)] for p in params[group])
    return out


def build_model(cfg: ModelConfig, tokenizer: Any = None, corpus: Iterable[str] | None = None
                ) -> PixSearchModel:
    """Build the model of `cfg`. `tokenizer` is reused as is (e.g. from a checkpoint);
    otherwise it is loaded (hub) or trained on `corpus` (native; the world's text).

    Random weights depend on `cfg.seed` alone, and the caller's RNG state is left as it was.
    """
    if cfg.mask_decoder.sam_vision and cfg.hires.enabled:
        raise ValueError("hires branch and SAM vision encoder are alternatives; disable one")
    # Module constructors (ours, transformers', peft's LoRA) draw their initial weights from
    # torch's global CPU generator and take no generator argument. So the build runs on a
    # fork of that generator, seeded with `cfg.seed` and restored on exit: the weights are
    # those a global `torch.manual_seed(cfg.seed)` gave (earlier builds reproduce bit for
    # bit), and the caller's RNG continues as if no model had been built. Re-initialising
    # afterwards from a local `torch.Generator` would need every module's init scheme (HF's
    # `_init_weights` included) restated here. Only the CPU generator is forked and seeded:
    # nothing is initialised on an accelerator (the model is moved after it is built).
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(cfg.seed)
        return _build(cfg, tokenizer, corpus)


def _build(cfg: ModelConfig, tokenizer: Any, corpus: Iterable[str] | None) -> PixSearchModel:
    tok = tokenizer if tokenizer is not None else make_tokenizer(cfg, corpus)
    table, new_ids = add_control_tokens(tok, TOKEN_TABLES[cfg.lm.backbone])
    backbone = build_backbone(cfg, tok, table, new_ids)
    d_lm = backbone.model.get_input_embeddings().weight.shape[1]
    md = build_mask_decoder(cfg)
    feats = None
    if md.vision_encoder is None:
        feats = MaskFeatureMap(backbone.grid_dim, md.hidden, md.grid, cfg.hires)
    proposer = referent = None
    if cfg.referent.enabled and cfg.referent.needs_centres:
        # the proposer's decoder is a copy of the mask decoder's shape; its image embeddings
        # are the mask decoder's, so it needs no image encoder of its own
        proposer = InstanceProposer(MaskDecoder(replace(cfg.mask_decoder, sam_vision=False)),
                                    cfg.referent)
    if cfg.referent.enabled:
        ref = cfg.referent
        selector = ReferentSelector if ref.members == 1 else SelectorEnsemble
        referent = selector(d_lm, feature_dim(md.hidden, ref.peak_features, ref.colour_words,
                                              ref.relation_words), ref)
    refiner = None
    if cfg.refiner.enabled:
        # its own decoder and feature map, in the shapes of the model's (the refiner recipe
        # starts them from the model's weights); SAM's image encoder, if any, is shared
        refiner = ZoomRefiner(cfg.refiner, MaskDecoder(replace(cfg.mask_decoder, sam_vision=False)),
                              MaskFeatureMap(backbone.grid_dim, md.hidden, md.grid, cfg.hires)
                              if feats is not None else None)
    model = PixSearchModel(cfg, backbone, SpanTagger(d_lm, cfg.span_tagger),
                           SpanToQueries(d_lm, md.hidden, cfg.mask_decoder.num_queries),
                           md, feats, tok, table, proposer, referent, refiner)
    if "lora" in cfg.trainable:
        add_lora(cfg, backbone.language_model())
    # one precision for every part: hub weights were loaded in it, the new parts are cast
    cast_parameters(model, torch_dtype(cfg.dtype))
    set_trainable(model, cfg.trainable)
    return model

"""Checkpoints: weights (safetensors) + model config + tokenizer + special-token table.

A checkpoint folder holds `model.safetensors`, `config.json` (the `ModelConfig`),
`tokenizer/` (the HF tokenizer, with the control tokens), `special_tokens.json` (the resolved
`TokenTable`) and `hub_configs.json` (the full configs of pretrained hub parts).

Two formats, recorded in the weights' metadata (`format`):

- **full** (`tiny`, `mini`, hub classes from random configs): every tensor. Loading rebuilds
  the model from the config and loads the state strictly, naming missing/unexpected keys. A
  hub-class model is built on the meta device first (`accelerate.init_empty_weights`) and the
  saved tensors become its parameters (`load_state_dict(assign=True)`): no random copy of the
  model is made and filled.
- **adapter** (a preset with `lm.pretrained` or `mask_decoder.sam_pretrained`): only what
  training can change — LoRA, the heads, the trainable groups, the control-token rows
  (`model/adapter_state.py`). Loading builds the model from its pretrained checkpoints
  (`from_pretrained` fills the weights without a random initialisation) and then loads the
  adapter, so a 13B model loads in about its own size of memory and each save is megabytes.

Checkpoints written before the formats existed have no `format` and load as full ones. Tied
tensors (e.g. tied input/output embeddings) are stored once.
"""

from __future__ import annotations

import contextlib
import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from pixsearch.model.adapter_state import (
    ADAPTER,
    FULL,
    ROWS_PREFIX,
    adapter_keys,
    base_prefixes,
    checkpoint_format,
    clean_name,
    set_token_rows,
    token_rows,
)
from pixsearch.model.config import ModelConfig
from pixsearch.model.dtype import cast_parameters, torch_dtype
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.tokens import TokenTable

WEIGHTS, CONFIG, TOKENS, TOKENIZER = "model.safetensors", "config.json", "special_tokens.json", "tokenizer"
HUB = "hub_configs.json"  # full configs of pretrained hub parts, to rebuild them without a download


def _hub_configs(model: PixSearchModel) -> dict:
    """Shapes of hub parts loaded from checkpoints (the preset only names them)."""
    out = {}
    if model.cfg.lm.pretrained:
        out["backbone"] = model.backbone.model.config.to_dict()
    if model.cfg.mask_decoder.sam_pretrained:
        out["sam_vision"] = model.mask_decoder.sam_config.vision_config.to_dict()
    return out


class CheckpointError(RuntimeError):
    """A checkpoint does not match the model it is loaded into."""


def _dedup(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Store each shared storage once; return (tensors, alias → stored name)."""
    seen: dict[tuple, str] = {}
    out, aliases = {}, {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), v.dtype)
        if key in seen:
            aliases[k] = seen[key]
        else:
            seen[key] = k
            out[k] = v.detach().contiguous().cpu()
    return out, aliases


def checkpoint_tensors(model: PixSearchModel, state: dict[str, torch.Tensor] | None = None
                       ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors a checkpoint of `model` stores and its safetensors metadata.

    `state` is the model's full state dict when it is not `model.state_dict()` (gathered from
    FSDP / ZeRO-3 shards by `Accelerator.get_state_dict`); its keys are the unwrapped model's.
    """
    state = model.state_dict() if state is None else state
    state = {clean_name(k): v for k, v in state.items()}
    fmt = checkpoint_format(model)
    meta = {"format": fmt}
    if fmt == ADAPTER:
        keep = set(adapter_keys(model, list(state)))
        rows, ids = token_rows(model, state, keep)
        state = {k: v for k, v in state.items() if k in keep} | rows
        meta["token_ids"] = json.dumps(ids)
        meta["base"] = json.dumps({"lm": model.cfg.lm.pretrained,
                                   "sam": model.cfg.mask_decoder.sam_pretrained})
    tensors, aliases = _dedup(state)
    meta["aliases"] = json.dumps(aliases)
    return tensors, meta


def save_checkpoint(model: PixSearchModel, path: str | Path,
                    state: dict[str, torch.Tensor] | None = None) -> Path:
    """Write `model` to folder `path` (created) as a full or adapter checkpoint (module doc);
    `state` is a gathered full state dict of a sharded model. Returns `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors, meta = checkpoint_tensors(model, state)
    save_file(tensors, str(path / WEIGHTS), metadata=meta)
    (path / CONFIG).write_text(json.dumps(model.cfg.to_dict(), indent=2))
    (path / TOKENS).write_text(json.dumps(model.tokens.to_dict(), indent=2))
    (path / HUB).write_text(json.dumps(_hub_configs(model), indent=2, default=str))
    model.tokenizer.save_pretrained(str(path / TOKENIZER))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The safetensors metadata of checkpoint folder `path` (format, aliases, …)."""
    with safe_open(str(Path(path) / WEIGHTS), framework="pt") as f:
        return dict(f.metadata() or {})


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    file = path / WEIGHTS
    meta = read_metadata(path)
    state = load_file(str(file))
    for alias, name in json.loads(meta.get("aliases", "{}")).items():
        state[alias] = state[name]
    return state, meta


def _check_keys(file: Path, expected: set[str], got: set[str]) -> None:
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {file} does not match the model: missing keys "
                              f"{missing[:20]}{' …' if len(missing) > 20 else ''}, unexpected keys "
                              f"{unexpected[:20]}{' …' if len(unexpected) > 20 else ''}")


def load_state(model: PixSearchModel, path: str | Path, assign: bool = False) -> None:
    """Load `path`'s weights into `model` strictly; raises CheckpointError naming keys.

    A full checkpoint must hold every key of the model; an adapter checkpoint every key but
    those of the pretrained base, which the model already holds. `assign` makes the loaded
    tensors the model's parameters (for a model built on the meta device)."""
    path = Path(path)
    state, meta = _read_state(path)
    rows = {k: state.pop(k) for k in [k for k in state if k.startswith(ROWS_PREFIX)]}
    model_keys = list(model.state_dict())
    if meta.get("format", FULL) == ADAPTER:
        if not base_prefixes(model):
            raise CheckpointError(f"{path} is an adapter checkpoint, but the model has no "
                                  "pretrained part to apply it to (lm.pretrained and "
                                  "mask_decoder.sam_pretrained are empty)")
        _check_keys(path / WEIGHTS, set(adapter_keys(model, model_keys)), set(state))
        incompatible = model.load_state_dict(state, strict=False, assign=assign)
        assert not incompatible.unexpected_keys, incompatible.unexpected_keys
        set_token_rows(model, rows, json.loads(meta.get("token_ids", "[]")))
        return
    _check_keys(path / WEIGHTS, set(model_keys), set(state))
    model.load_state_dict(state, strict=True, assign=assign)


def _tie(model: PixSearchModel) -> None:
    """Re-tie the backbone's tied embeddings (assigning loaded tensors unties them)."""
    tie = getattr(model.backbone.model, "tie_weights", None)
    if tie is not None:
        tie()


def load_checkpoint(path: str | Path, device: str | torch.device | None = None,
                    overrides: dict[str, Any] | None = None) -> PixSearchModel:
    """Rebuild and load the model saved in folder `path`.

    `overrides` are merged into the saved `ModelConfig` (e.g. `{"lm": {"pretrained": DIR}}`
    when an adapter checkpoint's base checkpoint lives elsewhere on this machine)."""
    from accelerate import init_empty_weights
    from transformers import AutoTokenizer

    from pixsearch.config import merge
    from pixsearch.model.build import build_model

    path = Path(path)
    for name in (WEIGHTS, CONFIG, TOKENS, TOKENIZER):
        if not (path / name).exists():
            raise CheckpointError(f"{path} is not a PixSearch checkpoint: {name} is missing")
    data = json.loads((path / CONFIG).read_text())
    cfg = ModelConfig.from_dict(merge(data, overrides or {}) if overrides else data)
    fmt = read_metadata(path).get("format", FULL)
    build_cfg = copy.deepcopy(cfg)
    hub = json.loads((path / HUB).read_text()) if (path / HUB).exists() else {}
    if fmt == FULL:  # the saved state carries the hub weights; rebuild the shape only
        if cfg.lm.pretrained:
            build_cfg.lm.pretrained = ""
            build_cfg.lm.hf_config = hub["backbone"]
        if cfg.mask_decoder.sam_pretrained:
            build_cfg.mask_decoder.sam_pretrained = ""
            build_cfg.mask_decoder.sam_vision_config = hub["sam_vision"]
    tok = AutoTokenizer.from_pretrained(str(path / TOKENIZER))
    # A full hub-class model is built without memory (meta device) and takes the saved tensors
    # as its parameters; native models are small and built as they always were.
    meta_build = fmt == FULL and cfg.lm.backbone != "native"
    with init_empty_weights() if meta_build else contextlib.nullcontext():
        model = _build_base(build_model, build_cfg, tok, fmt)
    model.cfg = cfg
    saved = TokenTable.from_dict(json.loads((path / TOKENS).read_text()))
    if saved.ids != model.tokens.ids:
        raise CheckpointError(f"special-token ids differ: saved {saved.ids}, "
                              f"tokenizer gives {model.tokens.ids}")
    load_state(model, path, assign=meta_build)
    if meta_build:
        _tie(model)
        # adopted tensors keep the dtypes they were saved in (a half-precision run saves its
        # float32 master weights): the model answers in its configured dtype
        cast_parameters(model, torch_dtype(cfg.dtype))
    return model.to(device) if device is not None else model


def _build_base(build_model, cfg: ModelConfig, tok: Any, fmt: str) -> PixSearchModel:
    """`build_model`, with an error that says how to point an adapter at its base."""
    try:
        return build_model(cfg, tokenizer=tok)
    except OSError as e:
        if fmt != ADAPTER:
            raise
        raise CheckpointError(
            f"this adapter checkpoint applies to pretrained weights that cannot be loaded here "
            f"({e}). Point it at local copies: load_checkpoint(path, overrides={{'lm': "
            f"{{'pretrained': DIR}}, 'mask_decoder': {{'sam_pretrained': DIR}}}}), on the "
            f"command line model.lm.pretrained=DIR model.sam_pretrained=DIR") from e

"""Checkpoints: weights (safetensors) + model config + tokenizer + special-token table.

A checkpoint folder holds `model.safetensors`, `config.json` (the `ModelConfig`),
`tokenizer/` (the HF tokenizer, with the control tokens) and `special_tokens.json` (the
resolved `TokenTable`). Loading rebuilds the model from the config with the saved tokenizer
(hub weights are not fetched again: the saved state has them), checks that the token ids are
the ones it was trained with, and loads the state strictly, naming missing/unexpected keys.
Tied tensors (e.g. tied input/output embeddings) are stored once.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from pixsearch.model.config import ModelConfig
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


def save_checkpoint(model: PixSearchModel, path: str | Path) -> Path:
    """Write `model` to folder `path` (created); returns it."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors, aliases = _dedup(model.state_dict())
    save_file(tensors, str(path / WEIGHTS), metadata={"aliases": json.dumps(aliases)})
    (path / CONFIG).write_text(json.dumps(model.cfg.to_dict(), indent=2))
    (path / TOKENS).write_text(json.dumps(model.tokens.to_dict(), indent=2))
    (path / HUB).write_text(json.dumps(_hub_configs(model), indent=2, default=str))
    model.tokenizer.save_pretrained(str(path / TOKENIZER))
    return path


def load_state(model: PixSearchModel, path: str | Path) -> None:
    """Load `path`'s weights into `model` strictly; raises CheckpointError naming keys."""
    from safetensors import safe_open

    file = Path(path) / WEIGHTS
    with safe_open(str(file), framework="pt") as f:
        aliases = json.loads((f.metadata() or {}).get("aliases", "{}"))
    state = load_file(str(file))
    for alias, name in aliases.items():
        state[alias] = state[name]
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {file} does not match the model: missing keys "
                              f"{missing[:20]}{' …' if len(missing) > 20 else ''}, unexpected keys "
                              f"{unexpected[:20]}{' …' if len(unexpected) > 20 else ''}")
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | Path, device: str | torch.device | None = None) -> PixSearchModel:
    """Rebuild and load the model saved in folder `path`."""
    from transformers import AutoTokenizer

    from pixsearch.model.build import build_model

    path = Path(path)
    for name in (WEIGHTS, CONFIG, TOKENS, TOKENIZER):
        if not (path / name).exists():
            raise CheckpointError(f"{path} is not a PixSearch checkpoint: {name} is missing")
    cfg = ModelConfig.from_dict(json.loads((path / CONFIG).read_text()))
    build_cfg = copy.deepcopy(cfg)
    hub = json.loads((path / HUB).read_text()) if (path / HUB).exists() else {}
    if cfg.lm.pretrained:  # the saved state carries the hub weights; rebuild the shape only
        build_cfg.lm.pretrained = ""
        build_cfg.lm.hf_config = hub["backbone"]
    if cfg.mask_decoder.sam_pretrained:
        build_cfg.mask_decoder.sam_pretrained = ""
        build_cfg.mask_decoder.sam_vision_config = hub["sam_vision"]
    tok = AutoTokenizer.from_pretrained(str(path / TOKENIZER))
    model = build_model(build_cfg, tokenizer=tok)
    model.cfg = cfg
    saved = TokenTable.from_dict(json.loads((path / TOKENS).read_text()))
    if saved.ids != model.tokens.ids:
        raise CheckpointError(f"special-token ids differ: saved {saved.ids}, "
                              f"tokenizer gives {model.tokens.ids}")
    load_state(model, path)
    return model.to(device) if device is not None else model

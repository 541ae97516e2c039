"""Which parts of a model built from a preset carry pretrained weights, and which are random.

A hub preset loads its language model (with its vision tower and projector) and SAM from
checkpoints, by hub id or local folder (`model.lm.pretrained=…`,
`model.mask_decoder.sam_pretrained=…`); the parts this project adds (the span tagger, g(·),
and where configured the hi-res branch and referent selection) start random until trained.
A user who loads such a model to answer questions is told exactly that, part by part, rather
than a blanket "random weights".
"""

from __future__ import annotations

from pixsearch.model.config import ModelConfig


def _source(path: str) -> str:
    return f"loaded from {path}" if path else "random"


def new_heads(cfg: ModelConfig) -> list[str]:
    """The parts PixSearch adds to a vision-language model and SAM (always trained here)."""
    heads = ["span tagger", "g(·)"]
    if cfg.hires.enabled and not cfg.mask_decoder.sam_vision:
        heads.append("hi-res branch")
    if cfg.referent.enabled:
        heads.append("referent selection")
    return heads


def weight_sources(cfg: ModelConfig) -> dict[str, str]:
    """Part → where its weights come from when `cfg` is built (no checkpoint of ours):
    "loaded from PATH", "random", or what a pretrained frozen encoder is."""
    out: dict[str, str] = {}
    if cfg.lm.backbone == "native":
        out["LM"] = _source(cfg.lm.pretrained)
        out["vision"] = ("DINOv2-S (pretrained, frozen)" if cfg.vision.kind == "dinov2"
                         else "random")
        out["projector"] = "random"
    else:
        out["LM"] = _source(cfg.lm.pretrained)
        out["vision tower + projector"] = _source(cfg.lm.pretrained)
    out["SAM"] = _source(cfg.mask_decoder.sam_pretrained)
    out["new heads"] = f"random ({', '.join(new_heads(cfg))})"
    if "lora" in cfg.trainable:
        out["LoRA"] = "zero-initialised (no effect until trained)"
    return out


def untrained_parts(cfg: ModelConfig) -> list[str]:
    """The parts of `weight_sources(cfg)` that start random."""
    return [part for part, src in weight_sources(cfg).items() if src.startswith("random")]


def untrained_warning(name: str, cfg: ModelConfig) -> str | None:
    """The warning for answering with preset `name` built from `cfg` without a trained
    checkpoint, naming each part's source; None when nothing is random."""
    if not untrained_parts(cfg):
        return None
    parts = "; ".join(f"{part}: {src}" for part, src in weight_sources(cfg).items())
    return (f"model {name!r} has no trained checkpoint, so its untrained parts answer at "
            f"random ({parts}). Train it with `pixsearch train --config CONFIG.yaml --model "
            f"{name}` (and model.key=value overrides), or pass --model CHECKPOINT_DIR")

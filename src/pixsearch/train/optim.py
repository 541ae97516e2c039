"""The optimiser side of a training stage: which parameters a stage trains, their AdamW
groups, the learning-rate schedule and gradient clipping (used by `train/trainer.py`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from pixsearch.model.build import set_trainable
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.train.config import StageConfig


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float,
              time_frac: float = 0.0) -> float:
    """Multiplier of the peak lr at optimiser step `step`: linear warm-up, then decay over
    whichever runs out first, the steps or the stage's time budget (`time_frac` of it spent),
    so a run cut short by its budget still ends at a low lr."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    t = min(1.0, max((step - warmup) / max(1, total - warmup), time_frac))
    decay = 0.5 * (1 + math.cos(math.pi * t)) if schedule == "cosine" else 1 - t
    return min_ratio + (1 - min_ratio) * decay


def clip_gradients(groups: list[list[torch.nn.Parameter]], max_norm: float, scope: str,
                   clip: Callable[..., Any] = torch.nn.utils.clip_grad_norm_) -> None:
    """Clip gradient norms to `max_norm` (0 = off): per parameter group ("group") or over all
    of them ("global"). Under DeepSpeed / FSDP the engine clips globally whatever is asked."""
    if max_norm <= 0:
        return
    if scope == "global":
        groups = [[p for g in groups for p in g]]
    for params in groups:
        clip(params, max_norm)


def adamw_groups(params: list[torch.nn.Parameter]) -> list[dict]:
    """AdamW parameter groups: an embedding trained by "control_rows" gets no weight decay,
    which would otherwise shrink every row of the frozen base, not only the control rows."""
    rows = [p for p in params if getattr(p, "control_rows_only", False)]
    if not rows:
        return [{"params": params}]
    ids = {id(p) for p in rows}
    return [{"params": [p for p in params if id(p) not in ids]},
            {"params": rows, "weight_decay": 0.0}]


def stage_parameters(model: PixSearchModel, stage: StageConfig) -> list[list[torch.nn.Parameter]]:
    """Unfreeze the stage's trainable groups (a subset of the model's `cfg.trainable`, which
    stays as built: a saved checkpoint must rebuild the same modules); returns their
    parameters, one list per group (each parameter in exactly one)."""
    base = list(model.cfg.trainable)
    groups = stage.trainable or base
    unknown = set(groups) - set(base)
    if unknown:
        raise ValueError(f"stage {stage.name} trains {sorted(unknown)}, which the model was "
                         f"not built with (model trainable: {base})")
    names = set_trainable(model, groups)
    by_name, seen, out = dict(model.named_parameters()), set(), []
    for group in names.values():
        params = [by_name[n] for n in group if n not in seen]
        seen.update(group)
        if params:
            out.append(params)
    return out

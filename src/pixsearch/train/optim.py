"""The optimiser side of a training stage: which parameters a stage trains, their AdamW
groups, the learning-rate schedule, gradient clipping and one micro-batch's step (used by
`train/trainer.py` and `benchmarks/paper_scale_gpu.py`)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from pixsearch.model.build import set_trainable
from pixsearch.model.pixsearch_model import PixSearchModel
from pixsearch.train.config import StageConfig, TrainConfig
from pixsearch.train.losses import pixsearch_loss


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
    names = set_trainable(model, groups, stage.control_roles)
    by_name, seen, out = dict(model.named_parameters()), set(), []
    for group in names.values():
        params = [by_name[n] for n in group if n not in seen]
        seen.update(group)
        if params:
            out.append(params)
    return out


def micro_step(acc: Any, wrapped: Any, opt: torch.optim.Optimizer,
               groups: list[list[torch.nn.Parameter]], batch: Any, cfg: TrainConfig,
               teacher: Any = None) -> tuple[torch.Tensor, dict[str, float]]:
    """One micro-batch under `acc.accumulate`: forward, the paper's loss (against the frozen
    `teacher`'s span embeddings when given), backward; clip and step the optimiser when the
    accumulation is complete. Returns the loss and its terms."""
    with acc.accumulate(wrapped):
        out = wrapped(batch)
        t_emb = None
        if teacher is not None:
            with torch.no_grad():
                t_emb = teacher(batch).span_embeddings
        total, parts = pixsearch_loss(out, batch, cfg.loss, t_emb)
        if not torch.isfinite(total):
            raise FloatingPointError(f"non-finite loss {parts}; lower the learning rate or "
                                     "check the data")
        acc.backward(total)
        if acc.sync_gradients:
            clip_gradients(groups, cfg.clip_norm, cfg.clip_scope, acc.clip_grad_norm_)
        opt.step()
        opt.zero_grad()
    return total, parts

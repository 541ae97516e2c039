"""The training objective of the paper: L = L_LM + λ1 L_span + λ2 L_FT + λ3 L_BCE + λ4 L_KL.

- `lm_loss`: next-token cross-entropy over targets whose renderer loss mask is 1, so tokens
  of `<information>…</information>` blocks (and the prompt) are never targets.
- `span_loss`: BIO cross-entropy of the span tagger (the paper's "cls" term).
- `focal_tversky_loss` + `mask_bce_loss`: segmentation of each `<region>` search's mask.
- `gaussian_kl_loss`: span embeddings kept near a frozen teacher's, as diagonal Gaussians.

Weights (`LossWeights`) default to the paper's: CE 1, cls 2, seg 8, BCE 2, KL 0.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from pixsearch.model.batch import Batch
    from pixsearch.model.pixsearch_model import PixSearchOutput

IGNORE = -100


@dataclass
class LossWeights:
    """Weights of the loss terms (paper defaults).

    Attributes:
        lm: next-token cross-entropy.
        span: BIO span classification ("cls").
        seg: focal-Tversky mask loss.
        bce: per-pixel binary cross-entropy of masks.
        kl: Gaussian KL of span embeddings to the frozen teacher.
        tversky_alpha, tversky_beta: weights of false negatives / false positives.
        tversky_gamma: focal exponent.
    """

    lm: float = 1.0
    span: float = 2.0
    seg: float = 8.0
    bce: float = 2.0
    kl: float = 0.1
    tversky_alpha: float = 0.7
    tversky_beta: float = 0.3
    tversky_gamma: float = 0.75


def lm_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean CE of predicting token t+1 from position t, over targets with loss_mask 1.
    `logits` [B, T, V], `input_ids`/`loss_mask` [B, T]."""
    targets = input_ids[:, 1:].clone()
    targets[loss_mask[:, 1:] == 0] = IGNORE
    if not bool((targets != IGNORE).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                           targets.reshape(-1), ignore_index=IGNORE)


def span_loss(span_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean BIO CE over labelled positions; `span_logits` [W, L, 3], `targets` [W, L]."""
    if span_logits.numel() == 0 or not bool((targets != IGNORE).any()):
        return span_logits.sum() * 0.0
    return F.cross_entropy(span_logits.reshape(-1, span_logits.shape[-1]).float(),
                           targets.reshape(-1), ignore_index=IGNORE)


def focal_tversky_loss(mask_logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.7,
                       beta: float = 0.3, gamma: float = 0.75, eps: float = 1.0) -> torch.Tensor:
    """mean_r (1 − TI_r)^γ with TI = (TP + ε) / (TP + α·FN + β·FP + ε) on sigmoid
    probabilities; `mask_logits` [R, 1, M, M] or [R, M, M], `targets` [R, M, M] in {0, 1}."""
    if mask_logits.numel() == 0:
        return mask_logits.sum() * 0.0
    p = torch.sigmoid(mask_logits.float()).reshape(mask_logits.shape[0], -1)
    t = targets.float().reshape(targets.shape[0], -1)
    tp = (p * t).sum(1)
    fn = ((1 - p) * t).sum(1)
    fp = (p * (1 - t)).sum(1)
    ti = (tp + eps) / (tp + alpha * fn + beta * fp + eps)
    return ((1 - ti).clamp_min(0) ** gamma).mean()


def mask_bce_loss(mask_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel BCE with logits."""
    if mask_logits.numel() == 0:
        return mask_logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(mask_logits.float().reshape(targets.shape),
                                              targets.float())


def gaussian_kl_loss(student: torch.Tensor, teacher: torch.Tensor,
                     student_logvar: torch.Tensor | None = None,
                     teacher_logvar: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over spans of KL(N(s, σs²) ‖ N(t, σt²)) summed over dimensions, for diagonal
    Gaussians with means `student`/`teacher` [R, d] and log-variances (default 0, i.e. unit
    variance, where the KL is ½‖s − t‖²)."""
    if student.numel() == 0:
        return student.sum() * 0.0
    s, t = student.float(), teacher.detach().float()
    ls = torch.zeros_like(s) if student_logvar is None else student_logvar.float()
    lt = torch.zeros_like(t) if teacher_logvar is None else teacher_logvar.detach().float()
    kl = 0.5 * (lt - ls + (ls.exp() + (s - t) ** 2) / lt.exp() - 1)
    return kl.sum(-1).mean()


def pixsearch_loss(out: PixSearchOutput, batch: Batch, weights: LossWeights | None = None,
                   teacher_span_embeddings: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted total of every term for a `PixSearchOutput` and its `Batch`; returns
    (total, {term: value}). Terms without targets in the batch contribute 0."""
    w = weights or LossWeights()
    dev = out.logits.device
    parts = {
        "lm": lm_loss(out.logits, batch.input_ids.to(dev), batch.loss_mask.to(dev)),
        "span": span_loss(out.span_logits, out.span_targets),
    }
    targets = batch.region_targets
    if targets is not None and out.mask_logits.shape[0]:
        if targets.shape[0] != out.mask_logits.shape[0]:
            raise ValueError(f"{targets.shape[0]} gold masks for {out.mask_logits.shape[0]} "
                             f"region searches; every <region> needs text before its <search>")
        targets = targets.to(dev)
        parts["seg"] = focal_tversky_loss(out.mask_logits, targets, w.tversky_alpha,
                                          w.tversky_beta, w.tversky_gamma)
        parts["bce"] = mask_bce_loss(out.mask_logits, targets)
    if teacher_span_embeddings is not None:
        parts["kl"] = gaussian_kl_loss(out.span_embeddings, teacher_span_embeddings.to(dev))
    total = sum(getattr(w, k) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}

"""Validation during training: loss terms, mask IoU and next-token accuracy on the val split.

Teacher-forced (gold text, gold entity spans), so it is cheap enough to run every few hundred
steps: the loss terms of `pixsearch_loss`, the IoU of each `<region>` search's predicted mask
with its gold mask at the decoder's mask resolution, and the accuracy of next-token prediction
on the tokens the LM is trained on (evidence excluded). Reported per pool ("stage1/…",
"stage2/…") and over both.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import torch

from pixsearch.train.data import TrainSample, make_batch
from pixsearch.train.losses import LossWeights, pixsearch_loss

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel
    from pixsearch.train.features import FeatureCache


def batch_mask_iou(mask_logits: torch.Tensor, targets: torch.Tensor, threshold: float
                   ) -> list[float]:
    """IoU per region search of thresholded logits [R, 1, M, M] vs targets [R, M, M]."""
    pred = (mask_logits.float().reshape(targets.shape) > threshold)
    gold = targets.bool()
    inter = (pred & gold).flatten(1).sum(1).float()
    union = (pred | gold).flatten(1).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union)).tolist()


def token_hits(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor
               ) -> tuple[int, int]:
    """(correct, total) next-token predictions over targets with loss mask 1."""
    pred = logits[:, :-1].argmax(-1)
    tgt, m = input_ids[:, 1:], loss_mask[:, 1:].bool()
    return int(((pred == tgt) & m).sum()), int(m.sum())


@torch.no_grad()
def evaluate(model: PixSearchModel, pools: dict[str, list[TrainSample]], features: FeatureCache,
             batch_size: int = 8, weights: LossWeights | None = None, max_batches: int = 0
             ) -> dict[str, float]:
    """Validation metrics of `model` over each pool (up to `max_batches` micro-batches each)."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out: dict[str, float] = {}
    all_iou: list[float] = []
    for name, samples in pools.items():
        sums: dict[str, float] = defaultdict(float)
        ious: list[float] = []
        hit = tot = n = 0
        starts = range(0, len(samples), batch_size)
        for b, i in enumerate(starts):
            if max_batches and b >= max_batches:
                break
            batch = make_batch(model, samples[i:i + batch_size], features)
            res = model(batch)
            _, parts = pixsearch_loss(res, batch, weights)
            for k, v in parts.items():
                sums[k] += v
            n += 1
            if res.mask_logits.shape[0]:
                ious += batch_mask_iou(res.mask_logits, batch.region_targets.to(dev),
                                       model.cfg.mask_decoder.threshold)
            h, t = token_hits(res.logits, batch.input_ids.to(dev), batch.loss_mask.to(dev))
            hit, tot = hit + h, tot + t
        for k, v in sums.items():
            out[f"{name}/{k}_loss"] = v / max(n, 1)
        out[f"{name}/token_acc"] = hit / max(tot, 1)
        if ious:
            out[f"{name}/mask_iou"] = sum(ious) / len(ious)
        all_iou += ious
    if all_iou:
        out["mask_iou"] = sum(all_iou) / len(all_iou)
    out["lm_loss"] = sum(v for k, v in out.items() if k.endswith("/lm_loss")) / max(len(pools), 1)
    model.train(was_training)
    return out

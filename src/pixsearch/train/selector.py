"""Training the referent selector on candidate sets (the referent recipe's second part).

Each sample is one referring expression: its span embedding, the features of its candidate
proposals, and the index of the candidate that matches the gold mask (samples without one
are left out). The loss is cross-entropy over the candidates, with AdamW and a cosine
learning rate. An ensemble (`ReferentConfig.members`) trains each member in turn, with its
own batch order; the first uses the recipe's random stream, so a single selector trains
exactly as before ensembles existed.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixsearch.logs import progress_bar
from pixsearch.model.referent import SelectorEnsemble

log = logging.getLogger(__name__)


def train_selector(selector: nn.Module, data: list[dict], seed: int, rng: np.random.Generator,
                   epochs: int, batch: int, lr: float, weight_decay: float) -> list[float]:
    """Trains `selector` (a `ReferentSelector` or each member of a `SelectorEnsemble`) on
    `data` (dicts with "span", "feats", "label"; label −1 = no matching proposal, skipped)
    for `epochs` passes of `batch` expressions; returns the losses of every step."""
    data = [d for d in data if d["label"] >= 0]
    if not data:
        log.warning("no referring expression has a matching proposal: the selector is "
                    "left untrained (train the proposer longer)")
        return []
    members = selector.members if isinstance(selector, SelectorEnsemble) else [selector]
    steps = epochs * max(1, len(data) // batch)
    losses: list[float] = []
    for i, member in enumerate(members):
        stream = rng if i == 0 else np.random.default_rng([seed, i])
        losses += fit(member, data, stream, steps, batch, lr, weight_decay,
                      f"selector {i + 1}/{len(members)}")
    return losses


def fit(sel: nn.Module, data: list[dict], rng: np.random.Generator, steps: int, batch: int,
        lr: float, weight_decay: float, desc: str = "selector") -> list[float]:
    """`steps` AdamW steps of cross-entropy over the candidates on random batches of `data`
    (cosine learning rate from `lr`); `sel` is left in eval mode and frozen."""
    for p in sel.parameters():
        p.requires_grad_(True)
    sel.train()
    opt = torch.optim.AdamW(sel.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for step in progress_bar(range(steps), desc=desc):
        for g in opt.param_groups:
            g["lr"] = lr * 0.5 * (1 + np.cos(np.pi * step / steps))
        pick = rng.choice(len(data), min(batch, len(data)), replace=False)
        chunk = [data[i] for i in pick]
        logits = sel(torch.stack([d["span"] for d in chunk]), [d["feats"] for d in chunk])
        loss = F.cross_entropy(logits, torch.tensor([d["label"] for d in chunk]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    sel.eval()
    for p in sel.parameters():
        p.requires_grad_(False)
    return losses

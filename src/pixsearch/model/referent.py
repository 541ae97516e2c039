"""Referent selection: which instance proposal the referring expression is about.

Each proposal (`proposals.py`) becomes a token of what a referring expression can name —
its box, size, rank among the others left-to-right, top-to-bottom and by size, its colours,
the mask decoder's features pooled inside it, its proposal score, and how much of it the
span-conditioned mask covers, (`ReferentConfig.peak_features`) how many of the image's
entity centres lie inside it and to each side of it, and (`ReferentConfig.colour_words`) how
well its named colours match the colour words of the expression, and (`relation_words`) how
well it and its neighbours match those of a flag the expression relates it to ("the flag
behind the red one"; `colours.py`) — and the span embedding of
the expression becomes a query token. A small transformer encoder reads the query together with
every candidate, so comparisons over the set ("the leftmost", "the second from the right",
"the smallest") are made by attention across candidates; the candidate whose output best
matches the query's is the referent. Trained with cross-entropy against the proposal that
matches the gold mask (`pixsearch.train.referent`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pixsearch.model.colours import (
    MATCH,
    NAMES,
    RELATION,
    ExpressionColours,
    colour_match,
    colour_shares,
    relation_match,
)
from pixsearch.model.config import ReferentConfig
from pixsearch.model.proposals import centre_pixels

GEOMETRY = 9  # x0, y0, x1, y1, cx, cy, w, h, sqrt(area)
RANKS = 3  # rank of cx, cy and area among the candidates
COLOUR = 6  # mean and std of RGB inside the mask
OVERLAP = 3  # span-mask mean inside, share of the span mask covered, proposal score
PEAKS = 6  # entity centres inside, left, right, above, below; all of them
PEAK_SCALE = 4.0  # counts are divided by this: the scenes hold 2–5 entities


def feature_dim(channels: int, peaks: bool = False, colour_words: bool = False,
                relation_words: bool = False) -> int:
    """Width of a candidate's feature vector for mask embeddings of `channels` channels
    (`peaks`: with `peak_counts`, `ReferentConfig.peak_features`; `colour_words`: with
    `colour_match`, `ReferentConfig.colour_words`; `relation_words`: with `relation_match`,
    `ReferentConfig.relation_words`)."""
    return (GEOMETRY + RANKS + COLOUR + NAMES + OVERLAP + channels + (PEAKS if peaks else 0)
            + (MATCH if colour_words else 0) + (RELATION if relation_words else 0))


def _ranks(x: torch.Tensor) -> torch.Tensor:
    k = x.shape[0]
    if k == 1:
        return torch.full_like(x, 0.5)
    return x.argsort().argsort().to(x.dtype) / (k - 1)


def _centroids(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid (cx, cy) of each mask [K, M, M] in mask pixels."""
    m = w.shape[-1]
    area = w.flatten(1).sum(1).clamp_min(1)
    ys = torch.arange(m, device=w.device, dtype=w.dtype)
    return (w.sum(1) * ys).sum(1) / area, (w.sum(2) * ys).sum(1) / area


def peak_counts(masks: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """Per candidate mask [K, M, M], the entity centres `peaks` ((x, y) in [0, 1] of the
    mask frame, [n, 2]) inside it and, of the others, left of, right of, above and below its
    centroid, then n, each / `PEAK_SCALE`: [K, PEAKS]."""
    k, m, _ = masks.shape
    w = masks.float()
    if not len(peaks):
        return w.new_zeros(k, PEAKS)
    xy = peaks.to(w)
    rc = centre_pixels(xy, m)
    inside = w[:, rc[:, 0], rc[:, 1]]  # [K, n]
    outside = 1 - inside
    cx, cy = _centroids(w)
    x, y = xy[:, 0] * m - 0.5, xy[:, 1] * m - 0.5  # pixel indices, as the centroids
    left, above = x[None] < cx[:, None], y[None] < cy[:, None]  # [K, n]
    right, below = x[None] > cx[:, None], y[None] > cy[:, None]
    sides = [(outside * side).sum(1) for side in (left, right, above, below)]
    total = w.new_full((k,), float(len(peaks)))
    return torch.stack([inside.sum(1), *sides, total], 1) / PEAK_SCALE


def candidate_features(masks: torch.Tensor, scores: torch.Tensor, image_embeddings: torch.Tensor,
                       span_probs: torch.Tensor, rgb: torch.Tensor,
                       peaks: torch.Tensor | None = None,
                       colours: ExpressionColours | None = None) -> torch.Tensor:
    """Features [K, F] of candidate masks [K, M, M] with their proposal scores [K], the mask
    decoder's image embeddings [C, g, g], the span-conditioned mask probabilities [M, M] and
    the image [3, M, M] (RGB in [0, 1]) at mask resolution; with the image's entity centres
    `peaks` [n, 2], also their `peak_counts`; with the expression's `colours`
    (`colours.expression_colours`), also their `colour_match` to its own colours and, when
    those were split from another flag's, their `relation_match` to the other's."""
    k, m, _ = masks.shape
    w = masks.float()
    area = w.flatten(1).sum(1).clamp_min(1)
    ys = torch.arange(m, device=w.device, dtype=w.dtype)
    rows, cols = w.amax(2), w.amax(1)  # [K, M] occupancy of each row / column
    big = float(m)
    x0 = torch.where(cols > 0, ys, big).amin(1)
    x1 = torch.where(cols > 0, ys + 1, 0.0).amax(1)
    y0 = torch.where(rows > 0, ys, big).amin(1)
    y1 = torch.where(rows > 0, ys + 1, 0.0).amax(1)
    cx, cy = _centroids(w)
    geom = torch.stack([x0, y0, x1, y1, cx, cy, x1 - x0, y1 - y0, area.sqrt()], 1) / m
    ranks = torch.stack([_ranks(cx), _ranks(cy), _ranks(area)], 1)
    flat = w.flatten(1)
    px = rgb.flatten(1).to(w.dtype)  # [3, M²]
    mean = flat @ px.T / area[:, None]
    var = (flat @ (px ** 2).T / area[:, None] - mean ** 2).clamp_min(0)
    sp = span_probs.flatten().to(w.dtype)
    inside = flat @ sp / area
    covered = flat @ sp / sp.sum().clamp_min(1e-6)
    g = image_embeddings.shape[-1]
    pooled_w = F.adaptive_avg_pool2d(w[:, None], g).flatten(1)  # [K, g²]
    emb = image_embeddings.flatten(1).to(w.dtype)  # [C, g²]
    pooled = pooled_w @ emb.T / pooled_w.sum(1, keepdim=True).clamp_min(1e-6)
    names = colour_shares(w, rgb).to(w.dtype)
    parts = [geom, ranks, mean, var.sqrt(), names, inside[:, None], covered[:, None],
             scores[:, None].to(w.dtype), pooled]
    if peaks is not None:
        parts.append(peak_counts(w, peaks))
    if colours is not None:
        parts.append(colour_match(names, colours.own.to(names)))
        if colours.other is not None:
            parts.append(relation_match(w, names, colours.other.to(names)))
    return torch.cat(parts, dim=1)


class ReferentSelector(nn.Module):
    """Span embedding + candidate features → one logit per candidate (see module doc)."""

    def __init__(self, d_lm: int, d_feat: int, cfg: ReferentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.query = nn.Linear(d_lm, d)
        self.candidate = nn.Sequential(nn.Linear(d_feat, d), nn.GELU(),
                                       nn.Dropout(cfg.dropout), nn.Linear(d, d))
        self.kind = nn.Embedding(2, d)  # query token / candidate token
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, dropout=cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.q_out = nn.Linear(d, d)
        self.c_out = nn.Linear(d, d)

    def forward(self, span_embeddings: torch.Tensor, features: list[torch.Tensor]
                ) -> torch.Tensor:
        """`span_embeddings` [R, d_lm] and per span its candidates' features [K_r, F] →
        logits [R, K_max] (−inf where a span has fewer candidates)."""
        r = span_embeddings.shape[0]
        assert len(features) == r, "one candidate set per span"
        kmax = max(1, max(f.shape[0] for f in features))
        dt = self.query.weight.dtype
        d_feat = self.candidate[0].in_features
        feats = span_embeddings.new_zeros(r, kmax, d_feat, dtype=dt)
        pad = torch.ones(r, kmax + 1, dtype=torch.bool, device=span_embeddings.device)
        pad[:, 0] = False
        for i, f in enumerate(features):
            feats[i, : f.shape[0]] = f.to(dt)
            pad[i, 1: 1 + f.shape[0]] = False
        q = self.query(span_embeddings.to(dt))[:, None] + self.kind.weight[0]
        c = self.candidate(feats) + self.kind.weight[1]
        out = self.encoder(torch.cat([q, c], dim=1), src_key_padding_mask=pad)
        logits = torch.einsum("rd,rkd->rk", self.q_out(out[:, 0]), self.c_out(out[:, 1:]))
        logits = logits / self.cfg.dim ** 0.5
        return logits.masked_fill(pad[:, 1:], float("-inf"))


class SelectorEnsemble(nn.Module):
    """`ReferentConfig.members` selectors, trained apart from their own initialisations and
    batch orders, whose probabilities are averaged: the selector fits its train expressions
    far better than val ones (0.96 against 0.88 of them right), and an average of
    independently trained ones varies less where they disagree. Same call as
    `ReferentSelector`; returns the log of the mean probability per candidate (−inf where a
    span has fewer candidates)."""

    def __init__(self, d_lm: int, d_feat: int, cfg: ReferentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList(ReferentSelector(d_lm, d_feat, cfg)
                                     for _ in range(cfg.members))

    def forward(self, span_embeddings: torch.Tensor, features: list[torch.Tensor]
                ) -> torch.Tensor:
        logp = torch.stack([m(span_embeddings, features).float().log_softmax(-1)
                            for m in self.members])
        return torch.logsumexp(logp, 0) - math.log(len(self.members))

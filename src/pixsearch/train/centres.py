"""What the instance proposer learns from (`model/proposals.py`, trained by `train/referent.py`).

The centre head learns a heatmap of entity centres, CenterNet style: each entity's centre is
its innermost pixel (`interior_points`), the target is a Gaussian per entity
(`centre_targets`), the loss is CenterNet's penalty-reduced focal loss (`centre_focal_loss`).
The point-prompted decoder learns from prompts drawn near those centres, inside the entities
and anywhere (`sample_points`), each with the mask of the entity under it as target.
"""

from __future__ import annotations

import numpy as np
import torch


def interior_points(masks: torch.Tensor) -> torch.Tensor:
    """The innermost pixel (farthest from the background) of each mask [E, M, M] → (x, y)
    [E, 2] in pixels: unlike the centroid, it lies inside an occluded, non-convex mask."""
    from scipy import ndimage

    out = []
    for mk in masks.numpy():
        dist = ndimage.distance_transform_edt(np.pad(mk, 1))[1:-1, 1:-1]
        y, x = np.unravel_index(int(dist.argmax()), dist.shape)
        out.append((x, y))
    return torch.tensor(out, dtype=torch.float32).reshape(-1, 2)


def centre_targets(centres: torch.Tensor, masks: torch.Tensor, grid: int) -> torch.Tensor:
    """Heatmap target [g, g] of entity centres (pixels of [M, M] masks): a Gaussian per
    entity, as wide as a sixth of its size, exactly 1 at its centre cell."""
    m = masks.shape[-1]
    scale = grid / m
    ys, xs = torch.meshgrid(torch.arange(grid).float(), torch.arange(grid).float(), indexing="ij")
    heat = torch.zeros(grid, grid)
    for (x, y), mk in zip(centres.tolist(), masks):
        cx, cy = int(x * scale), int(y * scale)
        sigma = max(0.7, float(mk.float().sum()) ** 0.5 * scale / 6)
        g = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma ** 2))
        g[cy, cx] = 1.0
        heat = torch.maximum(heat, g)
    return heat


def centre_focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced pixel-wise focal loss, normalised by the number of centres."""
    p = torch.sigmoid(logits.float()).clamp(1e-4, 1 - 1e-4)
    pos = target >= 1.0
    pos_loss = -((1 - p) ** 2 * torch.log(p))[pos].sum()
    neg_loss = -((1 - target) ** 4 * p ** 2 * torch.log(1 - p))[~pos].sum()
    return (pos_loss + neg_loss) / pos.sum().clamp_min(1)


def sample_points(masks: torch.Tensor, centres: torch.Tensor, n: int,
                  rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` point prompts on a scene with entity masks [E, M, M] and their centres [E, 2] →
    (points [n, 2] in [0, 1], targets [n, M, M]): most near an entity's centre (as the
    heatmap's peaks are), some anywhere inside it, a few anywhere at all."""
    e, m, _ = masks.shape
    pts, tgt = [], []
    for _ in range(n):
        u = rng.random()
        if e and u < 0.6:
            i = rng.integers(e)
            x, y = (centres[i] + torch.from_numpy(rng.normal(0, 2.0, 2)).float()).round().long()
            x, y = int(x.clamp(0, m - 1)), int(y.clamp(0, m - 1))
        elif e and u < 0.85:
            ys, xs = torch.nonzero(masks[rng.integers(e)], as_tuple=True)
            j = rng.integers(len(xs))
            x, y = int(xs[j]), int(ys[j])
        else:
            x, y = int(rng.integers(m)), int(rng.integers(m))
        hit = [i for i in range(e) if masks[i, y, x]]
        tgt.append(masks[hit[0]].float() if hit else torch.zeros(m, m))
        pts.append(((x + 0.5) / m, (y + 0.5) / m))
    return torch.tensor(pts, dtype=torch.float32), torch.stack(tgt)

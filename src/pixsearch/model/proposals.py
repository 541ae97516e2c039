"""Instance proposals: the entities of an image a referring expression may name.

Two sources (`ReferentConfig.source`):

**Components** of the span-conditioned mask. Its probabilities are high on the entity it
chose and lower, but not zero, on the others it hesitated between; the connected components
of the map at a few thresholds are the candidates (one per entity, or a merged blob, at each
granularity), de-duplicated by non-maximum suppression. No network of its own. Entities
that touch or overlap are covered at one probability and form a single component at every
threshold; with `split_min_distance` each component is also cut along the watershed of its
distance transform, one piece per interior peak, so the single entities are candidates too;
with `split_at_peaks` a component is cut between the peaks of the proposer's entity-centre
heatmap that lie inside it instead, one piece per entity the heatmap found (distance peaks
miss two flags that touch along a long side and cut one long flag in two).

**Points.** SAM's automatic mask generation, made affordable on a CPU: instead of a dense grid
of point prompts (one decoder pass each: a 12 × 12 grid costs seconds), a small convolutional head
over the mask decoder's image embeddings predicts a heatmap of entity centres (CenterNet
style), and only its peaks become point prompts. Each prompt goes through a copy of the mask
decoder (same architecture, its own weights, trained to segment the entity under a point)
and gives a mask and a predicted IoU; greedy non-maximum suppression keeps one mask per
entity. The referent selector (`referent.py`) then picks among them the one a referring
expression names.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixsearch.model.config import ReferentConfig
from pixsearch.model.mask_decoder import MaskDecoder


@dataclass
class Proposals:
    """The instance proposals of one image.

    Attributes:
        logits: mask logits [K, M, M] (M = the decoder's mask size).
        masks: binary masks [K, M, M] (logits > 0).
        scores: predicted IoU of each mask [K] (best first).
    """

    logits: torch.Tensor
    masks: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.masks.shape[0])


def heatmap_peaks(heat: torch.Tensor, k: int, threshold: float, window: int = 3) -> torch.Tensor:
    """Local maxima (`window` × `window`, odd) of a probability map [g, g] above `threshold`,
    best first, at most `k`, as (x, y) cell centres in [0, 1]: [n, 2]."""
    g = heat.shape[-1]
    pooled = F.max_pool2d(heat[None, None], window, stride=1, padding=window // 2)[0, 0]
    is_max = heat == pooled
    score = torch.where(is_max & (heat >= threshold), heat, torch.zeros_like(heat)).flatten()
    top = score.topk(min(k, score.numel()))
    idx = top.indices[top.values > 0]
    return torch.stack([(idx % g).float() + 0.5, (idx // g).float() + 0.5], dim=-1) / g


def centre_pixels(peaks: torch.Tensor, m: int) -> torch.Tensor:
    """Entity centres (x, y) in [0, 1] [n, 2] as the (row, col) pixels of an M × M mask."""
    return (peaks.flip(-1) * m).long().clamp(0, m - 1)


def grid_points(n: int) -> torch.Tensor:
    """Centres of an n × n grid of cells over the unit square, as (x, y) [n², 2]."""
    c = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


def mask_iou_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every mask of `a` [K, M, M] with every mask of `b` [L, M, M] → [K, L]."""
    fa, fb = a.flatten(1).float(), b.flatten(1).float()
    inter = fa @ fb.T
    union = fa.sum(1)[:, None] + fb.sum(1)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(union))


def _shift(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    return logits - math.log(threshold / (1 - threshold))


def watershed_pieces(mask: np.ndarray, min_distance: int, min_depth: float) -> list[np.ndarray]:
    """The pieces of a boolean mask [H, W] along the watershed of its distance transform: one
    per distance peak (≥ `min_distance` px from another, ≥ `min_depth` px from the edge).
    None when there is a single peak: the mask is then one entity already."""
    from scipy import ndimage
    try:
        from skimage.feature import peak_local_max
        from skimage.segmentation import watershed
    except ImportError as e:
        raise ImportError("splitting proposals (referent.split_min_distance > 0) needs "
                          "scikit-image: pip install 'pixsearch[model]'") from e
    # padded: a component touching the image border still has an edge there
    edt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    peaks = peak_local_max(edt, min_distance=min_distance, labels=mask.astype(np.int32),
                           exclude_border=False, threshold_abs=min_depth)
    if len(peaks) < 2:
        return []
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    ws = watershed(-edt, markers, mask=mask)
    return [ws == i for i in range(1, len(peaks) + 1)]


def seeded_pieces(mask: np.ndarray, seeds: np.ndarray) -> list[np.ndarray]:
    """The pieces of a boolean mask [H, W] around each seed pixel (row, col) [n, 2] that lies
    inside it (others, in or out of its frame, are ignored): every pixel goes to the nearest
    seed it is connected to (a watershed of the distance to the seeds), one entity per seed.
    [] when fewer than two seeds lie inside (the mask is then one entity already)."""
    from scipy import ndimage
    try:
        from skimage.segmentation import watershed
    except ImportError as e:
        raise ImportError("splitting proposals at centre peaks (referent.split_at_peaks) needs "
                          "scikit-image: pip install 'pixsearch[model]'") from e
    h, w = mask.shape
    inside = [(r, c) for r, c in seeds if 0 <= r < h and 0 <= c < w and mask[r, c]]
    if len(inside) < 2:
        return []
    markers = np.zeros(mask.shape, np.int32)
    for i, (r, c) in enumerate(inside, start=1):
        markers[r, c] = i
    # the seeds are entity centres, the minima of this map: its watershed lines lie halfway
    # between them (the mask's own distance transform peaks on the ridge between two
    # touching flags, so flooding it from their centres gives the ridge to one of them)
    ws = watershed(ndimage.distance_transform_edt(markers == 0), markers, mask=mask)
    return [ws == i for i in range(1, len(inside) + 1)]


def _pieces(comp: np.ndarray, cfg: ReferentConfig, seeds: np.ndarray | None
            ) -> list[np.ndarray]:
    """The entities inside one component [h, w] (its box): cut at the centre peaks inside
    it when there are any, else along its own distance peaks (`cfg.split_min_distance`)."""
    if seeds is not None and (pieces := seeded_pieces(comp, seeds)):
        return pieces
    if cfg.split_min_distance:
        return watershed_pieces(comp, cfg.split_min_distance, cfg.split_min_depth)
    return []


def _component_masks(prob: torch.Tensor, threshold: float, cfg: ReferentConfig,
                     peaks: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The connected components of `prob` [M, M] above `threshold` and, with entity-centre
    `peaks` ((x, y) in [0, 1], [n, 2]) or `cfg.split_min_distance`, their pieces (`_pieces`),
    none smaller than `cfg.min_area`."""
    from scipy import ndimage

    m = prob.shape[-1]
    labels, _ = ndimage.label((prob > threshold).cpu().numpy(), structure=np.ones((3, 3), bool))
    seeds = None
    if peaks is not None:  # (x, y) in [0, 1] → (row, col) mask pixels
        seeds = centre_pixels(peaks, m).cpu().numpy()
    out = []
    for c, box in enumerate(ndimage.find_objects(labels), start=1):
        comp = labels == c
        parts = [comp]
        # the pieces are cut in the component's box only: the rest of the map is empty
        local = None if seeds is None else seeds - [box[0].start, box[1].start]
        for piece in _pieces(comp[box], cfg, local):
            full = np.zeros_like(comp)
            full[box] = piece
            parts.append(full)
        out += [torch.from_numpy(p).to(prob.device) for p in parts
                if p.sum() >= cfg.min_area * m * m]
    return out


def span_components(logits: torch.Tensor, cfg: ReferentConfig,
                    peaks: torch.Tensor | None = None) -> Proposals:
    """Proposals from the span-conditioned mask logits [M, M] (see module doc): each
    component's logits are the map's, shifted so that its own threshold is 0 inside it, and
    strongly negative outside; its score is its mean probability. `peaks`: the image's
    entity centres ((x, y) in [0, 1] of the mask frame, [n, 2]; `referent.split_at_peaks`):
    a component holding two or more is also cut into one piece per centre."""
    m = logits.shape[-1]
    lg = logits.float()
    prob = torch.sigmoid(lg)
    out_lg, out_masks, out_sc = [], [], []
    for th in cfg.thresholds:
        for comp in _component_masks(prob, th, cfg, peaks):
            out_masks.append(comp)
            out_sc.append(prob[comp].mean())
            out_lg.append(torch.where(comp, _shift(lg, th).clamp_min(1e-3),
                                      torch.full_like(lg, -10.0)))
    if not out_masks:
        empty = lg.new_zeros(0, m, m)
        return Proposals(empty, empty.bool(), lg.new_zeros(0))
    masks, scores = torch.stack(out_masks), torch.stack(out_sc)
    keep = nms(masks, scores, cfg.nms_iou, cfg.max_candidates)
    return Proposals(torch.stack(out_lg)[keep], masks[keep], scores[keep])


def nms(masks: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """Greedy non-maximum suppression of masks [K, M, M] by score: indices kept, best
    first, at most `limit`, none overlapping a better one by more than `iou`."""
    order = scores.argsort(descending=True)
    ious = mask_iou_matrix(masks, masks)
    chosen: list[int] = []
    for k in order.tolist():
        if all(ious[k, j] <= iou for j in chosen):
            chosen.append(k)
        if len(chosen) >= limit:
            break
    return torch.as_tensor(chosen, dtype=torch.long, device=masks.device)


class InstanceProposer(nn.Module):
    """Point prompts → masks through its own SAM-style decoder (see module doc)."""

    def __init__(self, decoder: MaskDecoder, cfg: ReferentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.decoder = decoder
        c = decoder.hidden
        # An entity's centre is a long way from its edges (a flag spans tens of cells of the
        # 64-cell grid), so the head needs a field of view as wide: dilated 3 × 3 convolutions
        # (dilation 1 … 16: 63 cells). A plain two-layer head (5 cells) sees a uniform
        # interior and found the right number of flags for under a fifth of val scenes.
        layers: list[nn.Module] = []
        for dilation in (1, 2, 4, 8, 16):
            layers += [nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation), nn.GELU()]
        self.centres = nn.Sequential(*layers, nn.Conv2d(c, 1, 1))
        # a prior of 1% centres (CenterNet): the first steps are not all background loss
        nn.init.constant_(self.centres[-1].bias, -4.6)
        # SAM encodes prompt points with the same random-Fourier basis as the image grid.
        decoder.prompt_encoder.shared_embedding = decoder.shared_image_embedding

    def decode_points(self, image_embeddings: torch.Tensor, points: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """`image_embeddings` [B, C, g, g], `points` [B, P, 2] (x, y in [0, 1]) → (mask logits
        [B, P, M, M], predicted IoU [B, P]); one positive point per prompt."""
        d = self.decoder
        b, p, _ = points.shape
        size = d.prompt_encoder.input_image_size
        coords = (points * size - 0.5).to(image_embeddings.dtype)[:, :, None, :]
        labels = torch.ones(b, p, 1, dtype=torch.long, device=points.device)
        sparse, dense = d.prompt_encoder(coords, labels, None, None)
        pos = d.image_positional(image_embeddings).expand(b, -1, -1, -1)
        masks, iou = d.mask_decoder(
            image_embeddings=image_embeddings, image_positional_embeddings=pos,
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense.expand(b, -1, -1, -1),
            multimask_output=False)
        return masks[:, :, 0], iou[:, :, 0]

    def centre_logits(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Entity-centre heatmap logits [B, g, g] of image embeddings [B, C, g, g]."""
        return self.centres(image_embeddings)[:, 0]

    @torch.no_grad()
    def points(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """The entity centres of one image from its embeddings [1, C, g, g]: the peaks of the
        centre heatmap, (x, y) in [0, 1] of the mask frame [n, 2] (see `ReferentConfig`)."""
        assert image_embeddings.shape[0] == 1, "points works on one image"
        cfg = self.cfg
        heat = torch.sigmoid(self.centre_logits(image_embeddings)[0].float())
        return heatmap_peaks(heat, cfg.max_points, cfg.peak_threshold, cfg.peak_window)

    @torch.no_grad()
    def propose(self, image_embeddings: torch.Tensor) -> Proposals:
        """The proposals of one image from its embeddings [1, C, g, g] (see `ReferentConfig`)."""
        cfg = self.cfg
        pts = self.points(image_embeddings)
        m = self.decoder.mask_size
        if not len(pts):
            empty = image_embeddings.new_zeros(0, m, m)
            return Proposals(empty, empty.bool(), image_embeddings.new_zeros(0))
        lg, sc = self.decode_points(image_embeddings, pts[None].to(image_embeddings.dtype))
        lg, sc = lg[0].float(), sc[0].float()
        masks = lg > 0
        keep = (masks.flatten(1).sum(1) >= cfg.min_area * m * m) & (sc >= cfg.score_threshold)
        lg, sc, masks = lg[keep], sc[keep], masks[keep]
        idx = nms(masks, sc, cfg.nms_iou, cfg.max_candidates)
        return Proposals(lg[idx], masks[idx], sc[idx])

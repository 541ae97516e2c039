"""What a region mask shows: the perception line that opens a region search's evidence.

Some questions about an image need no knowledge but a look: "what colour is most of the
left flag?", "how many flags are in the picture?", "how many flags are left of the red
one?". A language core reading a handful of coarse image tokens cannot count or name the
colour of a small entity, but the model's own segmentation can. With
`EvidenceConfig.perception` on, the evidence of every region search opens with one line of
what the mask shows, before the retrieved documents:

    [0] Seen: mostly blue, then white; 3 like it in the image, 1 left of it.

- the colours: the basic colour terms (`model/colours.py`: `COLOUR_NAMES`) of the pixels
  inside the mask, largest share first (the second only when it covers a real part);
- the count: the instances of the image (the region's own included), and how many of the
  others have their centre left of the region's centre.

The same function writes the line from gold masks when the world builds its trajectories and
from the model's own masks when it decodes: the instances are then the connected components
of the span-conditioned mask, each cut along its watershed, so touching entities count apart
(`referent.instances: span`), or the entity centres the proposer's heatmap finds, one per
entity (`referent.instances: points`; `PixSearchSession.centres`). The LM learns to copy the
number or the colour the question asks for, as it copies a capital from a document; the line
is injected evidence (forced tokens, loss mask 0), never parsed back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pixsearch.model.colours import COLOUR_NAMES, COLOUR_WORDS, colour_shares

SEEN = "[0] Seen: "  # opens the perception line, before the numbered hits
# what a perception line can say about a region besides counts: its colours (and the words
# expressions use for them) and where its likes lie
PERCEPTION_WORDS = frozenset(w for words in COLOUR_WORDS.values() for name in words
                             for w in name.replace("-", " ").split()) | {"left", "right"}
SECOND_COLOUR = 0.2  # a second colour is named when it covers at least this share
MAX_SIDE = 256  # masks and images are strided down to about this size before counting pixels
# Instances from a span-conditioned probability map: its components above INSTANCE_P, each
# cut along its watershed (peaks SPLIT_DISTANCE apart; 0 = not cut), pieces below MIN_AREA of
# the map dropped. Chosen on 300 val expressions of gemma-270m, where the count is then right
# for half of them and for 0.38-0.43 with the components alone
# (docs/results/gemma-270m/instance_count.py).
INSTANCE_P, SPLIT_DISTANCE, MIN_AREA = 0.5, 10, 60 / 256 ** 2


@dataclass(frozen=True)
class RegionView:
    """What one region mask shows.

    Attributes:
        colours: (colour name, share of the region's pixels), largest share first.
        total: instances in the image, the region's own included (None: not counted).
        left: instances other than the region whose centre lies left of its centre.
    """

    colours: tuple[tuple[str, float], ...]
    total: int | None = None
    left: int | None = None

    def text(self) -> str:
        """The evidence line, e.g. `[0] Seen: mostly blue, then white; 3 like it in the
        image, 1 left of it.`"""
        if self.colours:
            seen = f"mostly {self.colours[0][0]}"
            if len(self.colours) > 1 and self.colours[1][1] >= SECOND_COLOUR:
                seen += f", then {self.colours[1][0]}"
        else:
            seen = "nothing"
        if self.total is not None:
            seen += f"; {self.total} like it in the image, {self.left or 0} left of it"
        return f"{SEEN}{seen}."


def image_view(total: int) -> str | None:
    """The perception line of a whole-image search: how many entities the image shows, e.g.
    `[0] Seen: 4 like it in the image.` (the region line's count, for the image as a whole).
    None for 0: no centre found is a proposer that missed (an outline, a photo unlike any
    flag), not an image of nothing, and "0 like it" made the model invent a country."""
    if total < 0:
        raise ValueError(f"an image shows a count of entities >= 0, got {total}")
    return f"{SEEN}{total} like it in the image." if total else None


def instance_masks(prob: np.ndarray, p: float = INSTANCE_P, split_distance: int = SPLIT_DISTANCE,
                   min_area: float = MIN_AREA) -> list[np.ndarray]:
    """The instances of a span-conditioned probability map [M, M]: boolean masks [M, M]
    (`min_area` is a share of the map)."""
    from scipy import ndimage

    from pixsearch.model.proposals import watershed_pieces

    labels, n = ndimage.label(prob > p, structure=np.ones((3, 3), bool))
    least = min_area * prob.size
    out: list[np.ndarray] = []
    for i in range(1, n + 1):
        comp = labels == i
        if comp.sum() < least:
            continue
        pieces = (watershed_pieces(comp, split_distance, 4.0) if split_distance > 0 else [])
        out += [x for x in pieces if x.sum() >= least] or [comp]
    return out


def _stride(shape: tuple[int, ...]) -> int:
    return max(1, int(np.ceil(max(shape[:2]) / MAX_SIDE)))


def _centre_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def region_view(mask: np.ndarray, rgb: np.ndarray, instances: Sequence[np.ndarray] | None,
                centres: np.ndarray | None = None) -> RegionView:
    """The view of boolean `mask` [H, W] over the image `rgb` [H, W, 3] (floats in [0, 1])
    among `instances` (boolean masks [H, W] of every entity of the kind, the region's own
    among them or not: an instance overlapping the region by IoU ≥ 0.5 is taken for it), or
    among `centres` ((x, y) pixels [n, 2] of every entity's centre: one inside the region is
    taken for its own). Neither: colours only."""
    if instances is not None and centres is not None:
        raise ValueError("region_view counts among instances or centres, not both")
    if mask.shape != rgb.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {rgb.shape[:2]} differ in size")
    s = _stride(mask.shape)
    m = np.ascontiguousarray(mask[::s, ::s])
    if not m.any():
        return RegionView(())
    px = torch.from_numpy(np.ascontiguousarray(rgb[::s, ::s].transpose(2, 0, 1))).float()
    shares = colour_shares(torch.from_numpy(m)[None], px)[0]
    order = shares.argsort(descending=True)
    colours = tuple((COLOUR_NAMES[int(i)], round(float(shares[i]), 3)) for i in order[:2]
                    if shares[i] > 0)
    if centres is not None:
        return _among_centres(mask, colours, np.asarray(centres, dtype=np.float64).reshape(-1, 2))
    if instances is None:
        return RegionView(colours)
    others = [x[::s, ::s] for x in instances if x.shape == mask.shape]
    others = [x for x in others if x.any() and _iou(x, m) < 0.5]
    cx = _centre_x(m)
    return RegionView(colours, total=len(others) + 1,
                      left=sum(1 for x in others if _centre_x(x) < cx))


def _among_centres(mask: np.ndarray, colours: tuple[tuple[str, float], ...],
                   centres: np.ndarray) -> RegionView:
    h, w = mask.shape
    col = np.clip(centres[:, 0].astype(int), 0, w - 1)
    row = np.clip(centres[:, 1].astype(int), 0, h - 1)
    others = centres[~mask[row, col]]
    cx = _centre_x(mask)
    return RegionView(colours, total=len(others) + 1, left=int((others[:, 0] < cx).sum()))

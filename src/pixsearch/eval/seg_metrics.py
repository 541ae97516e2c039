"""Segmentation metrics: mask IoU, gIoU and cIoU (referring segmentation), mIoU (semantic).

- `mask_iou(pred, gt)`: |P ∩ G| / |P ∪ G| of two binary masks; two empty masks score 1.0
  (nothing to find and nothing predicted is a perfect answer, as in LISA/PLUM's evaluation).
- `giou`: the mean of per-sample IoUs (RefCOCO/+/g "gIoU" in LISA, PLUM and the paper).
- `ciou`: cumulative intersection over cumulative union across all samples ("cIoU"); large
  objects weigh more.
- `SemanticIoU`: a confusion-matrix accumulator over label maps for mIoU on ADE20K and
  COCO-Stuff; classes that never occur in either prediction or ground truth are left out of
  the mean, pixels equal to `ignore_index` are skipped.

Masks may be numpy arrays or COCO RLE dicts (the project's record format); RLE is decoded with
pycocotools.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

MaskLike = np.ndarray | Mapping


def decode_mask(mask: MaskLike) -> np.ndarray:
    """Return a boolean HxW array from a numpy mask or a COCO RLE dict.

    RLE `counts` may be the compressed string (str or bytes) or the uncompressed list form.
    """
    if isinstance(mask, np.ndarray):
        return mask.astype(bool)
    if not isinstance(mask, Mapping) or "counts" not in mask or "size" not in mask:
        raise TypeError("a mask must be a numpy array or a COCO RLE dict with 'size' and 'counts'")
    from pycocotools import mask as mask_utils

    height, width = (int(v) for v in mask["size"])
    counts = mask["counts"]
    if isinstance(counts, list):
        rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    else:
        rle = {
            "size": [height, width],
            "counts": counts.encode() if isinstance(counts, str) else counts,
        }
    return mask_utils.decode(rle).astype(bool)


def _pair(pred: MaskLike, gt: MaskLike) -> tuple[np.ndarray, np.ndarray]:
    p, g = decode_mask(pred), decode_mask(gt)
    if p.shape != g.shape:
        raise ValueError(
            f"prediction mask {p.shape} and ground-truth mask {g.shape} differ in size"
        )
    return p, g


def intersection_union(pred: MaskLike, gt: MaskLike) -> tuple[int, int]:
    """Pixel counts |P ∩ G| and |P ∪ G|."""
    p, g = _pair(pred, gt)
    return int(np.logical_and(p, g).sum()), int(np.logical_or(p, g).sum())


def mask_iou(pred: MaskLike, gt: MaskLike) -> float:
    """IoU of two binary masks; 1.0 when both are empty."""
    inter, union = intersection_union(pred, gt)
    return 1.0 if union == 0 else inter / union


@dataclass
class ReferringScores:
    """gIoU and cIoU over a set of (predicted, ground-truth) masks."""

    n: int
    giou: float
    ciou: float

    def as_dict(self) -> dict[str, float]:
        return {"n": float(self.n), "giou": self.giou, "ciou": self.ciou}


def referring_scores(pairs: Iterable[tuple[MaskLike, MaskLike]]) -> ReferringScores:
    """Accumulate gIoU (mean per-sample IoU) and cIoU (ΣI / ΣU) over (pred, gt) mask pairs."""
    n, iou_sum, inter_sum, union_sum = 0, 0.0, 0, 0
    for pred, gt in pairs:
        inter, union = intersection_union(pred, gt)
        iou_sum += 1.0 if union == 0 else inter / union
        inter_sum += inter
        union_sum += union
        n += 1
    if n == 0:
        return ReferringScores(0, 0.0, 0.0)
    ciou = 1.0 if union_sum == 0 else inter_sum / union_sum
    return ReferringScores(n, iou_sum / n, ciou)


def giou(pairs: Iterable[tuple[MaskLike, MaskLike]]) -> float:
    """Mean per-sample IoU over (pred, gt) mask pairs."""
    return referring_scores(pairs).giou


def ciou(pairs: Iterable[tuple[MaskLike, MaskLike]]) -> float:
    """Cumulative intersection over cumulative union over (pred, gt) mask pairs."""
    return referring_scores(pairs).ciou


class SemanticIoU:
    """Accumulates a confusion matrix over label maps and reports per-class IoU and mIoU."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be at least 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        """Add one image: `pred` and `gt` are integer label maps of the same shape."""
        pred, gt = np.asarray(pred).ravel(), np.asarray(gt).ravel()
        if pred.shape != gt.shape:
            raise ValueError(f"label maps differ in size: {pred.shape} vs {gt.shape}")
        keep = (
            np.ones_like(gt, dtype=bool) if self.ignore_index is None else gt != self.ignore_index
        )
        pred, gt = pred[keep].astype(np.int64), gt[keep].astype(np.int64)
        for name, labels in (("prediction", pred), ("ground truth", gt)):
            if labels.size and (labels.min() < 0 or labels.max() >= self.num_classes):
                raise ValueError(f"{name} has labels outside [0, {self.num_classes})")
        flat = gt * self.num_classes + pred
        self.confusion += np.bincount(flat, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes
        )

    def per_class_iou(self) -> np.ndarray:
        """IoU per class (rows: ground truth, columns: prediction); NaN for absent classes."""
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over classes that occur in the prediction or the ground truth."""
        ious = self.per_class_iou()
        present = ~np.isnan(ious)
        return float(ious[present].mean()) if present.any() else 0.0

    def pixel_accuracy(self) -> float:
        """Share of non-ignored pixels labelled correctly."""
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else 0.0

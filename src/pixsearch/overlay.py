"""Masks drawn on images: a predicted mask tinted red, a gold mask tinted green, zoomed in.

One drawing for every place that shows a model's masks against the truth: evaluation
galleries (`eval/plots.py`, `eval/figures.py`) and the sample predictions a training run sends
to its experiment tracker (`train/tracking.py`). Arrays only (numpy + Pillow for resizing):
matplotlib is the caller's business.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PRED_RGB = np.array([0.95, 0.1, 0.1])  # red: what the model segmented
GOLD_RGB = np.array([0.1, 0.9, 0.1])  # green: the entity it should have segmented


def resize_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """A boolean mask resized (nearest) to height × width, e.g. a decoder's square M × M mask
    back onto its image."""
    if mask.shape == (height, width):
        return mask.astype(bool)
    im = Image.fromarray(mask.astype(np.uint8) * 255).resize((width, height), Image.NEAREST)
    return np.asarray(im) > 127


def mask_iou(pred: np.ndarray, gold: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    union = int((pred | gold).sum())
    return float((pred & gold).sum()) / union if union else 1.0


def overlay(image: np.ndarray | Image.Image, pred: np.ndarray | None = None,
            gold: np.ndarray | None = None) -> np.ndarray:
    """The image as float RGB in [0, 1] with `gold` tinted green and `pred` red on top (masks
    of another size are resized to the image)."""
    shown = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image,
                       dtype=float)
    if shown.max() > 1.0:
        shown = shown / 255.0
    shown = shown[..., :3].copy()
    h, w = shown.shape[:2]
    if gold is not None:
        g = resize_mask(gold, h, w)
        shown[g] = 0.55 * shown[g] + 0.45 * GOLD_RGB
    if pred is not None:
        p = resize_mask(pred, h, w)
        shown[p] = 0.45 * shown[p] + 0.55 * PRED_RGB
    return shown


def zoom_box(mask: np.ndarray, margin: float = 0.6, least: int = 96) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) around `mask` with a margin, at least `least` pixels wide: small
    entities are what go wrong, and they vanish in a whole-image thumbnail."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if not len(ys):
        return 0, h, 0, w
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half = max(least / 2, (1 + margin) * max(ys.max() - ys.min(), xs.max() - xs.min()) / 2)
    y0, x0 = int(max(0, cy - half)), int(max(0, cx - half))
    return y0, int(min(h, cy + half)), x0, int(min(w, cx + half))

"""Binary masks as COCO run-length encodings, and the few geometric helpers built on them.

Dataset records, search traces and the HTTP API carry masks as COCO RLE with `counts` as a
string (JSON-safe). Encoding and decoding are pycocotools' (the reference implementation), so
files written here open in any COCO tool.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def mask_to_rle(mask: np.ndarray) -> dict:
    """Encode a boolean HxW mask as COCO RLE `{"size": [h, w], "counts": str}`."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a mask must be 2-D, got shape {m.shape}")
    rle = coco_mask.encode(np.asfortranarray(m.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])],
            "counts": rle["counts"].decode("ascii")}


def rle_to_mask(rle: dict) -> np.ndarray:
    """Decode a COCO RLE (counts as str or bytes, or an uncompressed list) to a bool HxW mask."""
    counts = rle["counts"]
    size = [int(rle["size"][0]), int(rle["size"][1])]
    if isinstance(counts, list):  # uncompressed RLE, as some COCO files hold
        rle = coco_mask.frPyObjects({"size": size, "counts": counts}, *size)
    else:
        rle = {"size": size, "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return coco_mask.decode(rle).astype(bool)


def rle_area(rle: dict) -> int:
    """Number of foreground pixels of an RLE mask (without decoding it)."""
    counts = rle["counts"]
    enc = {"size": rle["size"], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return int(coco_mask.area(enc))


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight box `(x0, y0, x1, y1)` (x1, y1 exclusive) around the foreground of a mask."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("empty mask has no box")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected foreground component of a boolean mask (empty stays empty).

    A referring mask that spills onto a second object makes a crop box spanning both, and the
    region query then matches neither; keeping one component keeps the crop on one object."""
    from scipy import ndimage

    m = np.asarray(mask, bool)
    labels, n = ndimage.label(m, structure=np.ones((3, 3), bool))
    if n <= 1:
        return m
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(sizes.argmax())

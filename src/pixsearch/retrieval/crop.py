"""Region crops for region queries: tight to the mask, background outside the mask suppressed.

Measured on flags pasted in photos (`benchmarks/image_embedder_bench.py` compares both crops):
padding the crop by 10% of the box cut recall@1 roughly in half against a tight crop, so the
default is tight with the pixels outside the mask replaced by a neutral fill. Padding stays
available as an option. A model's own mask also carries a rim of background or of a
neighbouring entity; `erode` peels it off before cropping.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pixsearch.images import NEUTRAL

# ImageNet mean colour: after normalisation a DINOv2-style encoder sees ~0 there (the one
# neutral colour, also what transparent pixels of an input image become).
DEFAULT_FILL: tuple[int, int, int] = NEUTRAL

Box = tuple[int, int, int, int]


def mask_box(mask: np.ndarray) -> Box:
    """Tight box (x0, y0, x1, y1), exclusive ends, of the True pixels of a HxW mask."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(ys) == 0:
        raise ValueError("cannot crop to an empty mask (no pixel is set)")
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def pad_box(box: Box, pad: float, width: int, height: int) -> Box:
    """Grow `box` by `pad` × its width/height on every side, clipped to the image."""
    x0, y0, x1, y1 = box
    dx, dy = round((x1 - x0) * pad), round((y1 - y0) * pad)
    return max(0, x0 - dx), max(0, y0 - dy), min(width, x1 + dx), min(height, y1 + dy)


def erode_mask(mask: np.ndarray, fraction: float, keep: float = 0.25) -> np.ndarray:
    """`mask` eroded by `fraction` of its box's shorter side (at least one pixel; 4-connected
    steps, scipy's default), or `mask` itself where that would leave less than `keep` of its
    pixels (a mask that thin is all rim)."""
    from scipy.ndimage import binary_erosion

    mask = np.asarray(mask, dtype=bool)
    if fraction <= 0 or not mask.any():
        return mask
    x0, y0, x1, y1 = mask_box(mask)
    steps = max(1, round(fraction * min(x1 - x0, y1 - y0)))
    # outside the box is background, as the erosion's border is
    inner = binary_erosion(mask[y0:y1, x0:x1], iterations=steps)
    if inner.sum() < keep * mask.sum():
        return mask
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = inner
    return out


def crop(
    image: Image.Image,
    mask: np.ndarray,
    pad: float = 0.0,
    suppress_background: bool = True,
    fill: tuple[int, int, int] = DEFAULT_FILL,
    erode: float = 0.0,
) -> tuple[Image.Image, Box]:
    """Crop `image` to the box of `mask`.

    Args:
        image: the full image.
        mask: boolean H×W mask of the region (same size as `image`).
        pad: extra margin as a fraction of the box size on each side (0 = tight).
        suppress_background: replace every pixel outside the mask by `fill`.
        fill: RGB colour of suppressed pixels.
        erode: erode the mask first by this fraction of its box's shorter side
            (`erode_mask`; 0 = as given).

    Returns:
        (the RGB crop, its box (x0, y0, x1, y1) in image pixels).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (image.height, image.width):
        raise ValueError(f"mask shape {mask.shape} does not match image size "
                         f"{(image.height, image.width)}")
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    mask = erode_mask(mask, erode)
    box = pad_box(mask_box(mask), pad, image.width, image.height)
    x0, y0, x1, y1 = box
    rgb = np.array(image.convert("RGB"))[y0:y1, x0:x1]
    if suppress_background:
        rgb[~mask[y0:y1, x0:x1]] = fill
    return Image.fromarray(rgb), box

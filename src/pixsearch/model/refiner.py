"""Coarse-to-fine zoom refinement of a region mask: decode, zoom into the box, decode again.

The mask decoder sees the whole image through a 64 × 64 grid of image embeddings, so a flag
covering 1% of an egocentric scene spans a handful of cells: its mask comes out blobby, cut
to a stripe, or merged with its neighbour, and the crop the knowledge base is searched with
shows the wrong thing. SAM refines a mask by decoding again with the previous mask as the
dense prompt; here that second decoding also happens in a zoomed view:

1. the selected (coarse) mask, at the photograph's resolution, gives a window: its box grown
   `context` times, at least `min_side` of the image;
2. the window is cropped from the photograph and encoded like a whole image (the frozen
   vision tower, and a high-resolution branch of the refiner's own);
3. the refiner's decoder (a copy of the mask decoder, trained on such windows) segments the
   entity again, prompted by the same mask queries and, as the dense prompt, the coarse
   mask's logits in the window; `iters` feedback passes;
4. the refined mask is pasted back into the image, and only its parts that touch the coarse
   mask are kept (another flag inside the window is not the referent).

`RefinerConfig` holds the settings; `pixsearch train --recipe refiner` (`train/refiner.py`)
trains it on a trained model's own coarse masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn

from pixsearch.model.config import RefinerConfig
from pixsearch.model.hires import MaskFeatureMap
from pixsearch.model.mask_decoder import MaskDecoder
from pixsearch.model.processors import MaskFrame

Box = tuple[int, int, int, int]
OUTSIDE = -20.0  # logit of the pixels outside the window and of the frame's padding


class ZoomRefiner(nn.Module):
    """A mask decoder (and, without SAM's image encoder, a mask feature map) of its own for
    zoomed windows: window embeddings + mask queries + coarse-mask prompt → mask logits."""

    def __init__(self, cfg: RefinerConfig, decoder: MaskDecoder,
                 features: MaskFeatureMap | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.decoder = decoder
        self.features = features

    def forward(self, embeddings: torch.Tensor, queries: torch.Tensor, prompt: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """`embeddings` [B, C, g, g], `queries` [B, Q, C], `prompt` (coarse logits in the
        window's frame) [B, 1, M, M] → (logits [B, 1, M, M], predicted IoU [B, 1])."""
        logits = prompt
        for _ in range(max(1, self.cfg.iters)):
            logits, iou = self.decoder.decode_once(embeddings, queries, logits)
        return logits, iou


def zoom_box(mask: np.ndarray, cfg: RefinerConfig, jitter: float = 0.0,
             rng: np.random.Generator | None = None) -> Box:
    """The window (x0, y0, x1, y1), exclusive ends, around the True pixels of `mask` [H, W]:
    their box grown `cfg.context` times about its centre, each side at least `cfg.min_side`
    of the image's, clipped to the image. `jitter` (training): the centre moves and the
    sides scale by up to that fraction, at random from `rng`."""
    h, w = mask.shape
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if not len(ys):
        raise ValueError("cannot zoom into an empty mask")
    cx, cy = (xs[0] + xs[-1] + 1) / 2, (ys[0] + ys[-1] + 1) / 2
    bw = max((xs[-1] + 1 - xs[0]) * cfg.context, cfg.min_side * w)
    bh = max((ys[-1] + 1 - ys[0]) * cfg.context, cfg.min_side * h)
    if jitter:
        assert rng is not None, "jitter needs a random generator"
        cx += rng.uniform(-jitter, jitter) * bw
        cy += rng.uniform(-jitter, jitter) * bh
        bw *= 1 + rng.uniform(-jitter, jitter)
        bh *= 1 + rng.uniform(-jitter, jitter)
    x0, y0 = max(0, int(round(cx - bw / 2))), max(0, int(round(cy - bh / 2)))
    x1, y1 = min(w, int(round(cx + bw / 2))), min(h, int(round(cy + bh / 2)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def to_frame(frame: MaskFrame, logits: torch.Tensor, size: int) -> torch.Tensor:
    """Logits [h, w] over a window → [1, 1, size, size] in the window's decoder frame (the
    inverse of `MaskFrame.to_original`; `OUTSIDE` in the padding)."""
    w, h = frame._content_at(size)
    x = F.interpolate(logits.float()[None, None], size=(h, w), mode="bilinear",
                      align_corners=False)
    out = torch.full((1, 1, size, size), OUTSIDE, dtype=x.dtype, device=x.device)
    out[..., :h, :w] = x
    return out


def paste(window_logits: torch.Tensor, box: Box, width: int, height: int) -> torch.Tensor:
    """Logits [h, w] of the window `box` → [height, width], `OUTSIDE` elsewhere."""
    x0, y0, x1, y1 = box
    assert window_logits.shape == (y1 - y0, x1 - x0), (window_logits.shape, box)
    out = torch.full((height, width), OUTSIDE, dtype=window_logits.dtype,
                     device=window_logits.device)
    out[y0:y1, x0:x1] = window_logits
    return out


def keep_touching(refined: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """The connected components of `refined` that overlap `coarse` (both boolean [H, W]);
    `coarse` itself when none does (the refiner lost the entity)."""
    labels, n = ndimage.label(refined)
    if n == 0:
        return coarse
    overlap = ndimage.sum(coarse, labels, index=np.arange(1, n + 1))
    if not (overlap > 0).any():
        return coarse
    return np.isin(labels, 1 + np.flatnonzero(overlap > 0))

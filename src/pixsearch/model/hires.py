"""The mask decoder's image feature map: the coarse backbone grid plus a high-resolution branch.

DINOv2-S (the `mini` preset's frozen tower) sees 224 × 224 pixels as a 16 × 16 grid: a flag
covering ~1% of an egocentric scene falls inside one or two patches, too coarse for a mask.
So the decoder's image embeddings are the backbone grid projected to the decoder width and
upsampled to the decoder grid, plus a small trainable CNN over a larger view of the image
(e.g. 448 px → 64 × 64 cells of 7 px), which carries the fine edges the coarse grid lacks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pixsearch.model.config import HiResConfig
from pixsearch.model.vision import to_pixels


class HiResBranch(nn.Module):
    """CNN of stride-2 stages over the high-resolution view → [B, d_out, grid, grid]."""

    def __init__(self, cfg: HiResConfig, d_out: int, grid: int) -> None:
        super().__init__()
        self.cfg, self.grid = cfg, grid
        layers: list[nn.Module] = []
        c_in = 3
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(1, c), nn.GELU()]
            c_in = c
        self.net = nn.Sequential(*layers)
        self.out = nn.Conv2d(c_in, d_out, 1)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return to_pixels(image, self.cfg.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.net(pixels.to(self.out.weight.dtype))
        if x.shape[-1] != self.grid:
            x = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
        return self.out(x)


class MaskFeatureMap(nn.Module):
    """Coarse grid [B, D, h, h] (+ hi-res pixels) → decoder image embeddings [B, C, g, g]."""

    def __init__(self, d_grid: int, d_out: int, grid: int, hires: HiResConfig) -> None:
        super().__init__()
        self.grid = grid
        self.coarse = nn.Conv2d(d_grid, d_out, 1)
        self.hires = HiResBranch(hires, d_out, grid) if hires.enabled else None

    def forward(self, coarse: torch.Tensor, hires_pixels: torch.Tensor | None) -> torch.Tensor:
        x = self.coarse(coarse.to(self.coarse.weight.dtype))
        if x.shape[-1] != self.grid:
            x = F.interpolate(x, size=(self.grid, self.grid), mode="bilinear", align_corners=False)
        if self.hires is not None:
            assert hires_pixels is not None, "the high-resolution branch needs `hires` pixels"
            x = x + self.hires(hires_pixels)
        return x

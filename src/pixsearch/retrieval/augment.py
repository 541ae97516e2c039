"""Augmented views of knowledge-base images that look like region-query crops (batched, torch).

A region query is a crop tight to a (gold or predicted) mask of an entity inside a photo: the
entity is small (resolution loss), slightly rotated and perspective-warped, blurred, re-lit,
sometimes partly occluded or JPEG-compressed, and the crop's border shows either the neutral
fill of background suppression or some photo background that bled into the mask. `random_views`
draws such views from clean images so that an embedder can be trained to map them back.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pixsearch.retrieval.config import AugmentConfig
from pixsearch.retrieval.crop import DEFAULT_FILL


def _homographies(n: int, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """[n, 3, 3] source→canvas maps in normalised coordinates (rotation, scale, perspective)."""
    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=g)

    th = u(-cfg.rotate_deg, cfg.rotate_deg) * math.pi / 180
    s = u(*cfg.scale)
    a = u(-cfg.aspect, cfg.aspect)
    # 4:3 images live in a non-square normalised frame: rotate in pixel-proportional coords
    ar = 4 / 3
    H = torch.zeros(n, 3, 3)
    H[:, 0, 0] = s * (1 + a) * torch.cos(th)
    H[:, 0, 1] = -s * (1 + a) * torch.sin(th) / ar
    H[:, 1, 0] = s * (1 - a) * torch.sin(th) * ar
    H[:, 1, 1] = s * (1 - a) * torch.cos(th)
    H[:, 2, 0] = u(-cfg.perspective, cfg.perspective)
    H[:, 2, 1] = u(-cfg.perspective, cfg.perspective)
    H[:, 2, 2] = 1.0
    return H


def _apply(H: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Apply [n,3,3] homographies to [n,P,2] points."""
    p = torch.cat([pts, torch.ones_like(pts[..., :1])], dim=-1) @ H.transpose(1, 2)
    return p[..., :2] / p[..., 2:3]


def _warp(src: torch.Tensor, out_hw: tuple[int, int], cfg: AugmentConfig,
          g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp each source and crop tight (± margin) to its warped box → (views, valid mask)."""
    n = src.shape[0]
    H = _homographies(n, cfg, g)
    corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]]).expand(n, 4, 2)
    warped = _apply(H, corners)
    lo, hi = warped.min(dim=1).values, warped.max(dim=1).values
    m = cfg.margin[0] + (cfg.margin[1] - cfg.margin[0]) * torch.rand(n, 1, generator=g)
    center, half = (lo + hi) / 2, (hi - lo) / 2 * (1 + 2 * m)
    h, w = out_hw
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], dim=-1).reshape(1, -1, 2)
    canvas = center[:, None] + grid * half[:, None]
    source = _apply(torch.linalg.inv(H), canvas).reshape(n, h, w, 2)
    views = F.grid_sample(src, source, mode="bilinear", padding_mode="border", align_corners=True)
    valid = (source.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).float()
    return views, valid


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return x
    r = max(1, int(math.ceil(2 * sigma)))
    k = torch.exp(-(torch.arange(-r, r + 1, dtype=x.dtype) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1),
                 groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1),
                    groups=c)


def _jpeg(x: torch.Tensor, idx: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    import cv2

    for i in idx.tolist():
        q = int(torch.randint(30, 91, (1,), generator=g))
        img = (x[i].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        assert ok
        x[i] = torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)).permute(2, 0, 1) / 255.0
    return x


def random_views(src: torch.Tensor, out_hw: tuple[int, int], cfg: AugmentConfig,
                 g: torch.Generator, groups: int = 4) -> torch.Tensor:
    """Query-like views of `src` (float [B, 3, H, W] in [0, 1]) → float [B, 3, *out_hw].

    The batch is split into `groups` that each get one source resolution and blur level,
    which keeps the interpolation calls batched.
    """
    b = src.shape[0]
    out = []
    for chunk in torch.arange(b).chunk(groups):
        sw = int(torch.randint(cfg.source_width[0], cfg.source_width[1] + 1, (1,), generator=g))
        sh = max(4, round(sw * src.shape[2] / src.shape[3]))
        small = F.interpolate(src[chunk], size=(sh, sw), mode="bilinear", antialias=True,
                              align_corners=False)
        views, valid = _warp(small, out_hw, cfg, g)
        # background: neutral fill (suppressed) or another image's texture (bleed)
        fill = torch.tensor(DEFAULT_FILL, dtype=views.dtype).view(1, 3, 1, 1) / 255.0
        texture = views.roll(1, dims=0).flip(-1)
        bleed = (torch.rand(len(chunk), 1, 1, 1, generator=g) < cfg.bleed_p).float()
        bg = bleed * texture + (1 - bleed) * fill
        views = valid * views + (1 - valid) * bg
        sigma = float(torch.rand(1, generator=g)) * cfg.blur_sigma
        out.append(_blur(views, sigma))
    x = torch.cat(out)
    x = photometric(x, cfg, g)
    x = _occlude(x, cfg, g)
    jpeg = torch.nonzero(torch.rand(b, generator=g) < cfg.jpeg_p).flatten()
    return _jpeg(x.clamp(0, 1), jpeg, g)


def photometric(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """`x` with random brightness, contrast, colour gain and noise (unclamped)."""
    b = x.shape[0]
    bright = 1 + cfg.brightness * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
    contrast = 1 + cfg.contrast * (2 * torch.rand(b, 1, 1, 1, generator=g) - 1)
    gain = 1 + 0.08 * (2 * torch.rand(b, 3, 1, 1, generator=g) - 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * bright * gain
    return x + cfg.noise * torch.randn(x.shape, generator=g)


def _occlude(x: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    b, _, h, w = x.shape
    x = x.clone()
    for i in torch.nonzero(torch.rand(b, generator=g) < cfg.occlude_p).flatten().tolist():
        oh = int(torch.randint(2, max(3, int(0.3 * h)), (1,), generator=g))
        ow = int(torch.randint(2, max(3, int(0.3 * w)), (1,), generator=g))
        y0 = int(torch.randint(0, h - oh + 1, (1,), generator=g))
        x0 = int(torch.randint(0, w - ow + 1, (1,), generator=g))
        x[i, :, y0 : y0 + oh, x0 : x0 + ow] = torch.rand(3, 1, 1, generator=g)
    return x


def to_tensor(images: list, size_wh: tuple[int, int]) -> torch.Tensor:
    """PIL images → float [N, 3, H, W] in [0, 1] at `size_wh` (area-averaged resize)."""
    from PIL import Image

    arr = np.stack([np.asarray(im.convert("RGB").resize(size_wh, Image.BOX), np.float32)
                    for im in images])
    return torch.from_numpy(arr / 255.0).permute(0, 3, 1, 2).contiguous()

"""A disk cache of frozen image features, so training epochs do not re-run the vision tower.

The `mini` preset's vision tower is frozen DINOv2-S (an ONNX graph, ~0.1–0.2 s per image on a
CPU core); its tokens are computed once per world image and kept in one file per
(world, backbone preprocessing) pair, stored as float16. The cheap per-step inputs that feed
trainable parts (the high-resolution branch's pixels, SAM's pixels) are made from the image
file when a batch is built, exactly as `PixSearchModel.preprocess` makes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from pixsearch.images import load_image
from pixsearch.logs import progress_bar

if TYPE_CHECKING:
    from pixsearch.model.pixsearch_model import PixSearchModel


def cache_key(model: PixSearchModel) -> str:
    """Short hash of everything that decides the backbone's preprocessing output."""
    cfg = model.cfg
    # a native backbone's LM (from scratch or pretrained) does not see the pixels: its image
    # features are the frozen vision tower's alone
    pretrained = "" if cfg.lm.backbone == "native" else cfg.lm.pretrained
    ident = {"backbone": cfg.lm.backbone, "pretrained": pretrained,
             "image_size": cfg.lm.image_size, "vision": cfg.vision.__dict__}
    return hashlib.sha1(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:12]


class FeatureCache:
    """Frozen backbone inputs per image path (relative to `root`), cached in `cache_dir`.

    Args:
        model: the model whose `backbone.preprocess` is cached.
        root: folder the image paths are relative to (the world).
        cache_dir: folder of the cache file.
        progress: show a progress bar while computing.
    """

    def __init__(self, model: PixSearchModel, root: str | Path, cache_dir: str | Path,
                 progress: bool = True) -> None:
        self.model = model
        self.root = Path(root)
        self.file = Path(cache_dir) / f"features-{cache_key(model)}.pt"
        self.progress = progress
        self._feats: dict[str, dict[str, torch.Tensor]] = {}
        if self.file.exists():
            self._feats = torch.load(self.file, map_location="cpu", weights_only=True)

    def __len__(self) -> int:
        return len(self._feats)

    def missing(self, images: list[str]) -> list[str]:
        return sorted({p for p in images if p and p not in self._feats})

    @torch.no_grad()
    def precompute(self, images: list[str]) -> int:
        """Compute and save the features of every image not cached yet; returns how many."""
        todo = self.missing(images)
        for path in progress_bar(todo, desc="image features", disable=not self.progress):
            out = self.model.backbone.preprocess(self._open(path))
            self._feats[path] = {k: v.to(torch.float16) if v.is_floating_point() else v
                                 for k, v in out.items()}
        if todo:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            torch.save(self._feats, tmp)
            tmp.replace(self.file)  # atomic: a kill never leaves a half-written cache
        return len(todo)

    def reload(self) -> None:
        """Re-read the cache file (other processes wait for the main one to write it)."""
        self._feats = torch.load(self.file, map_location="cpu", weights_only=True)

    def _open(self, path: str) -> Image.Image:
        return load_image(self.root / path)  # as evaluation reads it: upright RGB

    def get(self, path: str) -> dict[str, torch.Tensor]:
        """Everything `PixSearchModel.preprocess` returns for the image, from the cache plus
        the trainable branches' pixel inputs."""
        if path not in self._feats:
            raise KeyError(f"image {path} has no cached features; call precompute() first")
        out = {k: v.float() if v.is_floating_point() else v for k, v in self._feats[path].items()}
        m = self.model
        needs_pixels = m.mask_decoder.vision_encoder is not None or (
            m.mask_features is not None and m.mask_features.hires is not None)
        if needs_pixels:
            image = self._open(path)
            if m.mask_decoder.vision_encoder is not None:
                # SAM's own frame (longest side + pad), where `model/batch.py` puts the targets
                out["sam"] = m.mask_decoder.preprocess(image)
            if m.mask_features is not None and m.mask_features.hires is not None:
                out["hires"] = m.mask_features.hires.preprocess(image)
        return out

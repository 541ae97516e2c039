"""CLIP-family image embedders for the knowledge index: `transformers` CLIP / SigLIP by hub id or
local folder.

The paper-scale presets see images through CLIP ViT-L/14, and CRAG-MM's own image search
embeds with CLIP; an index built with the same family of encoder is what those setups expect.
Any checkpoint whose model class has `get_image_features` (`CLIPModel`, `SiglipModel`,
`Siglip2Model`, …) and that ships an image processor works: `image_embedder:
clip:openai/clip-vit-large-patch14` or `clip:/models/siglip-so400m` in an `IndexConfig`.
Images go through the checkpoint's own processor (resize, centre crop, normalisation), and the
projected image features are L2-normalised like every embedder's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

PREFIX = "clip:"


def _is_local(source: str) -> bool:
    return source.startswith(("/", ".", "~")) or Path(source).expanduser().exists()


def _dim_of(config: dict) -> int:
    """Image-embedding width from a model config: CLIP's projection, SigLIP's vision width."""
    if config.get("projection_dim"):
        return int(config["projection_dim"])
    vision = config.get("vision_config") or {}
    if vision.get("hidden_size"):
        return int(vision["hidden_size"])
    raise ValueError("cannot tell the image-embedding size of this checkpoint: its config has "
                     "neither projection_dim nor vision_config.hidden_size")


def clip_dim(source: str) -> int:
    """Embedding width of checkpoint `source` (reads its config only, no weights)."""
    if _is_local(source):
        file = Path(source).expanduser() / "config.json"
        if not file.is_file():
            raise FileNotFoundError(f"{file} is missing: give a folder written by "
                                    "save_pretrained (model and image processor)")
        return _dim_of(json.loads(file.read_text()))
    from transformers import AutoConfig

    return _dim_of(AutoConfig.from_pretrained(source).to_dict())


class ClipImageEmbedder:
    """Images → L2-normalised projected image features of a CLIP-family checkpoint.

    Args:
        source: hub id or local folder (model + image processor, as `save_pretrained` writes).
        num_threads: torch CPU threads while embedding (None = leave torch's setting).
        device: where the model runs ("" = CUDA if available, else CPU).
    """

    def __init__(self, source: str, num_threads: int | None = None, device: str = "") -> None:
        import torch
        from transformers import AutoImageProcessor, AutoModel

        src = str(Path(source).expanduser()) if _is_local(source) else source
        try:
            self.model = AutoModel.from_pretrained(src).eval()
            self.processor = AutoImageProcessor.from_pretrained(src)
        except OSError as e:
            raise OSError(f"cannot load the image embedder {source!r}: give a local folder "
                          f"saved with save_pretrained (model and image processor), or a hub "
                          f"id on a machine with hub access ({e})") from e
        if not hasattr(self.model, "get_image_features"):
            raise ValueError(f"{source!r} is a {type(self.model).__name__}, which has no image "
                             "tower (get_image_features); use a CLIP or SigLIP checkpoint")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.num_threads = num_threads
        self.name = PREFIX + source
        self.dim = _dim_of(self.model.config.to_dict())

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        from pixsearch.retrieval.embedders import normalize

        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        px = inputs["pixel_values"].to(self.device, self.model.dtype)
        with torch.inference_mode():
            out = self.model.get_image_features(pixel_values=px)
        # transformers 5 returns a model output whose pooler_output is the projected feature
        feats = out if isinstance(out, torch.Tensor) else out.pooler_output
        return normalize(feats.float().cpu().numpy())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TypeError("the CLIP image embedder serves the image index; text queries use the "
                        "index's text embedder")

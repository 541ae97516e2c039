"""What the decoding engine needs from a model: a KV-cached session and a region-mask call.

Any model can drive search-interleaved decoding if it can (1) start a session from a rendered
prompt and an image, (2) extend that session with new token ids through its KV cache, returning
the next-token logits, and (3) when the model has written `<search><region>`, return a mask of
the entity being talked about. `PixSearchModel` implements it; tests use scripted models.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

from pixsearch.render import Rendered, Renderer
from pixsearch.tokens import TokenTable


@runtime_checkable
class DecodeSession(Protocol):
    """One answer in progress: the ids so far and the model state (KV cache) behind them."""

    ids: list[int]

    def extend(self, ids: list[int]) -> torch.Tensor:
        """Run `ids` through the cache (only these are computed); return logits [vocab] of the
        next token after the last one."""
        ...

    def region_mask(self) -> np.ndarray:
        """Boolean HxW mask, in the original image's size, of the entity the text so far is
        talking about (called right after the model wrote `<region>`). A session may also
        set a float attribute `mask_score` (confidence in that mask, in [0, 1]); the engine
        records it in the search step for the abstention policy. A session may also have
        `instances() -> list[np.ndarray]`: boolean HxW masks of every entity of the kind the
        last region mask was about, which the perception line counts
        (`EvidenceConfig.perception`), or `centres() -> np.ndarray`: (x, y) pixels [n, 2] of
        every entity's centre, counted instead (each returns None when it cannot tell);
        without either the line names the colours only."""
        ...


@runtime_checkable
class SearchLM(Protocol):
    """A model that can drive `pixsearch.decode.Engine`."""

    tokens: TokenTable
    renderer: Renderer

    def start(self, prompt: Rendered, image: Image.Image | None) -> tuple[DecodeSession, torch.Tensor]:
        """Prefill `prompt` (with `image` in its placeholder slots); return the session and the
        logits [vocab] of the first token to generate."""
        ...

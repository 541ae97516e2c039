"""The search API every retriever implements: `search(query, k) -> list[Hit]`.

A query is text, a PIL image, an (image, mask) pair or a `Query`. Implementations: the
in-process `KnowledgeIndex`, the HTTP client `HTTPSearch`, and adapters of other search APIs
(`CragMMSearch`). The decode loop only sees this protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from pixsearch.types import Hit, Query

QueryLike = Query | str | Image.Image | tuple[Image.Image, np.ndarray]


@runtime_checkable
class SearchAPI(Protocol):
    """Anything that answers `search(query, k)` with hits, best first."""

    def search(self, query: QueryLike, k: int = 5) -> list[Hit]:
        """Top-k hits for text, a PIL image, or an image + boolean mask."""
        ...

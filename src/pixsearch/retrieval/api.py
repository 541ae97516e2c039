"""The search API every retriever implements: `search(query, k) -> list[Hit]`.

A query is text, a PIL image, an (image, mask) pair or a `Query`. Implementations: the
in-process `KnowledgeIndex`, the HTTP client `HTTPSearch`, and adapters of other search APIs
(`CragMMSearch`). The decode loop only sees this protocol.

`search_many(api, queries, k)` answers a batch (batched where the API can).

A back-end that fails or answers something that is not hits raises `SearchError`;
`check_hits` is the one check of what a search returned (the decode loop applies it to every
back-end, `HTTPSearch` to what a server sent).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

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


class SearchError(RuntimeError):
    """A search back-end failed (unreachable, an HTTP error) or answered something that is
    not a list of hits; the message says which and what."""


def search_many(api: SearchAPI, queries: Sequence[QueryLike], k: int = 5) -> list[list[Hit]]:
    """Answers of several queries: one batched call where the API has `search_many` (the
    index embeds them together, the HTTP client sends one request), else one by one."""
    batched = getattr(api, "search_many", None)
    if batched is not None:
        return batched(queries, k)
    return [api.search(q, k) for q in queries]


def check_hits(value: Any) -> list[Hit]:
    """`value` if it is a list of `Hit`s with string ids, titles and texts and finite scores;
    else `SearchError` naming the first problem."""
    if not isinstance(value, list):
        raise SearchError(f"the search API returned {type(value).__name__}, not a list of hits")
    for i, h in enumerate(value):
        if not isinstance(h, Hit):
            raise SearchError(f"hit {i} is {type(h).__name__}, not a Hit")
        bad = [name for name in ("doc_id", "title", "text", "via")
               if not isinstance(getattr(h, name), str)]
        if h.entity is not None and not isinstance(h.entity, str):
            bad.append("entity")
        if bad:
            raise SearchError(f"hit {i}: {', '.join(bad)} must be text")
        if isinstance(h.score, bool) or not isinstance(h.score, (int, float)) or (
                not math.isfinite(h.score)):
            raise SearchError(f"hit {i}: score {h.score!r} is not a finite number")
    return value

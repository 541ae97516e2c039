"""A search API that records its answers and replays them bit for bit (`CachedSearch`).

Web search drifts and costs money, so an evaluation that searched it cannot be rerun. Wrapping
any `SearchAPI` in `CachedSearch(api, DIR, "record")` stores every answer under a key of the
query; `CachedSearch(None, DIR, "replay")` answers from those files alone — no index, no
network — with exactly the recorded hits (scores are written with full float precision), so
the evaluation's predictions come out identical. A query that was not recorded is a
`SearchError` saying so, never a silent live search.

The key of a query is the sha256 of what defines it: the text (exactly), or the image's
pixels (mode, size, bytes) and the mask's bits, and `k`. Each answer is one JSON file
(`DIR/ab/abcdef….json`, written atomically), so several server processes or evaluation
workers can record into one folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Literal

import numpy as np

from pixsearch.retrieval.api import QueryLike, SearchAPI, SearchError, check_hits
from pixsearch.types import Hit, Query

CacheMode = Literal["record", "replay"]


class NotRecordedError(SearchError):
    """A replayed search cache holds no answer for the query."""


def query_key(query: QueryLike, k: int) -> str:
    """The cache key of a query (see the module docstring)."""
    q = Query.of(query)
    h = hashlib.sha256(f"pixsearch-search-v1\0{q.modality}\0{k}\0".encode())
    if q.modality == "text":
        h.update(q.text.encode("utf-8"))
        return h.hexdigest()
    image = q.image
    h.update(f"{image.mode}\0{image.width}x{image.height}\0".encode())
    h.update(image.tobytes())
    if q.modality == "region":
        mask = np.asarray(q.mask, bool)
        h.update(f"\0mask {mask.shape[0]}x{mask.shape[1]}\0".encode())
        h.update(np.packbits(mask).tobytes())
    return h.hexdigest()


def _describe(q: Query) -> dict:
    if q.modality == "text":
        return {"modality": "text", "text": q.text}
    out = {"modality": q.modality, "size": [q.image.width, q.image.height]}
    if q.modality == "region":
        out["mask_pixels"] = int(np.asarray(q.mask, bool).sum())
    return out


class CachedSearch:
    """`SearchAPI` that records (`mode="record"`) or replays (`mode="replay"`) answers.

    Args:
        api: the live search API (None: replay only).
        directory: the cache folder.
        mode: "record": answer from the cache when the query is there, else search live and
            store the answer; "replay": answer from the cache only.
    """

    def __init__(self, api: SearchAPI | None, directory: str | Path,
                 mode: CacheMode = "record") -> None:
        if mode not in ("record", "replay"):
            raise ValueError(f"search cache mode {mode!r} is not one of record, replay")
        if mode == "record" and api is None:
            raise ValueError("recording needs a search API to record from (an index or a URL)")
        self.api, self.directory, self.mode = api, Path(directory).expanduser(), mode
        if mode == "replay" and not self.directory.is_dir():
            raise FileNotFoundError(f"no search cache at {self.directory} to replay; record "
                                    "one first (--search-mode record)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.stats = {"hits": 0, "misses": 0}
        self._lock = threading.Lock()

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def lookup(self, query: QueryLike, k: int) -> list[Hit] | None:
        """The recorded answer of a query, or None."""
        try:
            data = json.loads(self._path(query_key(query, k)).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return check_hits([Hit(**h) for h in data["hits"]])

    def store(self, query: QueryLike, k: int, hits: list[Hit]) -> None:
        """Record the answer of a query (atomically: a reader sees all of it or nothing)."""
        q = Query.of(query)
        path = self._path(query_key(q, k))
        path.parent.mkdir(exist_ok=True)
        body = json.dumps({"query": _describe(q), "k": k, "hits": [asdict(h) for h in hits]},
                          ensure_ascii=False)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)

    def search(self, query: QueryLike, k: int = 5) -> list[Hit]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[QueryLike], k: int = 5) -> list[list[Hit]]:
        """Answers of several queries; the ones not recorded go to the live API together."""
        qs = [Query.of(q) for q in queries]
        answers = [self.lookup(q, k) for q in qs]
        missing = [i for i, a in enumerate(answers) if a is None]
        with self._lock:
            self.stats["hits"] += len(qs) - len(missing)
            self.stats["misses"] += len(missing)
        if missing and self.mode == "replay":
            q = qs[missing[0]]
            raise NotRecordedError(f"the search cache {self.directory} holds no answer for "
                              f"{_describe(q)} (k={k}); it was not recorded — record it with "
                              "--search-mode record against a live index")
        if missing:
            from pixsearch.retrieval.api import search_many

            live = search_many(self.api, [qs[i] for i in missing], k)
            for i, hits in zip(missing, live):
                self.store(qs[i], k, check_hits(hits))
                answers[i] = self.lookup(qs[i], k)  # what replay will return, exactly
        return answers

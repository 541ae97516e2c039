"""The search API over HTTP: a FastAPI app around any `SearchAPI`, and its `HTTPSearch` client.

    POST /search  {"text": "...", "k": 5}
    POST /search  {"image": "<base64 PNG/JPEG>", "mask": "<base64 PNG, nonzero = region>", "k": 5}
    -> {"hits": [{"doc_id", "title", "score", "text", "entity", "via"}, ...]}

Serve an index with `uvicorn` (e.g. `uvicorn.run(make_app(KnowledgeIndex.open(d)))`); point
`HTTPSearch(url)` at it and it behaves like the in-process index. The client bounds every
request (`timeout`) and checks what comes back: an unreachable server, an HTTP error, a body
that is not JSON or not `{"hits": [hit, ...]}` with well-typed hits each raise a `SearchError`
that says which (`parse_hits`). Images sent to the server are read by the one image loader
(`pixsearch.images.load_image`: size limits, EXIF, modes).
"""

# No `from __future__ import annotations` here: FastAPI must see the request model defined
# inside `make_app` as a real class, not as an unresolvable string annotation.
import base64
import io
from dataclasses import asdict

import numpy as np
from PIL import Image

from pixsearch.images import load_image
from pixsearch.retrieval.api import QueryLike, SearchAPI, SearchError, check_hits
from pixsearch.types import Hit, Query

_HINT = "pip install 'pixsearch[serve]'"


def encode_image(image: Image.Image) -> str:
    """PIL image → base64 PNG (lossless, so a served search sees the same pixels)."""
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def encode_mask(mask: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(mask, bool).astype(np.uint8) * 255).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image(data: str) -> Image.Image:
    return load_image(base64.b64decode(data, validate=True))


def decode_mask(data: str) -> np.ndarray:
    return np.asarray(load_image(base64.b64decode(data, validate=True)).convert("L")) > 0


def query_payload(query: QueryLike, k: int) -> dict:
    """The JSON body of `POST /search` for a query."""
    q = Query.of(query)
    body: dict = {"k": k}
    if q.modality == "text":
        body["text"] = q.text
    else:
        body["image"] = encode_image(q.image)
        if q.modality == "region":
            body["mask"] = encode_mask(q.mask)
    return body


def make_app(api: SearchAPI):
    """A FastAPI app exposing `api` as `POST /search` (and `GET /health`)."""
    try:
        from fastapi import FastAPI, HTTPException
        from pydantic import BaseModel, Field
    except ImportError as e:
        raise ImportError(f"the search server needs fastapi: {_HINT}") from e

    class SearchRequest(BaseModel):
        text: str | None = None
        image: str | None = Field(None, description="base64 PNG or JPEG")
        mask: str | None = Field(None, description="base64 PNG; nonzero pixels are the region")
        k: int = Field(5, ge=1, le=100)

    app = FastAPI(title="PixSearch search API")

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    # plain `def`: FastAPI runs it in a worker thread, so slow encoders don't block the loop
    @app.post("/search")
    def search(req: SearchRequest) -> dict:
        try:
            query = _request_query(req.text, req.image, req.mask)
        except (ValueError, TypeError, OSError) as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        hits = api.search(query, req.k)
        return {"hits": [asdict(h) for h in hits]}

    return app


def _request_query(text: str | None, image: str | None, mask: str | None) -> Query:
    if (text is None) == (image is None):
        raise ValueError("send exactly one of `text` or `image`")
    if text is not None:
        if mask is not None:
            raise ValueError("`mask` needs `image`")
        return Query("text", text=text)
    img = decode_image(image)
    if mask is None:
        return Query("image", image=img)
    return Query("region", image=img, mask=decode_mask(mask))


_HIT_FIELDS = {"doc_id", "title", "score", "text"}  # required; `entity` and `via` optional


def parse_hits(data: object, source: str = "the search server") -> list[Hit]:
    """The hits of a `POST /search` response body; `SearchError` saying what is wrong with a
    body of another shape (fields outside `Hit` are ignored)."""
    if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
        raise SearchError(f"{source} answered {_shape(data)}, not {{\"hits\": [...]}}")
    hits = []
    for i, h in enumerate(data["hits"]):
        if not isinstance(h, dict):
            raise SearchError(f"{source}: hit {i} is {_shape(h)}, not an object")
        missing = _HIT_FIELDS - set(h)
        if missing:
            raise SearchError(f"{source}: hit {i} lacks {sorted(missing)}")
        hits.append(Hit(doc_id=h["doc_id"], title=h["title"], score=h["score"], text=h["text"],
                        entity=h.get("entity"), via=h.get("via", "text")))
    try:
        return check_hits(hits)
    except SearchError as e:
        raise SearchError(f"{source}: {e}") from None


def _shape(value: object) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:80]}{'…' if len(text) > 80 else ''}"


class HTTPSearch:
    """`SearchAPI` client of a PixSearch search server.

    `timeout` bounds each request in seconds (connecting: at most 5 s of it); a request that
    fails or answers something other than hits raises `SearchError`."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        try:
            import httpx
        except ImportError as e:
            raise ImportError(f"the HTTP search client needs httpx: {_HINT}") from e
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
        self.url, self.timeout = url.rstrip("/"), timeout
        self._httpx = httpx
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))

    def search(self, query: QueryLike, k: int = 5) -> list[Hit]:
        httpx = self._httpx
        try:
            resp = self._client.post(f"{self.url}/search", json=query_payload(query, k))
        except httpx.TimeoutException as e:
            raise SearchError(f"search server {self.url} gave no answer within "
                              f"{self.timeout:g} s") from e
        except httpx.HTTPError as e:
            raise SearchError(f"search server {self.url} is unreachable "
                              f"({type(e).__name__}: {e})") from e
        if resp.status_code != 200:
            raise SearchError(f"search server {self.url} answered HTTP {resp.status_code}: "
                              f"{resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError as e:
            raise SearchError(f"search server {self.url} answered something that is not JSON: "
                              f"{resp.text[:80]!r}") from e
        return parse_hits(data, f"search server {self.url}")

    def close(self) -> None:
        self._client.close()

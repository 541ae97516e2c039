"""The search API over HTTP: a FastAPI app around any `SearchAPI`, and its `HTTPSearch` client.

    POST /search  {"text": "...", "k": 5}
    POST /search  {"image": "<base64 PNG/JPEG>", "mask": "<base64 PNG, nonzero = region>", "k": 5}
    -> {"hits": [{"doc_id", "title", "score", "text", "entity", "via"}, ...]}

Serve an index with `uvicorn` (e.g. `uvicorn.run(make_app(KnowledgeIndex.open(d)))`); point
`HTTPSearch(url)` at it and it behaves like the in-process index.
"""

# No `from __future__ import annotations` here: FastAPI must see the request model defined
# inside `make_app` as a real class, not as an unresolvable string annotation.
import base64
import io
from dataclasses import asdict

import numpy as np
from PIL import Image

from pixsearch.retrieval.api import QueryLike, SearchAPI
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
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
        return im.convert("RGB")


def decode_mask(data: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as im:
        return np.asarray(im.convert("L")) > 0


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


class HTTPSearch:
    """`SearchAPI` client of a PixSearch search server."""

    def __init__(self, url: str, timeout: float = 60.0) -> None:
        try:
            import httpx
        except ImportError as e:
            raise ImportError(f"the HTTP search client needs httpx: {_HINT}") from e
        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout)

    def search(self, query: QueryLike, k: int = 5) -> list[Hit]:
        resp = self._client.post(f"{self.url}/search", json=query_payload(query, k))
        if resp.status_code != 200:
            raise RuntimeError(f"search server {self.url} answered {resp.status_code}: "
                               f"{resp.text[:300]}")
        return [Hit(**h) for h in resp.json()["hits"]]

    def close(self) -> None:
        self._client.close()

"""The search API over HTTP: a FastAPI app around any `SearchAPI`, and its `HTTPSearch` client.

    POST /search  {"text": "...", "k": 5}
    POST /search  {"image": "<base64 PNG/JPEG>", "mask": "<base64 PNG, nonzero = region>", "k": 5}
    -> {"hits": [{"doc_id", "title", "score", "text", "entity", "via"}, ...]}
    POST /search/batch  {"queries": [<one /search body>, ...]}  -> {"results": [{"hits"}, ...]}

A body over `SearchServerLimits.max_body_bytes` is refused with 413 before it is read whole,
a batch over `max_batch` queries with 400; each image is checked by the image loader's limits.
A query the API cannot answer is 404 when a replayed search cache never recorded it
(`search_cache.NotRecordedError`), 502 for another failing back-end.

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
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from pixsearch.images import ImageLimits, load_image
from pixsearch.retrieval.api import QueryLike, SearchAPI, SearchError, check_hits, search_many
from pixsearch.retrieval.search_cache import NotRecordedError
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


def decode_image(data: str, limits: ImageLimits | None = None) -> Image.Image:
    return load_image(base64.b64decode(data, validate=True), limits)


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


@dataclass
class SearchServerLimits:
    """What a search server accepts.

    Attributes:
        max_body_bytes: largest request body (JSON with base64 images); 413 above it,
            refused before it is read whole.
        max_batch: most queries in one `POST /search/batch`.
        image: the limits of each decoded image (`pixsearch.images.ImageLimits`).
    """

    max_body_bytes: int = 32 * 2**20
    max_batch: int = 64
    image: ImageLimits = field(default_factory=ImageLimits)


def make_app(api: SearchAPI, limits: SearchServerLimits | None = None,
             stats: Callable[[], dict] | None = None):
    """A FastAPI app exposing `api` as `POST /search` and `POST /search/batch` (and
    `GET /health`; `GET /stats` reports `stats()`, e.g. a search cache's hits and misses)."""
    try:
        from fastapi import FastAPI, HTTPException, Request
        from pydantic import BaseModel, Field, ValidationError
        from starlette.concurrency import run_in_threadpool
    except ImportError as e:
        raise ImportError(f"the search server needs fastapi: {_HINT}") from e
    limits = limits or SearchServerLimits()

    class SearchRequest(BaseModel):
        text: str | None = None
        image: str | None = Field(None, description="base64 PNG or JPEG")
        mask: str | None = Field(None, description="base64 PNG; nonzero pixels are the region")
        k: int = Field(5, ge=1, le=100)

    class BatchRequest(BaseModel):
        queries: list[SearchRequest] = Field(..., max_length=limits.max_batch)

    app = FastAPI(title="PixSearch search API")

    async def body(request: Request, model: type[BaseModel]) -> BaseModel:
        """The request body as `model`, read up to `max_body_bytes` (413 past it)."""
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > limits.max_body_bytes:
            raise HTTPException(413, f"the request is {int(size)} bytes; this server takes "
                                     f"at most {limits.max_body_bytes}")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limits.max_body_bytes:
                raise HTTPException(413, f"the request is over {limits.max_body_bytes} bytes")
        try:
            return model.model_validate_json(bytes(data))
        except ValidationError as e:
            raise HTTPException(400, f"bad request: {e.errors()[0]['msg']} at "
                                     f"{'.'.join(map(str, e.errors()[0]['loc']))}") from e

    def answer(queries: list[Query], k: int) -> list[list[Hit]]:
        try:
            return search_many(api, queries, k)
        except NotRecordedError as e:
            raise HTTPException(404, str(e)) from e
        except SearchError as e:
            raise HTTPException(502, str(e)) from e

    def schema(model: type[BaseModel]) -> dict:
        return {"requestBody": {"required": True, "content": {"application/json": {
            "schema": model.model_json_schema()}}}}

    @app.get("/health")
    def health() -> dict:
        return {"ok": True}

    @app.get("/stats")
    def get_stats() -> dict:
        return stats() if stats is not None else {}

    @app.post("/search", openapi_extra=schema(SearchRequest))
    async def search(request: Request) -> dict:
        """Top-k hits of one query: {"text"} or {"image", "mask"?}, with "k"."""
        req = await body(request, SearchRequest)
        try:
            query = _request_query(req.text, req.image, req.mask, limits.image)
        except (ValueError, TypeError, OSError) as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        # the encoders run in a worker thread: the event loop keeps serving
        hits = (await run_in_threadpool(answer, [query], req.k))[0]
        return {"hits": [asdict(h) for h in hits]}

    @app.post("/search/batch", openapi_extra=schema(BatchRequest))
    async def search_batch(request: Request) -> dict:
        """Several queries in one request ({"queries": [...]}), answered in order as
        {"results": [{"hits": [...]}, ...]}; the index embeds them together."""
        req = await body(request, BatchRequest)
        queries = []
        for i, q in enumerate(req.queries):
            try:
                queries.append(_request_query(q.text, q.image, q.mask, limits.image))
            except (ValueError, TypeError, OSError) as e:
                raise HTTPException(status_code=400, detail=f"query {i}: {e}") from e
        results: list[list[Hit]] = [[] for _ in queries]
        for k in sorted({q.k for q in req.queries}):
            idx = [i for i, q in enumerate(req.queries) if q.k == k]
            for i, hits in zip(idx, await run_in_threadpool(answer, [queries[i] for i in idx],
                                                            k)):
                results[i] = hits
        return {"results": [{"hits": [asdict(h) for h in hits]} for hits in results]}

    return app


def _request_query(text: str | None, image: str | None, mask: str | None,
                   limits: ImageLimits | None = None) -> Query:
    if (text is None) == (image is None):
        raise ValueError("send exactly one of `text` or `image`")
    if text is not None:
        if mask is not None:
            raise ValueError("`mask` needs `image`")
        return Query("text", text=text)
    img = decode_image(image, limits)
    if mask is None:
        return Query("image", image=img)
    m = decode_mask(mask)
    if m.shape != (img.height, img.width):
        raise ValueError(f"the mask is {m.shape[1]}x{m.shape[0]}, the image "
                         f"{img.width}x{img.height}")
    return Query("region", image=img, mask=m)


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
        return parse_hits(self._post("/search", query_payload(query, k)),
                          f"search server {self.url}")

    def _post(self, path: str, body: dict) -> object:
        httpx = self._httpx
        try:
            resp = self._client.post(f"{self.url}{path}", json=body)
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
            return resp.json()
        except ValueError as e:
            raise SearchError(f"search server {self.url} answered something that is not JSON: "
                              f"{resp.text[:80]!r}") from e

    def search_many(self, queries: Sequence[QueryLike], k: int = 5) -> list[list[Hit]]:
        """Several queries in one `POST /search/batch` request."""
        body = {"queries": [query_payload(q, k) for q in queries]}
        data = self._post("/search/batch", body)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list) or len(results) != len(queries):
            raise SearchError(f"search server {self.url} answered {_shape(data)}, not "
                              f"{{\"results\": [...]}} with {len(queries)} entries")
        return [parse_hits(r, f"search server {self.url}") for r in results]

    def close(self) -> None:
        self._client.close()

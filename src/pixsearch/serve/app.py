"""The PixSearch HTTP API and its web page, over one `Predictor`.

    GET  /                  the page: upload or pick a sample, ask, watch searches and masks
    GET  /docs              the API described from /openapi.json with local assets only
    GET  /api/health        answered at once, never waiting on the model: model loaded, index,
                            queue depth, whether an API key is required
    GET  /api/samples       sample scenes and questions; GET /api/samples/{i} is the picture
    POST /api/ask           {"question", "image": base64?, "max_searches"?, "modalities"?,
                            "top_k"?, "max_new_tokens"?} -> Answer JSON (trace included)
    POST /api/ask/stream    same body -> Server-Sent Events, one JSON event per message
                            (TokenEvent, SearchStarted, MaskEvent, HitsEvent, EvidenceEvent,
                            SearchSkipped, SearchFailed, DoneEvent); a failure ends the stream with an
                            `event: error` message whose data is {"type": "ErrorEvent",
                            "error", "detail"}

Every error is JSON `{"error", "detail"}` (`serve/errors.py`): 400 bad input, 401 missing API
key, 413 too large, 429 queue full (with Retry-After), 503 model unavailable, 5xx failures.
Requests are checked before any work (`serve/limits.py`), then queued for the one decode
worker that owns the model (`serve/queue.py`), which decodes up to `batch` of them together
(continuous batching, `pixsearch.decode.batched`); a request whose client disconnects is
cancelled wherever it is, and frees its place in the batch at once. /api/health's `stats`
count the batch's decode steps and the sequences they carried.
"""

# no `from __future__ import annotations`: FastAPI inspects the endpoint signatures

import asyncio
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from pixsearch.serve.errors import ApiError, error_response, install_error_handlers
from pixsearch.serve.limits import ServeLimits, ask_request_model, parse_ask, read_body
from pixsearch.serve.queue import DecodeWorker, Job
from pixsearch.serve.samples import Sample

_HINT = "pip install 'pixsearch[serve]'"
_POLL_S = 0.25  # how often a waiting request checks that its client is still there
_PING_S = 10.0  # an SSE comment after this long without events (finds dead connections)


def _static(name: str) -> str:
    return resources.files("pixsearch.serve").joinpath("static", name).read_text()


async def _next(job: Job, request: Any, ping_s: float | None = None) -> tuple[str, Any]:
    """The job's next item; ("gone", None) once the client disconnected; ("ping", None)
    after `ping_s` without one."""
    getter = asyncio.ensure_future(job.channel.get())
    waited = 0.0
    try:
        while True:
            done, _ = await asyncio.wait({getter}, timeout=_POLL_S)
            if done:
                return getter.result()
            if await request.is_disconnected():
                return "gone", None
            waited += _POLL_S
            if ping_s is not None and waited >= ping_s:
                return "ping", None
    finally:
        if not getter.done():
            getter.cancel()


def _sse(data: dict, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def create_app(predictor: Any, name: str = "pixsearch", limits: ServeLimits | None = None,
               api_key: str | None = None, samples: list[Sample] | None = None,
               batch: int = 16):
    """A FastAPI app answering with `predictor` (a `Predictor`, or a callable loading one in
    the background while health already answers). `api_key`: required in the X-API-Key
    header of /api/ask*; `samples`: the pictures the page offers; `batch`: requests decoded
    together (1: one at a time; models without a batched KV cache always are)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
        from fastapi.staticfiles import StaticFiles
    except ImportError as e:
        raise ImportError(f"the server needs fastapi: {_HINT}") from e

    limits = limits or ServeLimits()
    worker = DecodeWorker(predictor, limits, batch)
    samples = list(samples or [])
    key = api_key.encode() if api_key else None

    @asynccontextmanager
    async def lifespan(_app):
        yield
        worker.cancel_all()  # shutdown: nothing keeps decoding for connections being closed

    # Swagger UI and ReDoc load their scripts from a CDN (blank offline): /docs is our own
    app = FastAPI(title="PixSearch", description="pixel-grounded retrieval for LMMs",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.worker = worker
    install_error_handlers(app)
    app.mount("/static", StaticFiles(packages=[("pixsearch.serve", "static")]), name="static")
    body_schema = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": ask_request_model().model_json_schema()}}}}

    def check_key(request: Request) -> None:
        if key is None:
            return
        sent = request.headers.get("x-api-key", "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(sent, key):
            raise ApiError(401, "unauthorized", "this server needs its API key in the "
                                                "X-API-Key header")

    async def admit(request: Request) -> Job:
        """Auth, queue room, body size, options — in order of cost — then queue the job and
        wait until it starts (so a bad image is still a 4xx)."""
        check_key(request)
        worker.check_admission()
        params = parse_ask(await read_body(request, limits.max_body_bytes), limits)
        job = worker.submit(params, stream=request.url.path.endswith("/stream"))
        try:
            while True:
                kind, payload = await _next(job, request)
                if kind == "started":
                    return job
                if kind == "rejected":
                    raise payload
                if kind in ("gone", "end"):
                    raise ApiError(499, "client_closed", "the client closed the request")
        except BaseException:
            worker.cancel(job)
            raise

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return _static("index.html")

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> str:
        return _static("docs.html")

    @app.get("/api/health")
    async def health() -> dict:
        """Model, index and queue state; never waits on the model."""
        p = worker.predictor
        return {"ok": worker.loaded and worker.load_error is None, "model": name,
                "model_loaded": worker.loaded, "model_error": worker.load_error,
                "index": (p.search_api is not None) if p is not None else None,
                "queue": worker.depth(), "auth": key is not None, "stats": worker.counters(),
                "limits": {"max_image_bytes": limits.image.max_bytes,
                           "max_question_chars": limits.max_question_chars}}

    @app.get("/api/samples")
    async def sample_list() -> list[dict]:
        """Sample pictures and questions ("image" is the URL of the picture)."""
        return [{"id": i, "question": s.question, "label": s.label,
                 "image": f"/api/samples/{i}"} for i, s in enumerate(samples)]

    @app.get("/api/samples/{i}")
    async def sample_image(i: int) -> Response:
        """The picture of sample `i`."""
        if not 0 <= i < len(samples):
            raise ApiError(404, "not_found", f"there are {len(samples)} samples (0 to "
                                             f"{len(samples) - 1})")
        return Response(samples[i].data, media_type=samples[i].media_type)

    @app.post("/api/ask", openapi_extra=body_schema)
    async def ask(request: Request) -> Response:
        """The whole answer as JSON: {"text", "trace"} (the trace has every search step with
        its query, mask, hits and evidence, timings, and the confidence / abstention fields).
        Errors: 400 bad input, 401 API key, 413 too large, 429 queue full (Retry-After), 503
        model unavailable or shutting down, 500/504 the answer failed or ran out of time."""
        job = await admit(request)
        try:
            while True:
                kind, payload = await _next(job, request)
                if kind == "done":
                    return JSONResponse(payload["answer"])
                if kind == "error":
                    return error_response(payload)
                if kind == "gone":
                    return error_response(ApiError(499, "client_closed", "client closed"))
                if kind == "end":
                    return error_response(ApiError(500, "internal", "the answer ended early"))
        finally:
            worker.cancel(job)  # no-op once done; stops the work if this task is cancelled

    @app.post("/api/ask/stream", openapi_extra=body_schema)
    async def ask_stream(request: Request) -> StreamingResponse:
        """Server-Sent Events while the answer is decoded: one JSON object per `data:` line,
        typed by "type" — TokenEvent, SearchStarted, MaskEvent (COCO RLE mask and crop box),
        HitsEvent, EvidenceEvent, SearchSkipped, SearchFailed — then a DoneEvent with the whole
        answer. A failure mid-answer ends the stream with `event: error` and data {"type":
        "ErrorEvent", "error", "detail"}. Errors before the stream starts are JSON, as for
        /api/ask."""
        job = await admit(request)

        async def events() -> AsyncIterator[str]:
            try:
                while True:
                    kind, payload = await _next(job, request, _PING_S)
                    if kind in ("event", "done"):
                        yield _sse(payload)
                    elif kind == "error":
                        yield _sse({"type": "ErrorEvent", **payload.body()}, "error")
                        return
                    elif kind == "ping":
                        yield ": ping\n\n"
                    elif kind in ("gone", "end"):
                        return
            finally:
                worker.cancel(job)  # the client went, or the stream is over

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache",
                                          "X-Accel-Buffering": "no"})

    return app

"""The PixSearch HTTP API and its web page, over one `Predictor`.

    GET  /                 a page to upload an image, ask, and watch searches and masks arrive
    GET  /api/health       {"ok": true, "model": ..., "index": ...}
    POST /api/ask          {"question", "image": base64?, "max_searches"?, "modalities"?,
                            "top_k"?, "max_new_tokens"?} -> Answer JSON (trace included)
    POST /api/ask/stream   same body -> Server-Sent Events, one JSON event per message
                           (TokenEvent, SearchStarted, MaskEvent, HitsEvent, EvidenceEvent,
                           SearchSkipped, DoneEvent)

Decoding is CPU/GPU-bound, so requests run in a worker thread, one at a time per predictor.
"""

# no `from __future__ import annotations`: FastAPI must resolve the local request models

import json
import threading
from collections.abc import Iterator
from importlib import resources
from typing import Any

from pixsearch.decode.events import event_to_dict
from pixsearch.predictor import Predictor
from pixsearch.retrieval.server import decode_image

_HINT = "pip install 'pixsearch[serve]'"


def _overrides(req: Any) -> dict[str, Any]:
    out = {k: getattr(req, k) for k in ("max_searches", "top_k", "max_new_tokens")
           if getattr(req, k) is not None}
    if req.modalities is not None:
        out["modalities"] = tuple(m for m in req.modalities.split(",") if m)
    return out


def create_app(predictor: Predictor, name: str = "pixsearch"):
    """A FastAPI app answering questions with `predictor`."""
    try:
        from fastapi import FastAPI, HTTPException
        from fastapi.responses import HTMLResponse, StreamingResponse
        from pydantic import BaseModel, Field
    except ImportError as e:
        raise ImportError(f"the server needs fastapi: {_HINT}") from e

    class AskRequest(BaseModel):
        question: str = Field(..., min_length=1, max_length=2000)
        image: str | None = Field(None, description="base64 PNG or JPEG")
        max_searches: int | None = Field(None, ge=0, le=16)
        modalities: str | None = Field(None, description="e.g. region,text")
        top_k: int | None = Field(None, ge=1, le=50)
        max_new_tokens: int | None = Field(None, ge=1, le=1024)

    app = FastAPI(title="PixSearch", description="pixel-grounded retrieval for LMMs")
    lock = threading.Lock()  # one decode at a time: the model and its caches are not shared

    def parse(req: AskRequest):
        try:
            image = decode_image(req.image) if req.image else None
            overrides = _overrides(req)
            predictor.validate_overrides(**overrides)
        except (ValueError, OSError) as e:
            raise HTTPException(status_code=422, detail=str(e)) from e
        return image, overrides

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("pixsearch.serve").joinpath("static/index.html").read_text()

    @app.get("/api/health")
    def health() -> dict:
        return {"ok": True, "model": name, "index": predictor.search_api is not None}

    @app.post("/api/ask")
    def ask(req: AskRequest) -> dict:
        image, overrides = parse(req)
        with lock:
            return predictor.ask(req.question, image, **overrides).to_dict()

    @app.post("/api/ask/stream")
    def ask_stream(req: AskRequest) -> StreamingResponse:
        image, overrides = parse(req)

        def events() -> Iterator[str]:
            with lock:
                for event in predictor.stream(req.question, image, **overrides):
                    yield f"data: {json.dumps(event_to_dict(event))}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app

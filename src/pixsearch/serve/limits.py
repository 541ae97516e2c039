"""What one request may ask of the server, and the checks that enforce it before any work.

`ServeLimits` holds every bound (body and image size, question length, option ranges, queue
length, per-request wall clock). `read_body` refuses an oversized body from its
`Content-Length` before reading a byte, and counts while reading a body sent without one, so a
200 MB upload costs the server nothing. `parse_ask` turns the JSON body into an `AskParams`
with every option checked — unknown fields, wrong types ("two" searches), out-of-range values,
a lone surrogate in the question — each as an `ApiError` (400) that names the field and never
quotes the input. Image pixels are not decoded here: that happens in the decode worker, one
image at a time (`serve/queue.py`), with `pixsearch.images.load_image`.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from typing import Any

from pixsearch.images import ImageLimits
from pixsearch.serve.errors import ApiError, validation_detail
from pixsearch.types import MODALITIES

# JSON fields besides the image: a question of `max_question_chars` plus the options
_BODY_SLACK = 64 * 1024


@dataclass
class ServeLimits:
    """Bounds on what one request may ask.

    Attributes:
        image: limits of the uploaded image (`pixsearch.images.ImageLimits`: encoded bytes,
            pixels, longest side); the body limit follows from its byte limit.
        max_question_chars: longest question.
        max_searches: largest search budget a request may set (null is unbounded, capped by
            the tokens an answer may generate).
        max_top_k: most hits per search a request may ask for.
        max_new_tokens: most generated tokens a request may ask for.
        max_queue: requests waiting for the model beyond those being decoded (one, or up to
            `--batch N` with continuous batching); more are answered 429 with a Retry-After
            header.
        request_timeout_s: wall clock of one answer once decoding started, a backstop behind
            the engine's own deadline: past it the answer is cancelled with an error event.
    """

    image: ImageLimits = field(default_factory=ImageLimits)
    max_question_chars: int = 2000
    max_searches: int = 16
    max_top_k: int = 50
    max_new_tokens: int = 1024
    max_queue: int = 16
    request_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if self.max_queue < 0:
            raise ValueError("max_queue must be >= 0")
        if min(self.max_question_chars, self.max_top_k, self.max_new_tokens) < 1:
            raise ValueError("question, top_k and max_new_tokens limits must be >= 1")
        if self.request_timeout_s <= 0:
            raise ValueError("request_timeout_s must be > 0")

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: the image in base64 (4/3 of its bytes) plus the rest."""
        return self.image.max_bytes * 4 // 3 + 4 + _BODY_SLACK


@dataclass
class AskParams:
    """A checked /api/ask request: the question, the image still encoded, decode overrides."""

    question: str
    image_b64: str | None
    overrides: dict[str, Any]


def _too_large(n: int | None, limit: int) -> ApiError:
    size = f"is {n / 2**20:.1f} MiB" if n is not None else "is larger than that"
    return ApiError(413, "payload_too_large",
                    f"the limit of a request body is {limit / 2**20:.1f} MiB (an image of at "
                    f"most {(limit - _BODY_SLACK) * 3 // 4 / 2**20:.1f} MiB, base64-encoded); "
                    f"this one {size}")


async def read_body(request: Any, limit: int) -> bytes:
    """The body of `request` (a Starlette Request), refused with 413 from `Content-Length`
    before reading, or as soon as more than `limit` bytes arrived."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            n = int(declared)
        except ValueError:
            raise ApiError(400, "bad_request", "Content-Length is not a number") from None
        if n > limit:
            raise _too_large(n, limit)
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(None, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _request_model():
    """The pydantic model of the body (built once; pydantic is imported with the server)."""
    from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

    class AskRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")

        question: StrictStr = Field(..., description="the question (plain text)")
        image: StrictStr | None = Field(None, description="base64 PNG/JPEG/…; omit for none")
        max_searches: StrictInt | None = Field(None, description="search budget; null: "
                                                                 "unbounded")
        modalities: StrictStr | list[StrictStr] | None = Field(
            None, description="allowed query types: 'region,text' or a list")
        top_k: StrictInt | None = Field(None, description="hits per search")
        max_new_tokens: StrictInt | None = Field(None, description="generated tokens")

    return AskRequest


_MODEL: Any = None


def ask_request_model():
    """The request model, for the OpenAPI schema and for parsing."""
    global _MODEL
    if _MODEL is None:
        _MODEL = _request_model()
    return _MODEL


def parse_ask(body: bytes, limits: ServeLimits) -> AskParams:
    """Check a JSON body (see the module docstring); raise `ApiError` 400 naming the field."""
    from pydantic import ValidationError

    try:
        data = json.loads(body)
    except UnicodeDecodeError:
        raise ApiError(400, "bad_request", "the body is not valid UTF-8") from None
    except (json.JSONDecodeError, RecursionError) as e:
        raise ApiError(400, "bad_request", f"the body is not valid JSON "
                                           f"(line {getattr(e, 'lineno', '?')}, column "
                                           f"{getattr(e, 'colno', '?')})") from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object with a 'question'")
    try:
        req = ask_request_model().model_validate(data)
    except ValidationError as e:
        raise ApiError(400, "bad_request", validation_detail(e.errors())) from None
    return AskParams(_question(req.question, limits), _image(req.image, limits),
                     _overrides(req, limits))


def _question(q: str, limits: ServeLimits) -> str:
    try:
        q.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "bad_request", "question: contains a lone surrogate (invalid "
                                           "UTF-16 escape); send valid Unicode text") from None
    if not q.strip():
        raise ApiError(400, "bad_request", "question: is empty")
    if len(q) > limits.max_question_chars:
        raise ApiError(400, "bad_request", f"question: is {len(q)} characters; the limit is "
                                           f"{limits.max_question_chars}")
    return q


def _image(b64: str | None, limits: ServeLimits) -> str | None:
    """The base64 text, checked for emptiness and size (decoded later, in the worker)."""
    if b64 is None:
        return None
    b64 = b64.strip()
    if b64.startswith("data:") and "," in b64[:200]:  # a data URL as a browser makes it
        b64 = b64.split(",", 1)[1]
    if not b64:
        raise ApiError(400, "bad_request", "image: is empty; send base64 image bytes, or omit "
                                           "the field to ask about no image")
    n = len(b64) * 3 // 4
    if n > limits.image.max_bytes:
        raise ApiError(413, "payload_too_large",
                       f"image: is about {n / 2**20:.1f} MiB; the limit is "
                       f"{limits.image.max_bytes / 2**20:.1f} MiB")
    return b64


def decode_b64(b64: str) -> bytes:
    """The image bytes of checked base64 text (`ApiError` 400 when it is not base64)."""
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "image: is not valid base64") from None
    if not data:
        raise ApiError(400, "bad_request", "image: decodes to no bytes")
    return data


def _bounded(name: str, v: int | None, lo: int, hi: int, none_means: str) -> int | None:
    if v is not None and not lo <= v <= hi:
        raise ApiError(400, "bad_request", f"{name}: must be an integer from {lo} to {hi}, or "
                                           f"null ({none_means})")
    return v


def _overrides(req: Any, limits: ServeLimits) -> dict[str, Any]:
    out: dict[str, Any] = {}
    # "max_searches": null means unbounded, so it is passed through when it is given
    if "max_searches" in req.model_fields_set:
        out["max_searches"] = _bounded("max_searches", req.max_searches, 0,
                                       limits.max_searches, "unbounded")
    top_k = _bounded("top_k", req.top_k, 1, limits.max_top_k, "the model's own")
    tokens = _bounded("max_new_tokens", req.max_new_tokens, 1, limits.max_new_tokens,
                      "the server's default")
    out.update({k: v for k, v in (("top_k", top_k), ("max_new_tokens", tokens))
                if v is not None})
    if req.modalities is not None:
        items = (req.modalities.split(",") if isinstance(req.modalities, str)
                 else req.modalities)
        mods = [m.strip() for m in items if m.strip()]
        bad = [m for m in mods if m not in MODALITIES]
        if bad:
            shown = ", ".join(repr(m[:20]) for m in bad[:3])
            raise ApiError(400, "bad_request", f"modalities: unknown modalities {shown}; "
                                               f"choose from {', '.join(MODALITIES)}")
        if not mods:
            raise ApiError(400, "bad_request", "modalities: name at least one of "
                                               f"{', '.join(MODALITIES)} (or set max_searches "
                                               "to 0 to forbid searching)")
        out["modalities"] = tuple(dict.fromkeys(mods))
    return out

"""The server's one error shape: every failure is JSON `{"error": code, "detail": message}`.

`ApiError` is raised by the request handling (validation, limits, queue, auth) and turned into
a response by the handler `install_error_handlers` registers; that function also replaces
FastAPI's defaults, which echo the whole request body back in a 422 (a 50 MB image became a
70 MB error) and answer an unexpected exception with a bare text 500. Details never quote the
client's input: they say what was wrong and how to fix it.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("pixsearch.serve")

# the longest detail a response carries (pydantic can list many errors)
MAX_DETAIL = 600


class ApiError(Exception):
    """An HTTP error answer: status, a short machine-readable code, a human message."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, printable(detail, MAX_DETAIL)
        self.headers = headers or {}

    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": self.detail}


def printable(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, lone surrogates escaped (they cannot be UTF-8)."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(err: ApiError):
    from fastapi.responses import JSONResponse

    return JSONResponse(err.body(), status_code=err.status, headers=err.headers)


def validation_detail(errors: list[dict[str, Any]]) -> str:
    """'field: message; …' from pydantic errors, without the `input` pydantic attaches (the
    client's own, possibly huge, value)."""
    parts = []
    for e in errors:
        # a field name is the client's too (an unknown key may be long): keep it short
        loc = ".".join(printable(str(p), 40) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc or 'body'}: {e.get('msg', 'invalid')}")
    return "; ".join(parts)


def install_error_handlers(app: Any) -> None:
    """`ApiError`, FastAPI's validation errors, HTTP errors (404, 405) and any other exception
    all answer `{error, detail}`."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(ApiError)
    async def _api(_request, exc: ApiError):
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request, exc: RequestValidationError):
        return error_response(ApiError(400, "bad_request", validation_detail(exc.errors())))

    @app.exception_handler(HTTPException)
    async def _http(_request, exc: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail),
                                       dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _internal(_request, exc: Exception):
        log.exception("unhandled error")
        return error_response(ApiError(500, "internal", f"{type(exc).__name__}: {exc}"))

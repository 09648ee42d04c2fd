"""The conventions of every voicemarket HTTP service, in one place.

- **Framework**: FastAPI (ASGI, on Starlette) served by uvicorn; the OpenAPI description is
  generated from the typed routes and served at ``/openapi.json`` (``/docs`` renders it).
  :func:`create_app` makes an app with the error handlers below; :func:`serve` runs it.
- **Errors** are JSON, always of one shape, with a 4xx status for what the client can fix::

      {"error": {"code": "bad_parameter", "message": "max_price: ...", "field": "max_price"}}

  ``code`` is stable and machine-readable (:class:`ApiError` codes: ``bad_parameter``,
  ``bad_cursor``, ``not_found``, ...); ``message`` says what to do. Malformed parameters are
  400 (not FastAPI's default 422), unknown things 404, anything unexpected 500 ``internal``
  (logged, never a traceback to the client).
- **Pagination** by opaque cursors (keyset, never offsets): a list answers
  ``{"items": [...], "next_cursor": "..."}`` (:class:`Page`); pass ``cursor=<next_cursor>``
  for the next page; ``next_cursor`` is null on the last one. :func:`encode_cursor` and
  :func:`decode_cursor` bind a cursor to the ordering it was made for.
- **Live updates** are server-sent events (:func:`sse_response`): ``id:`` is the position to
  resume from (browsers send it back as ``Last-Event-ID``), ``event:`` the kind, ``data:``
  one JSON object; a comment line every few seconds keeps proxies from closing the stream.
- **Configuration** is one typed settings object per service (subclasses of
  :class:`voicemarket.web.settings.WebSettings`), read from options, the environment
  (``<PREFIX><FIELD>``) and a TOML file.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicemarket.web.settings import WebSettings

log = logging.getLogger("voicemarket.web")

T = TypeVar("T")


# ---------------------------------------------------------------- errors


class ApiError(Exception):
    """An answer of the error shape: ``raise ApiError(404, "not_found", "no model 0x12..")``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The shape of every error answer."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a parameter is malformed or out of range"},
    404: {"model": ErrorBody, "description": "no such thing"},
}
"""``responses=`` for routes, so that the OpenAPI description shows the error shape."""


def bad_parameter(field: str, message: str) -> ApiError:
    return ApiError(400, "bad_parameter", f"{field}: {message}", field)


def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    first_field = None
    for error in exc.errors():
        location = [str(p) for p in error.get("loc", ()) if p not in ("query", "path", "body", "header")]
        field = ".".join(location) or "request"
        first_field = first_field or field
        problems.append(f"{field}: {str(error.get('msg', 'invalid')).removeprefix('Value error, ')}")
    body = ApiError(400, "bad_parameter", "; ".join(problems), first_field).body()
    return JSONResponse(body, status_code=400)


def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = "no such path: /openapi.json lists what this service answers"
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=exc.status_code)


def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    body = {"error": {"code": "internal", "message": "the server failed; its log says why"}}
    return JSONResponse(body, status_code=500)


def create_app(*, title: str, description: str, version: str) -> FastAPI:
    """A FastAPI app with voicemarket's error shape (see the module docstring)."""
    app = FastAPI(title=title, description=description, version=version)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    return app


# ---------------------------------------------------------------- pagination


class Page(BaseModel, Generic[T]):
    """One page of a list; ``next_cursor`` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(ordering: str, values: list[Any]) -> str:
    """An opaque cursor: where the next page starts, for ``ordering`` only."""
    raw = json.dumps([ordering, values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, ordering: str, length: int) -> list[Any]:
    """The values of a cursor made by :func:`encode_cursor` for ``ordering`` (400 otherwise)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, values = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise ApiError(400, "bad_cursor", "cursor: not a cursor this service made; pass next_cursor as given") from None
    if made_for != ordering or not isinstance(values, list) or len(values) != length:
        raise ApiError(
            400,
            "bad_cursor",
            f"cursor: made for another ordering ({made_for!r}, not {ordering!r}); start again without a cursor",
            "cursor",
        )
    return values


# ---------------------------------------------------------------- server-sent events


def sse_message(event_id: int | str | None, kind: str, data: Any) -> str:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {kind}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    return "\n".join(lines) + "\n\n"


def sse_response(messages: AsyncIterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` answer of the messages (:func:`sse_message`) the iterator yields."""
    return StreamingResponse(
        messages,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def serve(app: FastAPI, settings: WebSettings, *, log_level: str = "info") -> None:
    """Run ``app`` with uvicorn on the settings' host and port until interrupted."""
    import uvicorn

    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET"])
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, access_log=False)

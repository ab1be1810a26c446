"""One error shape for every failure: `{"error": {"code": "...", "message": "..."}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coursecrafter_server.domain import DomainError
from coursecrafter_worker.storage import InvalidKey, StorageError

log = logging.getLogger(__name__)

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "service_unavailable",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, **extra}}, status_code=status, headers=headers
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
        return error_response(422, "validation_error", summary or "invalid request", fields=fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(StorageError)
    async def _storage(_: Request, exc: StorageError) -> JSONResponse:
        if isinstance(exc, InvalidKey):
            return error_response(400, "bad_request", str(exc))
        # Object storage unreachable or failing: the request can be repeated; nothing was lost.
        log.warning("storage error: %s", exc)
        return error_response(503, "storage_unavailable",
                              "object storage is not answering; try again shortly",
                              {"Retry-After": "5"})

    # Starlette runs this handler outside every middleware, for any exception that reaches it; an
    # answer it sends has no security or CORS headers, so for the routes' failures
    # UnhandledErrorMiddleware has already answered (inside the stack) and this only logs.
    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error")


class UnhandledErrorMiddleware:
    """An unexpected exception from a route is answered with the 500 error shape here, the
    innermost of the app's middlewares, so that the answer still passes the security-header, CORS
    and metrics middlewares on its way out (a browser page on an allowed origin can read it). The
    exception then goes on up: Starlette's handler logs it (and sends nothing more), and a test
    client can raise it. Pure ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if not started:  # else part of an answer is out: closing the connection is all left
                await error_response(500, "internal_error", "internal server error")(
                    scope, receive, send)
            raise

"""Security headers on every answer (pure ASGI: BaseHTTPMiddleware would buffer streamed files).

- `X-Content-Type-Options: nosniff` and `Referrer-Policy: no-referrer` everywhere (playback and
  blob URLs carry tokens; no page should hand them to another site).
- `Content-Security-Policy`, unless the route set its own: API answers (JSON, Prometheus text,
  blobs) get `default-src 'none'; frame-ancestors 'none'`, so nothing the API returns can run or
  load anything even if a browser is made to render it; `/blobs/` also gets `sandbox`. The
  OpenAPI page (`/docs`) runs Swagger UI's scripts, served by the server itself. Other
  HTML pages (the web app) only get what cannot break them (no framing, no plugins, no `<base>`
  hijack) and may send a stricter policy themselves.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_CSP = "default-src 'none'; frame-ancestors 'none'"
BLOB_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
# /docs loads Swagger UI from the server itself (api/docs.py), with no inline script; Swagger UI
# sets inline styles and data: images.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
PAGE_CSP = "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
DOCS_PATHS = ("/docs", "/redoc")

_ALWAYS = ((b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"))


def _policy(path: str, content_type: bytes) -> str:
    if path.startswith("/blobs/"):
        return BLOB_CSP
    if path == "/docs" or path.startswith(DOCS_PATHS):
        return DOCS_CSP
    if content_type.split(b";")[0].strip().lower() == b"text/html":
        return PAGE_CSP
    return API_CSP


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in _ALWAYS if h[0] not in present]
                if b"content-security-policy" not in present:
                    content_type = next((v for n, v in headers if n.lower() == b"content-type"),
                                        b"")
                    headers.append((b"content-security-policy",
                                    _policy(path, content_type).encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

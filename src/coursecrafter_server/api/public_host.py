"""Warn once when requests arrive for another host than COURSECRAFTER_PUBLIC_URL's (pure ASGI).

The server writes its public URL into everything it hands out: upload part URLs, playback and
poster URLs, the webhook callback, the JWT issuer. Behind a gateway (deploy/nginx/) the public URL
must be the gateway's; left at the backend's own address (the default `http://127.0.0.1:8000`),
browsers reach the pages through the gateway but are then sent around it, straight to the backend
(or to an address they cannot reach), and nothing says why. Requests carry the host the client
asked for (`Host`, which the example gateway passes on as it came), so the first request whose host
differs from the public URL's logs one warning naming both. Health probes, metrics scrapes and
worker webhooks often come straight to the backend's address on purpose: they are not looked at.
Nothing is refused: this only tells the operator."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("coursecrafter_server.public_url")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Probes, scrapes and worker webhooks: these may use the backend's address on purpose.
EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics", "/api/v1/healthz", "/api/v1/readyz",
                "/api/v1/metrics", "/api/v1/internal/")


def _split_host(value: str, default_port: int) -> tuple[str, int] | None:
    try:
        parts = urlsplit("//" + value.strip())
        return (parts.hostname or "").rstrip(".").lower(), parts.port or default_port
    except ValueError:
        return None


class PublicHostCheckMiddleware:
    def __init__(self, app: ASGIApp, public_url: str) -> None:
        self.app = app
        self.public_url = public_url
        parts = urlsplit(public_url)
        self.default_port = _DEFAULT_PORTS.get(parts.scheme, 80)
        self.expected = _split_host(parts.netloc, self.default_port)
        self.warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.warned and scope["type"] == "http" and self.expected is not None:
            self._check(scope)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope) -> None:
        path = scope.get("path", "")
        if path.startswith(EXEMPT_PATHS):
            return
        host = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"host"), "")
        if not host:
            return
        got = _split_host(host, self.default_port)
        if got == self.expected:
            return
        self.warned = True
        log.warning(
            "a request arrived for host %r, but COURSECRAFTER_PUBLIC_URL is %s: the URLs this "
            "server hands out (uploads, playback, posters) point there, not where this client "
            "came from. Behind a gateway, set COURSECRAFTER_PUBLIC_URL to the gateway's public "
            "URL (README, \"Deploy behind NGINX\"). Logged once.", host, self.public_url)

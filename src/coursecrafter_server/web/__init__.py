"""The browser app: `/`, `/courses/{id}`, `/watch/{video_id}` answer with the single-page app's
index.html, `/assets/…` with its built scripts and styles. The app is built from this directory's
sources by `make web` (`npm ci && npm run build`) into `dist/` (package data, never committed);
no Node.js runs at serving time. Without a build, the pages say how to make one.

Every HTML answer carries its own Content-Security-Policy (no inline script, no workers; media and
connections as hls.js and the direct-to-storage upload need): middlewares that add a default CSP to
API answers must leave an existing one alone."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from coursecrafter_server.settings import Settings

DIST = Path(__file__).resolve().parent / "dist"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".map": "application/json", ".svg": "image/svg+xml", ".ico": "image/x-icon"}

NOT_BUILT = (
    "The CourseCrafter web app is not built.\n\n"
    "Run `make web` in the source checkout (it runs `npm ci && npm run build` in "
    "src/coursecrafter_server/web), then reload this page.\n"
    "The REST API is served all the same under /api/v1 (see /docs).\n"
)


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def storage_origins(settings: Settings) -> list[str]:
    """Where the browser fetches segments and posters and PUTs upload parts besides this origin."""
    origins = [o for o in (_origin(settings.public_url),) if o]
    if (settings.storage_url or "").startswith("s3://"):
        endpoint = _origin(settings.s3_endpoint_url or "")
        origins.append(endpoint or "https://*.amazonaws.com")
    return origins


def content_security_policy(settings: Settings) -> str:
    extra = " ".join(storage_origins(settings))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: blob: {extra}",
        f"media-src 'self' blob: {extra}",
        f"connect-src 'self' {extra}",
        # hls.js transmuxes on the page's thread (player.js says why): no worker of any kind.
        "worker-src 'none'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


def web_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    csp = content_security_policy(settings)
    html_headers = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }

    def page() -> Response:
        index = DIST / "index.html"
        try:
            html = index.read_text(encoding="utf-8")
        except FileNotFoundError:
            return PlainTextResponse(NOT_BUILT, status_code=503,
                                     headers={**html_headers, "Cache-Control": "no-store"})
        return HTMLResponse(html, headers=html_headers)

    @router.get("/")
    def home() -> Response:
        return page()

    @router.get("/courses/{course_id}")
    def course(course_id: str) -> Response:
        return page()

    @router.get("/watch/{video_id}")
    def watch(video_id: str) -> Response:
        return page()

    @router.get("/assets/{name}")
    def asset(name: str) -> Response:
        path = DIST / "assets" / name
        if not _ASSET_NAME.match(name) or name.startswith(".") or not path.is_file():
            return PlainTextResponse("no such asset\n", status_code=404,
                                     headers={"X-Content-Type-Options": "nosniff"})
        return FileResponse(path, media_type=_TYPES.get(path.suffix, "application/octet-stream"),
                            headers={"Cache-Control": "public, max-age=31536000, immutable",
                                     "X-Content-Type-Options": "nosniff"})

    return router

"""The browser app: `/`, `/courses/{id}`, `/watch/{video_id}` answer with the single-page app's
index.html (its style sheet inside, allowed by hash in the CSP), `/assets/…` with its built
scripts. The app is built from this directory's sources by `make web` (`npm ci && npm run build`)
into `dist/` (package data, never committed); no Node.js runs at serving time. Without a build, the pages say how to make one.

A watch page for a viewer whose viewer cookie is live (auth/viewer_cookies.py) carries the viewer
and the lecture's record, playback URL included, in a JSON data block, and its <main> with the
player's <video> (`watch_shell`): the player starts at once instead of after an API round trip.
Such a page is `private, no-store`.

Every HTML answer carries its own Content-Security-Policy (no inline script, no workers; media and
connections as hls.js and the direct-to-storage upload need): middlewares that add a default CSP to
API answers must leave an existing one alone."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse, Response

from coursecrafter_server.api.routes.session import watch_page_state
from coursecrafter_server.auth import viewer_cookies
from coursecrafter_server.settings import Settings

DIST = Path(__file__).resolve().parent / "dist"
PAGE_STATE_ID = "coursecrafter-page-state"  # read by src/api.js
LOADING = '<p class="muted">Loading…</p>'  # src/index.html's placeholder in <main>
_STYLE_BLOCK = re.compile(r"<style>(.*?)</style>", re.S)
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


def content_security_policy(settings: Settings, style_hashes: Iterable[str] = ()) -> str:
    """`style_hashes`: the page's own <style> blocks (`inline_style_hashes`), allowed by hash; no
    other inline style is."""
    extra = " ".join(storage_origins(settings))
    return "; ".join([
        "default-src 'none'",
        "script-src 'self'",
        " ".join(["style-src 'self'", *style_hashes]),
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


def inline_style_hashes(html: str) -> list[str]:
    """CSP source expressions for the <style> blocks of the built index.html (its style sheet,
    build.mjs), taken before anything of a user's is put into the page."""
    return [f"'sha256-{base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()}'"
            for css in _STYLE_BLOCK.findall(html)]


def page_state_element(state: dict[str, object]) -> str:
    """A data block, never run (`type="application/json"`; the CSP allows no inline script), that
    the app reads at start. `<`, `>` and `&` are escaped in the JSON, so no title or name can end
    the element or open a tag."""
    data = json.dumps(state, separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{PAGE_STATE_ID}">{data}</script>'


def watch_shell(video: dict[str, Any]) -> str:
    """The watch page's <main> as the app will show it, in place of the "Loading…" line: the way
    back, the title and the player's <video> with its playback URL (`data-src`) and poster
    (`data-poster`). The page is laid out without waiting for the app; the app's first lines hand
    the URL to the browser's own HLS, or to hls.js, and the rest of the app, the browser's controls
    and the poster wait for the first frame (player.js says why). The app builds around this
    player and never moves it: a moved <video> is set up again, on the first frame's path
    (docs/benchmarks.md)."""
    course = video.get("course_id")
    back = (f'<a href="/courses/{escape(course)}" data-link>← Back to the course</a>' if course
            else '<a href="/" data-link>← All courses</a>')
    poster = f' data-poster="{escape(video["poster_url"])}"' if video.get("poster_url") else ""
    return (
        f'<p class="crumbs">{back}</p>'
        f'<h1 tabindex="-1" id="page-heading">{escape(video["title"])}</h1>'
        '<div class="watch"><figure class="player"><div class="player-frame">'
        f'<video id="page-video" data-video-id="{escape(video["id"])}" class="player-video"'
        f' autoplay playsinline preload="auto"{poster}'
        f' aria-label="Lecture video: {escape(video["title"])}"'
        f' data-src="{escape(video["playback_url"])}"></video>'
        '</div></figure></div>'
    )


def web_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    html_headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }

    def page(state: dict[str, object] | None = None, *, vary: bool = False,
             main: str | None = None) -> Response:
        index = DIST / "index.html"
        try:
            html = index.read_text(encoding="utf-8")
        except FileNotFoundError:
            return PlainTextResponse(NOT_BUILT, status_code=503, headers={
                **html_headers, "Content-Security-Policy": content_security_policy(settings),
                "Cache-Control": "no-store"})
        headers = {**html_headers, "Content-Security-Policy": content_security_policy(
            settings, inline_style_hashes(html))}
        if vary:
            headers["Vary"] = "Cookie"
        if state is not None:  # one viewer's page: never stored by a cache
            html = html.replace("</head>", f"{page_state_element(state)}\n</head>", 1)
            if main is not None:
                html = html.replace(LOADING, main, 1)
            headers = {**headers, "Cache-Control": "private, no-store"}
        return HTMLResponse(html, headers=headers)

    @router.get("/")
    def home() -> Response:
        return page()

    @router.get("/courses/{course_id}")
    def course(course_id: str) -> Response:
        return page()

    @router.get("/watch/{video_id}")
    def watch(video_id: str, request: Request) -> Response:
        # The viewer and the lecture in the page itself: its player starts without waiting for
        # an API answer (auth/viewer_cookies.py says why and what the cookie may open).
        state = watch_page_state(request.app.state.container,
                                 request.cookies.get(viewer_cookies.COOKIE_NAME), video_id)
        video = state and state["video"]
        playable = isinstance(video, dict) and video.get("playback_url")
        return page(state, vary=True, main=watch_shell(video) if playable else None)

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

"""The app factory: `create_app(settings)` builds a FastAPI app around one wired container."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from coursecrafter_server.api.body_limit import BodySizeLimitMiddleware
from coursecrafter_server.api.docs import install_docs
from coursecrafter_server.api.errors import UnhandledErrorMiddleware, install_error_handlers
from coursecrafter_server.api.public_host import PublicHostCheckMiddleware
from coursecrafter_server.api.request_limits import RequestLimitsMiddleware
from coursecrafter_server.api.security_headers import SecurityHeadersMiddleware
from coursecrafter_server.api.routes import (
    auth,
    courses,
    health,
    internal,
    playback,
    session,
    tokens,
    uploads,
    videos,
)
from coursecrafter_server.bootstrap import Container, build_container
from coursecrafter_server.metrics import MetricsMiddleware, ServerMetrics
from coursecrafter_server.settings import Settings, get_settings
from coursecrafter_worker.storage.local import LocalStorage
from coursecrafter_server.api.blobs import blob_router
from coursecrafter_server.sweeper import Sweeper
from coursecrafter_server.web import web_router

API_PREFIX = "/api/v1"


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    settings = settings or get_settings()
    container = container or build_container(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        transcoders = None
        if not settings.broker and settings.transcode_concurrency > 0:
            from coursecrafter_server.transcoders import InProcessTranscoders

            transcoders = InProcessTranscoders(container)
            transcoders.start()
        sweeper = Sweeper(container, settings.sweep_interval)
        sweeper.start()
        try:
            yield
        finally:
            sweeper.stop()
            if transcoders is not None:
                transcoders.stop()
            container.close()

    app = FastAPI(
        title="CourseCrafter API",
        version="0.1.0",
        description="Lecture recordings to streamable course videos.",
        lifespan=lifespan,
        docs_url=None,  # install_docs: served offline
        redoc_url=None,
    )
    app.state.container = container
    app.state.metrics = metrics = ServerMetrics(container)
    install_error_handlers(app)
    app.add_middleware(UnhandledErrorMiddleware)  # innermost: its 500s pass all the others
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=settings.max_json_body_bytes, exempt_prefixes=("/blobs/",)
    )
    app.add_middleware(RequestLimitsMiddleware, max_header_count=settings.max_header_count,
                       body_timeout=settings.body_read_timeout)
    app.add_middleware(SecurityHeadersMiddleware)  # also on 413s and errors
    # Logs once when clients reach this server under another host than the public URL's.
    app.add_middleware(PublicHostCheckMiddleware, public_url=settings.public_url)
    if settings.cors_origins:
        # Outside everything but metrics: preflights are answered before routing, and errors
        # (401, 413, 429, 403 url_expired) carry the headers a browser needs to read them.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Range", "If-None-Match",
                           "If-Modified-Since"],
            # ETag: browser uploads read it from part PUTs to complete the upload.
            expose_headers=["ETag", "Retry-After", "Content-Range", "Accept-Ranges",
                            "Last-Modified", "WWW-Authenticate"],
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: sees every answer
    app.include_router(auth.router, prefix=API_PREFIX)
    app.include_router(session.router, prefix=API_PREFIX)  # the browser app's cookie sign-in
    app.include_router(courses.router, prefix=API_PREFIX)
    app.include_router(uploads.router, prefix=API_PREFIX)
    app.include_router(videos.router, prefix=API_PREFIX)
    app.include_router(playback.router, prefix=API_PREFIX)
    app.include_router(internal.router, prefix=API_PREFIX)
    app.include_router(tokens.router, prefix=API_PREFIX)  # automation tokens
    app.include_router(health.router, prefix=API_PREFIX)
    app.include_router(health.router, include_in_schema=False)  # probes also at the root
    app.include_router(health.jwks_router)
    install_docs(app)
    if isinstance(container.storage, LocalStorage):
        # Embedded mode: the API serves the local adapter's pre-signed part and download URLs.
        app.include_router(blob_router(lambda: container.storage))
    app.include_router(web_router(settings))  # the browser app: /, /courses/{id}, /watch/{id}
    return app

"""/docs without a CDN: Swagger UI from the files the `fastapi-offline` wheel ships, served by this
server. The page has no inline script (its start-up is a same-origin file too), so a CSP of
`script-src 'self'` lets it run. `validatorUrl: null`: Swagger UI would otherwise show a badge
fetched from validator.swagger.io, sending it the spec's URL."""

from __future__ import annotations

import html
import json
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs/assets"
_STATIC = Path(fastapi_offline.__file__).parent / "static"

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" type="image/png" href="{root}{assets}/favicon.png">
<link rel="stylesheet" href="{root}{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}{assets}/swagger-ui-bundle.js"></script>
<script src="{root}/docs/swagger-init.js"></script>
</body>
</html>
"""

_INIT = """window.ui = SwaggerUIBundle({{
  url: {openapi},
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset]
}});
"""


def install_docs(app: FastAPI) -> None:
    """Mount /docs; the app must be built with `docs_url=None, redoc_url=None`."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(_PAGE.format(title=html.escape(app.title), root=root, assets=ASSETS))

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    async def swagger_init(request: Request) -> Response:
        openapi = json.dumps(f"{request.scope.get('root_path', '')}{app.openapi_url}")
        return Response(_INIT.format(openapi=openapi), media_type="text/javascript")

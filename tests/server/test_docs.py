"""/docs works offline: the page and every asset it loads come from this server (no CDN), and the
page runs no inline script (a CSP of script-src 'self' lets it start)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit


def test_docs_page_loads_only_same_origin_assets_that_answer(api):
    page = api.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "cdn" not in html.lower()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert len(refs) >= 4, refs  # favicon, css, bundle, start-up script
    for ref in refs:
        assert not urlsplit(ref).scheme and not ref.startswith("//"), ref  # same origin
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    types = {}
    for ref in refs:
        asset = api.get(urljoin("http://testserver/docs", ref))
        assert asset.status_code == 200, ref
        types[ref.rsplit("/", 1)[-1]] = asset.headers["content-type"]
    assert types["swagger-ui.css"].startswith("text/css")
    assert "javascript" in types["swagger-ui-bundle.js"]
    start = api.get("/docs/swagger-init.js").text
    assert "SwaggerUIBundle(" in start
    assert "validatorUrl: null" in start  # no badge fetched from validator.swagger.io
    (spec,) = re.findall(r'url: "([^"]+)"', start)
    assert api.get(spec).json()["info"]["title"] == "CourseCrafter API"


def test_no_cdn_backed_doc_pages_remain(api):
    assert api.get("/redoc").status_code == 404
    assert "/docs" not in api.get("/openapi.json").json()["paths"]

"""Security headers on what a browser could be made to load from the API's origin."""

from __future__ import annotations

import re

import httpx
import pytest
from livesupport import start_live_server

API_CSP = "default-src 'none'; frame-ancestors 'none'"


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server(tmp_path_factory.mktemp("headers") / "home",
                               {"COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"})
    yield server
    server.stop()


def assert_hardened(response: httpx.Response, csp: str = API_CSP) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == csp


@pytest.mark.parametrize("method,path,status", [
    ("GET", "/api/v1/auth/me", 401),
    ("GET", "/api/v1/videos/nope", 401),
    ("GET", "/healthz", 200),
    ("GET", "/metrics", 200),
    ("GET", "/openapi.json", 200),
    ("GET", "/no/such/page", 404),
    ("POST", "/api/v1/auth/login", 422),
])
def test_api_answers_carry_the_headers(live, method, path, status):
    response = httpx.request(method, live.url + path, json={} if method == "POST" else None)
    assert response.status_code == status
    assert_hardened(response)


def test_refused_oversized_body_carries_the_headers(live):
    response = httpx.post(live.url + "/api/v1/auth/login", content=b"x" * (2 * 1024 * 1024),
                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert_hardened(response)


def test_docs_keep_working_under_their_own_policy(live):
    response = httpx.get(live.url + "/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()
    csp = response.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["frame-ancestors"] == "'none'"
    assert "'self'" in directives["default-src"]
    # Its scripts come from the server itself, and nothing inline runs (the browser test
    # tests/web/test_browser.py::test_api_docs_render_offline_under_their_csp renders it).
    assert directives["script-src"] == "'self'"
    assert "'self'" in directives["style-src"]
    assert "http" not in csp  # no CDN
    assert response.headers["x-content-type-options"] == "nosniff"


def test_blobs_are_downloads_never_pages(app_factory, tmp_path):
    api = app_factory(transcode_concurrency=0)
    storage = api.app.state.container.storage
    page = tmp_path / "page.html"
    page.write_bytes(b"<script>alert(document.cookie)</script>" + b"x" * 300_000)
    storage.upload_file(page, "attachments/v1/source", "text/html")
    url = storage.presign_get("attachments/v1/source", 60, download_name="notes.html")
    response = api.get(url)
    assert response.status_code == 200 and response.content == page.read_bytes()  # streamed whole
    assert response.headers["content-disposition"].startswith('attachment; filename="notes.html"')
    assert_hardened(response, "default-src 'none'; frame-ancestors 'none'; sandbox")
    # A URL without a name (playback files) is still a download, never inline.
    plain = api.get(storage.presign_get("attachments/v1/source", 60))
    assert plain.headers["content-disposition"] == "attachment"


def test_an_unexpected_failure_is_a_500_in_the_error_shape_with_the_headers(
        app_factory, monkeypatch, caplog):
    """A route that fails unexpectedly (here: the store raising) answers 500 `internal_error`
    with the security headers and, for an allowed origin, the CORS header a page needs to read it;
    the cause goes to the log, not to the client."""
    from fastapi.testclient import TestClient

    origin = "https://app.example.edu"
    app = app_factory(transcode_concurrency=0, cors_origins=origin).app

    def store_down(*_args, **_kwargs):
        raise RuntimeError("store down: secret-host:27017")

    monkeypatch.setattr(app.state.container.store, "get_user_by_username", store_down)
    client = TestClient(app, raise_server_exceptions=False)
    response = client.post("/api/v1/auth/login", headers={"Origin": origin},
                           json={"username": "ada", "password": "correct horse battery"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error",
                                         "message": "internal server error"}}
    assert_hardened(response)
    assert response.headers["access-control-allow-origin"] == origin
    assert "secret-host" not in response.text
    assert any("unhandled error" in r.getMessage() and r.exc_info for r in caplog.records)
    metrics = client.get("/metrics").text
    assert re.search(r'status="500"', metrics), "the 500 is counted"

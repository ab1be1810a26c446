"""CORS (`COURSECRAFTER_CORS_ORIGINS`): a web app on an allowed origin can call the API with its
bearer token, play videos (playlists, segments, posters) and PUT upload parts to /blobs reading
their ETag; any other origin gets no CORS headers, so the browser keeps the answers from it."""

from __future__ import annotations

import dataclasses
import uuid
from urllib.parse import urljoin

import httpx
import pytest

from coursecrafter_server.domain import Role, VideoStatus
from livesupport import start_live_server

ALLOWED = "https://app.example.edu"
REFUSED = "https://evil.example"
PASSWORD = "correct horse battery"


@pytest.fixture(params=["local", "s3"])
def api(request, app_factory, home):
    overrides: dict[str, object] = {"transcode_concurrency": 0, "cors_origins": (ALLOWED,)}
    if request.param == "s3":
        overrides["storage_url"] = f"s3://{request.getfixturevalue('s3_bucket')}/cors-" \
            f"{uuid.uuid4().hex[:8]}"
        overrides["s3_endpoint_url"] = request.getfixturevalue("moto_endpoint")
    return app_factory(**overrides)


def login(api) -> dict[str, str]:
    api.app.state.container.auth.register("ada", "ada@example.edu", PASSWORD, Role.INSTRUCTOR)
    tokens = api.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def preflight(client, url: str, origin: str, method: str, headers: str) -> httpx.Response:
    return client.options(url, headers={
        "Origin": origin, "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers})


def test_api_calls_with_a_bearer_token_from_an_allowed_origin_only(api):
    auth = login(api)
    allowed = preflight(api, "/api/v1/auth/me", ALLOWED, "GET", "authorization")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    for method in ("POST", "PATCH", "DELETE", "PUT"):
        assert method in allowed.headers["access-control-allow-methods"]
    me = api.get("/api/v1/auth/me", headers={**auth, "Origin": ALLOWED})
    assert me.status_code == 200 and me.headers["access-control-allow-origin"] == ALLOWED
    # Errors too: a browser app must be able to read a 401 to refresh its token.
    denied = api.get("/api/v1/auth/me", headers={"Origin": ALLOWED})
    assert denied.status_code == 401 and denied.headers["access-control-allow-origin"] == ALLOWED
    assert "www-authenticate" in denied.headers["access-control-expose-headers"].lower()

    refused = preflight(api, "/api/v1/auth/me", REFUSED, "GET", "authorization")
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    other = api.get("/api/v1/auth/me", headers={**auth, "Origin": REFUSED})
    assert "access-control-allow-origin" not in other.headers


def test_playlists_segments_and_posters_from_an_allowed_origin_only(api, tmp_path):
    auth = login(api)
    upload = api.post("/api/v1/uploads", headers=auth, json={
        "filename": "l.mp4", "size": 1000, "content_type": "video/mp4"}).json()
    container = api.app.state.container
    video = container.store.get_video(upload["video_id"])
    container.store.update_video(dataclasses.replace(
        video, status=VideoStatus.READY, width=640, height=360,
        renditions=({"height": 360, "bitrate": 1},)))
    for name, data in {"hls/master.m3u8": b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n"
                                            b"360p/index.m3u8\n",
                       "hls/360p/index.m3u8": b"#EXTM3U\n#EXTINF:1,\ns.ts\n#EXT-X-ENDLIST\n",
                       "hls/360p/s.ts": b"ts", "poster.jpg": b"jpg"}.items():
        (tmp_path / "f").write_bytes(data)
        container.storage.upload_file(tmp_path / "f", f"videos/{video.id}/{name}", "x/y")
    record = api.get(f"/api/v1/videos/{video.id}", headers=auth).json()
    master = record["playback_url"]
    for url in (master, urljoin(master, "360p/index.m3u8"), urljoin(master, "360p/s.ts"),
                record["poster_url"]):
        path = url.removeprefix("http://127.0.0.1:8000")
        # hls.js sends Range on segments: not a CORS-safelisted value in every form.
        assert preflight(api, path, ALLOWED, "GET", "range").headers[
            "access-control-allow-origin"] == ALLOWED
        # (On S3, segments and posters answer 302 to storage: the redirect carries the headers,
        # the bucket's own CORS rules the rest; README "S3 bucket CORS".)
        ok = api.get(path, headers={"Origin": ALLOWED}, follow_redirects=False)
        assert ok.status_code in (200, 302) and ok.headers["access-control-allow-origin"] == ALLOWED
        assert "etag" in ok.headers["access-control-expose-headers"].lower()
        refused = api.get(path, headers={"Origin": REFUSED}, follow_redirects=False)
        assert "access-control-allow-origin" not in refused.headers
    # Errors too, so that a player can read them (403 url_expired: fetch the video again).
    invalid = api.get(urljoin(master, "../../x.y.p.z/hls/master.m3u8").removeprefix(
        "http://127.0.0.1:8000"), headers={"Origin": ALLOWED})
    assert invalid.status_code == 404 and invalid.headers["access-control-allow-origin"] == ALLOWED


def test_without_cors_origins_no_cors_headers_at_all(app_factory):
    api = app_factory(transcode_concurrency=0)
    assert "access-control-allow-origin" not in preflight(
        api, "/api/v1/auth/me", ALLOWED, "GET", "authorization").headers
    assert "access-control-allow-origin" not in api.get(
        "/api/v1/healthz", headers={"Origin": ALLOWED}).headers


@pytest.mark.parametrize("origin", ["app.example.edu", "https://app.example.edu/path",
                                    "ftp://app.example.edu", "https://"])
def test_a_setting_that_is_not_an_origin_is_refused_at_start(settings_factory, origin):
    with pytest.raises(ValueError, match="is not an origin"):
        settings_factory(cors_origins=f"https://ok.example, {origin}")


def test_a_browser_upload_puts_parts_and_reads_their_etag_over_http(tmp_path):
    """The browser's part PUT to /blobs on a real server: preflight, PUT, ETag readable."""
    server = start_live_server(tmp_path / "home", {
        "COURSECRAFTER_CORS_ORIGINS": f"{ALLOWED}, http://localhost:5173",
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"})
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            client.post("/api/v1/auth/register", json={
                "username": "ada", "email": "ada@example.edu", "password": PASSWORD})
            token = client.post("/api/v1/auth/login", json={
                "username": "ada", "password": PASSWORD}).json()["access_token"]
            made = preflight(client, "/api/v1/uploads", ALLOWED, "POST",
                             "authorization,content-type")
            assert made.status_code == 200 and made.headers["access-control-allow-origin"] == ALLOWED
            upload = client.post("/api/v1/uploads", headers={
                "Authorization": f"Bearer {token}", "Origin": ALLOWED}, json={
                "filename": "l.mp4", "size": 1000, "content_type": "video/mp4"}).json()
            part_url = upload["parts"][0]["url"]
            allowed = preflight(client, part_url, ALLOWED, "PUT", "content-type")
            assert allowed.status_code == 200
            assert allowed.headers["access-control-allow-origin"] == ALLOWED
            assert "PUT" in allowed.headers["access-control-allow-methods"]
            put = client.put(part_url, content=b"x" * 1000, headers={
                "Origin": ALLOWED, "Content-Type": "application/octet-stream"})
            assert put.status_code == 200, put.text
            assert put.headers["access-control-allow-origin"] == ALLOWED
            assert "etag" in put.headers["access-control-expose-headers"].lower()
            assert put.headers["etag"]

            refused = preflight(client, part_url, REFUSED, "PUT", "content-type")
            assert refused.status_code == 400
            assert "access-control-allow-origin" not in refused.headers
    finally:
        server.stop()

"""The example NGINX gateway (deploy/nginx/coursecrafter.conf.template), rendered as its header
says and run as the test's own process in front of a real `coursecrafter-server`: forwarded
headers overwritten, upload parts above the part size streamed through, the public-URL warning."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livesupport import MIB, LiveServer, free_port, make_file, start_live_server
from nginxsupport import Nginx, nginx_path, start_gateway

pytestmark = pytest.mark.slow
PASSWORD = "correct horse battery"


def _need_nginx() -> None:
    if nginx_path() is None:
        pytest.skip("nginx is not installed (apt-get install -y nginx)")


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[tuple[LiveServer, Nginx]]:
    _need_nginx()
    port = free_port()
    server = start_live_server(tmp_path / "home", {
        "COURSECRAFTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "3/hour",
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0",
    })
    try:
        nginx = start_gateway(tmp_path / "nginx", server.url, port)
    except BaseException:
        server.stop()
        raise
    yield server, nginx
    nginx.stop()
    server.stop()


def _login(url: str, headers: dict[str, str]) -> int:
    return httpx.post(f"{url}/api/v1/auth/login", json={"username": "x", "password": "y"},
                      headers=headers, timeout=30).status_code


def test_forwarded_headers_from_the_client_are_overwritten(gateway) -> None:
    server, nginx = gateway
    # A client naming a new address each time is still one client (the gateway's X-Forwarded-For
    # replaces the client's; appended, the server would count each named address apart).
    statuses = [_login(nginx.url, {"X-Forwarded-For": f"203.0.113.{i}",
                                   "X-Forwarded-Proto": "https"}) for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    # X-Forwarded-Proto is the gateway's scheme too: a redirect built from the request says http.
    redirect = httpx.get(f"{nginx.url}/api/v1/courses/", headers={"X-Forwarded-Proto": "https"},
                         timeout=30)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{nginx.url}/api/v1/courses"
    # The server behind a gateway at its public URL sees its public host: nothing to warn about.
    assert "COURSECRAFTER_PUBLIC_URL is" not in server.log()


def test_an_upload_part_above_the_part_size_is_streamed_through(gateway, tmp_path: Path) -> None:
    _, nginx = gateway
    api = httpx.Client(base_url=f"{nginx.url}/api/v1", timeout=60)
    assert api.post("/auth/register", json={"username": "ada", "email": "ada@example.edu",
                                            "password": PASSWORD}).status_code == 201
    token = api.post("/auth/login", json={"username": "ada", "password": PASSWORD})
    api.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    course = api.post("/courses", json={"title": "Gateway"}).json()
    source = make_file(tmp_path / "big.mp4", 9 * MIB, seed=3)
    data = source.read_bytes()
    upload = api.post("/uploads", json={"filename": "big.mp4", "size": len(data),
                                        "content_type": "video/mp4", "course_id": course["id"],
                                        "title": "Big"}).json()
    assert upload["part_size"] >= 8 * MIB and len(upload["parts"]) == 2
    parts = []
    for part in upload["parts"]:
        assert part["url"].startswith(nginx.url + "/blobs/")  # the public URL: the gateway
        n = part["part_number"]
        put = httpx.put(part["url"], content=data[(n - 1) * upload["part_size"]:n * upload["part_size"]],
                        timeout=120)
        assert put.status_code == 200, put.text
        parts.append({"part_number": n, "etag": put.headers["etag"]})
    done = api.post(f"/uploads/{upload['upload_id']}/complete", json={"parts": parts})
    assert done.status_code == 200, done.text
    # Streamed, not spooled: NGINX logs a warning for every request body it buffers to a file.
    assert "buffered to a temporary file" not in nginx.error_log()
    assert "PUT /blobs/" in nginx.access_log()
    # A part longer than its URL allows is still refused by the server, through the gateway.
    first = upload["parts"][0]["url"]
    assert httpx.put(first, content=b"x" * (upload["part_size"] + 1), timeout=120).status_code in (
        403, 409, 413)


def test_a_public_url_left_at_the_backend_address_is_logged(tmp_path: Path) -> None:
    _need_nginx()
    server = start_live_server(tmp_path / "home", {"COURSECRAFTER_TRUSTED_PROXIES": "127.0.0.1",
                                                   "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0"})
    try:
        nginx = start_gateway(tmp_path / "nginx", server.url)
        try:
            assert httpx.get(f"{nginx.url}/api/v1/courses", timeout=30).status_code == 401
            log = server.log()
            assert f"a request arrived for host '127.0.0.1:{nginx.url.rsplit(':', 1)[1]}'" in log
            assert f"COURSECRAFTER_PUBLIC_URL is {server.url}" in log
            httpx.get(f"{nginx.url}/api/v1/courses", timeout=30)
            assert server.log().count("COURSECRAFTER_PUBLIC_URL is") == 1  # once
        finally:
            nginx.stop()
    finally:
        server.stop()

"""The server warns once when clients reach it under another host than COURSECRAFTER_PUBLIC_URL's
(a gateway in front of a server whose public URL was left at the backend's address)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

LOGGER = "coursecrafter_server.public_url"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


@pytest.fixture
def client_for():
    """A bare app behind the middleware (a non-local public URL would need real secrets for the
    whole server; the wiring into create_app is the first test's)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from coursecrafter_server.api.public_host import PublicHostCheckMiddleware

    def make(public_url: str, base_url: str) -> TestClient:
        app = Starlette(routes=[Route("/{path:path}", lambda request: PlainTextResponse("ok"))])
        return TestClient(PublicHostCheckMiddleware(app, public_url=public_url), base_url=base_url)

    return make


def test_the_server_logs_a_request_for_another_host_once(settings_factory, caplog) -> None:
    from coursecrafter_server.app import create_app

    caplog.set_level(logging.WARNING, logger=LOGGER)
    app = create_app(settings_factory(public_url="http://127.0.0.1:8000", transcode_concurrency=0))
    with TestClient(app, base_url="http://courses.example.edu") as client:
        assert client.get("/healthz").status_code == 200  # probes are not looked at
        assert client.get("/metrics").status_code == 200
        assert warnings(caplog) == []
        client.get("/api/v1/courses")
        client.get("/api/v1/courses", headers={"Host": "other.example.edu"})
    [message] = warnings(caplog)
    assert "'courses.example.edu'" in message and "http://127.0.0.1:8000" in message
    assert "COURSECRAFTER_PUBLIC_URL" in message


@pytest.mark.parametrize(("public_url", "host"), [
    ("https://courses.example.edu", "courses.example.edu"),
    ("https://courses.example.edu", "COURSES.example.edu:443"),
    ("https://courses.example.edu/", "courses.example.edu."),
    ("http://127.0.0.1:8080", "127.0.0.1:8080"),
    ("http://[::1]:8080", "[::1]:8080"),
])
def test_the_public_host_is_not_logged(client_for, caplog, public_url: str, host: str) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with client_for(public_url, "http://testserver") as client:
        client.get("/api/v1/courses", headers={"Host": host})
        client.get("/", headers={"Host": host})
    assert warnings(caplog) == []


@pytest.mark.parametrize("host", ["courses.example.edu:8443", "127.0.0.1:8000", "evil.example"])
def test_another_port_or_name_is_logged(client_for, caplog, host: str) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with client_for("https://courses.example.edu", "http://testserver") as client:
        client.get("/api/v1/courses", headers={"Host": host})
    assert len(warnings(caplog)) == 1

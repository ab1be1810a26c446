"""Error answers that generated input rarely or never reaches, pinned down by hand.

Every one must have the documented shape `{"error": {"code", "message"}}`, and on a route of the
schema, a status the schema declares for that operation (so schemathesis and clients can rely on
the schema). Regressions of what schemathesis found live here too, as plain examples.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from coursecrafter_server.domain import Role
from coursecrafter_worker.signing import HEADER

PASSWORD = "correct horse battery"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["code"], str) and isinstance(body["error"]["message"], str)
    return body["error"]  # type: ignore[no-any-return]


def declared(api: Any, method: str, path: str, status: int) -> None:
    operation = api.app.openapi()["paths"][path][method.lower()]
    assert str(status) in operation["responses"], (
        f"{method} {path} answers {status} but its schema does not declare it")
    content = operation["responses"][str(status)]["content"]
    assert content == {"application/json": {"schema": {
        "$ref": "#/components/schemas/ErrorResponse"}}}, content


def bearer(api: Any, username: str, role: Role = Role.INSTRUCTOR) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


@pytest.fixture
def api(app_factory):
    return app_factory(transcode_concurrency=0, max_json_body_bytes=4096)


def body_operations(api: Any) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in api.app.openapi()["paths"].items()
            for method, op in ops.items() if "requestBody" in op]


def test_unknown_route_is_404(api):
    assert error_of(api.get("/api/v1/nothing-here"), 404)["code"] == "not_found"
    assert error_of(api.get("/nothing-here"), 404)["code"] == "not_found"


def test_wrong_method_is_405_with_allow(api):
    response = api.put("/api/v1/courses")
    assert error_of(response, 405)["code"] == "method_not_allowed"
    # Starlette names the methods of the first route on the path only (here POST, not GET too).
    assert set(response.headers["allow"].replace(" ", "").split(",")) <= {"GET", "POST"}


def test_every_json_body_is_bounded_413(api):
    who = bearer(api, "alice")
    operations = body_operations(api) + [("POST", "/api/v1/internal/jobs/events")]
    assert len(operations) >= 8
    for method, path in operations:
        url = path.format(course_id="c", upload_id="u", video_id="v")
        big = b'{"title": "' + b"x" * 8192 + b'"}'
        response = api.request(method, url, content=big, headers={
            **who, "content-type": "application/json"})
        assert error_of(response, 413)["code"] == "payload_too_large", (method, path)
        declared(api, method, path, 413)


def test_chunked_body_without_length_is_413_too(api):
    who = bearer(api, "alice")

    def chunks():
        yield b'{"title": "'
        for _ in range(10):
            yield b"x" * 1024
        yield b'"}'

    response = api.post("/api/v1/courses", content=chunks(),
                        headers={**who, "content-type": "application/json"})
    assert error_of(response, 413)["code"] == "payload_too_large"


def test_malformed_json_is_422_and_undecodable_bytes_400(api):
    who = {**bearer(api, "alice"), "content-type": "application/json"}
    bad_json = api.post("/api/v1/courses", content=b'{"title": ', headers=who)
    assert error_of(bad_json, 422)["code"] == "validation_error"
    not_text = api.post("/api/v1/courses", content=b"\x03\xff", headers=who)
    assert error_of(not_text, 400)["code"] == "bad_request"
    for method, path in body_operations(api):
        declared(api, method, path, 400)
        declared(api, method, path, 422)


def test_invalid_fields_are_422_naming_them(api):
    who = bearer(api, "alice")
    error = error_of(api.post("/api/v1/courses", json={"title": ""}, headers=who), 422)
    assert error["code"] == "validation_error" and error["fields"][0]["field"] == "title"


def test_login_rate_limit_is_429_with_retry_after(app_factory):
    api = app_factory(login_rate_limit_address="2/minute")
    api.app.state.container.auth.register("alice", "alice@example.edu", PASSWORD,
                                          Role.INSTRUCTOR)
    for _ in range(2):
        api.post("/api/v1/auth/login", json={"username": "alice", "password": "wrong"})
    response = api.post("/api/v1/auth/login", json={"username": "alice", "password": PASSWORD})
    assert error_of(response, 429)["code"] == "rate_limited"
    assert int(response.headers["retry-after"]) > 0
    declared(api, "POST", "/api/v1/auth/login", 429)


@pytest.mark.parametrize("authorization", [
    b"Bearer \xe9", b"Bearer \xff\xfe", b"Basic YWxpY2U6cHc=", b"Bearer a.b.c", b"Bearer ",
])
def test_odd_authorization_headers_are_401(api, authorization):
    response = api.get("/api/v1/auth/me", headers={"Authorization": authorization})
    assert error_of(response, 401)["code"] == "invalid_token"
    assert response.headers["www-authenticate"].startswith("Bearer")


# Found by schemathesis ---------------------------------------------------------------------------
def test_non_ascii_playback_token_is_404_not_500(api):
    # hmac.compare_digest raises TypeError for a str with non-ASCII characters.
    response = api.get(f"/api/v1/play/abc.99999999999.p.\u00e9{'0' * 31}/hls/master.m3u8")
    assert error_of(response, 404)["code"] == "not_found"


def test_playback_without_its_token_is_404(api):
    for token in ("abc", "abc.99999999999", f"abc.99999999999.p.{'0' * 32}", "%00"):
        response = api.get(f"/api/v1/play/{token}/hls/master.m3u8")
        assert error_of(response, 404)["code"] == "not_found"
    declared(api, "GET", "/api/v1/play/{token}/{path}", 404)


def test_non_ascii_webhook_signature_is_401_not_500(api):
    # The same compare_digest trap, through a header (Starlette decodes headers as latin-1).
    signature = f"t={int(time.time())},v1=\u00e9".encode("latin-1")
    response = api.post("/api/v1/internal/jobs/events", content=b"{}",
                        headers={HEADER: signature, "content-type": "application/json"})
    assert error_of(response, 401)["code"] == "bad_signature"
    declared(api, "POST", "/api/v1/internal/jobs/events", 401)

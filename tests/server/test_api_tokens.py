"""Automation tokens (`cct_...`) through the HTTP API on the embedded default (SQLite): made and
revoked with a normal login only, shown once, stored as a hash, scopes enforced server-side,
expired and revoked tokens refused with 401, last use recorded at most once a minute."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from coursecrafter_server.auth import api_tokens
from coursecrafter_server.domain import Role

PASSWORD = "correct horse battery"


@pytest.fixture
def api(app_factory, home):
    return app_factory(database_url=f"sqlite:///{home}/db.sqlite3", transcode_concurrency=0)


def account(api, username: str, role: Role = Role.INSTRUCTOR) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def make_token(api, login, scope: str = "upload", **extra) -> tuple[dict, dict[str, str]]:
    made = api.post("/api/v1/tokens", headers=login,
                    json={"name": f"{scope} box", "scope": scope, **extra})
    assert made.status_code == 201, made.text
    record = made.json()
    return record, {"Authorization": f"Bearer {record['token']}"}


def start_upload(api, headers, course_id: str):
    return api.post("/api/v1/uploads", headers=headers, json={
        "filename": "lecture.mp4", "size": 1000, "content_type": "video/mp4",
        "course_id": course_id})


def test_a_token_is_shown_once_and_only_its_hash_is_stored(api, home):
    ada = account(api, "ada")
    record, _ = make_token(api, ada, expires_in=90 * 86400)
    secret = record["token"]
    assert secret.startswith("cct_") and len(secret) == 47
    assert record["scope"] == "upload" and record["name"] == "upload box"
    expires = datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - datetime.now(timezone.utc) - timedelta(days=90)) < timedelta(minutes=1)

    listed = api.get("/api/v1/tokens", headers=ada).json()
    assert [t["id"] for t in listed] == [record["id"]]
    assert "token" not in listed[0] and secret not in str(listed)
    stored = api.app.state.container.store.list_api_tokens(
        api.app.state.container.store.get_user_by_username("ada").id)
    assert stored[0].token_hash == hashlib.sha256(secret.encode()).hexdigest()
    # Nowhere in the database files: not the secret, nor its random part.
    for path in home.glob("db.sqlite3*"):
        data = path.read_bytes()
        assert secret.encode() not in data and secret[4:].encode() not in data


def test_an_upload_token_uploads_and_reads_but_changes_nothing_else(api):
    ada = account(api, "ada")
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Algorithms"}).json()
    _, token = make_token(api, ada, "upload")

    started = start_upload(api, token, course["id"])
    assert started.status_code == 201, started.text
    upload = started.json()
    assert api.put(upload["parts"][0]["url"], content=b"x" * 1000).status_code == 200
    assert api.get(f"/api/v1/uploads/{upload['upload_id']}/parts", headers=token).status_code == 200
    done = api.post(f"/api/v1/uploads/{upload['upload_id']}/complete", headers=token)
    assert done.status_code == 200 and done.json()["status"] == "queued", done.text
    assert api.get(f"/api/v1/videos/{upload['video_id']}", headers=token).status_code == 200
    assert api.get("/api/v1/courses", headers=token).status_code == 200
    assert api.get("/api/v1/auth/me", headers=token).json()["username"] == "ada"

    refused = {
        "delete course": api.delete(f"/api/v1/courses/{course['id']}", headers=token),
        "publish": api.patch(f"/api/v1/courses/{course['id']}", headers=token,
                             json={"published": True}),
        "create course": api.post("/api/v1/courses", headers=token, json={"title": "x"}),
        "delete video": api.delete(f"/api/v1/videos/{upload['video_id']}", headers=token),
        "rename video": api.patch(f"/api/v1/videos/{upload['video_id']}", headers=token,
                                  json={"title": "x"}),
        "retry": api.post(f"/api/v1/videos/{upload['video_id']}/retry", headers=token),
        "make a token": api.post("/api/v1/tokens", headers=token, json={"name": "more"}),
        "list tokens": api.get("/api/v1/tokens", headers=token),
    }
    for what, answer in refused.items():
        assert answer.status_code == 403, (what, answer.text)
        assert answer.json()["error"]["code"] == "forbidden"
    assert api.get(f"/api/v1/courses/{course['id']}", headers=ada).json()["published"] is False


def test_a_read_token_only_reads(api):
    ada = account(api, "ada")
    course = api.post("/api/v1/courses", headers=ada, json={"title": "Algorithms"}).json()
    _, token = make_token(api, ada, "read")
    assert api.get("/api/v1/videos", headers=token).status_code == 200
    assert api.get(f"/api/v1/courses/{course['id']}", headers=token).status_code == 200
    assert start_upload(api, token, course["id"]).status_code == 403


def test_revoked_expired_and_forged_tokens_get_401(api, monkeypatch):
    ada, bob = account(api, "ada"), account(api, "bob")
    record, token = make_token(api, ada, expires_in=3600)
    assert api.get("/api/v1/videos", headers=token).status_code == 200

    # Someone else's token is not theirs to revoke.
    assert api.delete(f"/api/v1/tokens/{record['id']}", headers=bob).status_code == 404
    later = datetime.now(timezone.utc) + timedelta(hours=2)
    monkeypatch.setattr(api_tokens, "_now", lambda: later)
    expired = api.get("/api/v1/videos", headers=token)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    monkeypatch.undo()

    assert api.delete(f"/api/v1/tokens/{record['id']}", headers=ada).status_code == 204
    revoked = api.get("/api/v1/videos", headers=token)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "invalid_token"
    assert revoked.headers["www-authenticate"].startswith("Bearer")
    assert api.get("/api/v1/tokens", headers=ada).json() == []
    assert api.delete(f"/api/v1/tokens/{record['id']}", headers=ada).status_code == 404

    forged = {"Authorization": "Bearer cct_" + "A" * 43}
    assert api.get("/api/v1/videos", headers=forged).status_code == 401
    assert api.get("/api/v1/videos", headers={"Authorization": "Bearer cct_short"}).status_code \
        == 401


def test_last_use_is_recorded_at_most_once_a_minute(api, monkeypatch):
    ada = account(api, "ada")
    record, token = make_token(api, ada, scope="read", expires_in=None)
    assert record["expires_at"] is None and record["last_used_at"] is None

    def last_used() -> str | None:
        return api.get("/api/v1/tokens", headers=ada).json()[0]["last_used_at"]

    api.get("/api/v1/courses", headers=token)
    first = last_used()
    assert first is not None
    api.get("/api/v1/courses", headers=token)
    assert last_used() == first  # within the minute: not written again
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    monkeypatch.setattr(api_tokens, "_now", lambda: later)
    api.get("/api/v1/courses", headers=token)
    assert last_used() != first


def test_token_requests_are_validated(api):
    ada = account(api, "ada")
    for body in ({"name": ""}, {"name": "x", "scope": "admin"}, {"name": "x", "expires_in": 5},
                 {"name": "x", "secret": "mine"}):
        assert api.post("/api/v1/tokens", headers=ada, json=body).status_code == 422, body
    assert api.post("/api/v1/tokens", json={"name": "x"}).status_code == 401


def test_a_user_has_a_bounded_number_of_tokens(api, monkeypatch):
    monkeypatch.setattr(api_tokens, "MAX_TOKENS_PER_USER", 2)
    ada = account(api, "ada")
    make_token(api, ada)
    make_token(api, ada)
    refused = api.post("/api/v1/tokens", headers=ada, json={"name": "third"})
    assert refused.status_code == 409 and "revoke some" in refused.json()["error"]["message"]
    bob = account(api, "bob")  # per user
    make_token(api, bob)


def test_a_student_token_still_cannot_upload(api):
    sam = account(api, "sam", Role.STUDENT)
    _, token = make_token(api, sam, "upload")
    answer = api.post("/api/v1/uploads", headers=token, json={
        "filename": "lecture.mp4", "size": 1000, "content_type": "video/mp4"})
    assert answer.status_code == 403  # the scope never adds to what the owner may do
    assert api.get("/api/v1/courses", headers=token).status_code == 200

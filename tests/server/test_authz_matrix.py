"""Who may call what: every route of the OpenAPI schema, called as every kind of caller.

The parametrization comes from `app.openapi()["paths"]`, not from the table, so a new route
without an entry in `MATRIX` fails here (`... has no authorization matrix entry`) until someone
decides who may call it. Callers:

- `anonymous`: no `Authorization` header;
- `student`: a signed-in student (403 on instructor routes; reads only what is published);
- `other`: another instructor (404 on the owner's objects, never 403, so ids cannot be probed);
- `owner`: the instructor who owns the course, upload and videos used in the call;
- `admin`: an administrator (sees every object).

Every call is well-formed (valid body, real ids of fresh objects that belong to the owner), so the
status reflects authorization alone. Objects are created anew for each call, so destructive calls
(DELETE, complete, retry, logout) never affect another case, and every caller signs in afresh.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from coursecrafter_server.app import create_app
from coursecrafter_server.domain import Role, VideoStatus
from coursecrafter_server.settings import Settings
from coursecrafter_worker.signing import HEADER

PASSWORD = "correct horse battery"
CALLERS = ("anonymous", "student", "other", "owner", "admin")
USERS = {"student": Role.STUDENT, "other": Role.INSTRUCTOR, "owner": Role.INSTRUCTOR,
         "admin": Role.ADMIN}


# Expected statuses -------------------------------------------------------------------------------
def everyone(status: int) -> dict[str, int]:
    """Public: the same answer whoever calls (a bearer token changes nothing)."""
    return dict.fromkeys(CALLERS, status)


def signed_in(status: int) -> dict[str, int]:
    """Any account."""
    return {**everyone(status), "anonymous": 401}


def instructors(status: int) -> dict[str, int]:
    """Instructor routes that act on the caller's own things (lists, creation)."""
    return {**signed_in(status), "student": 403}


def owned(status: int) -> dict[str, int]:
    """Instructor routes on one of the owner's objects: another instructor gets 404."""
    return {**instructors(status), "other": 404}


def readable(status: int) -> dict[str, int]:
    """Reads of one of the owner's objects. Students read only published courses and their ready
    videos (tests/server/test_student_access.py); the objects here are unpublished or not ready,
    so for a student they do not exist."""
    return {**owned(status), "student": 404}


MATRIX: dict[tuple[str, str], dict[str, int]] = {
    # Auth: register/login/refresh/logout are public (a bearer token is simply not needed).
    ("POST", "/api/v1/auth/register"): everyone(201),
    ("POST", "/api/v1/auth/login"): everyone(200),
    ("POST", "/api/v1/auth/refresh"): everyone(200),
    ("POST", "/api/v1/auth/logout"): everyone(204),
    ("GET", "/api/v1/auth/me"): signed_in(200),
    # The browser app's cookie session: the cookie (or a password) is the credential, not a bearer
    # token. Called here without the cookie: refresh is 401 for anyone, sign-out always 204.
    ("POST", "/api/v1/session"): everyone(200),
    ("POST", "/api/v1/session/refresh"): everyone(401),
    ("DELETE", "/api/v1/session"): everyone(204),
    # Courses.
    ("GET", "/api/v1/courses"): signed_in(200),  # students: the published ones
    ("POST", "/api/v1/courses"): instructors(201),
    ("GET", "/api/v1/courses/{course_id}"): readable(200),
    ("PATCH", "/api/v1/courses/{course_id}"): owned(200),
    ("DELETE", "/api/v1/courses/{course_id}"): owned(204),
    # Uploads. Starting one into the owner's course is an action on the owner's object.
    ("POST", "/api/v1/uploads"): owned(201),
    ("POST", "/api/v1/uploads/{upload_id}/parts"): owned(200),
    ("GET", "/api/v1/uploads/{upload_id}/parts"): owned(200),
    ("POST", "/api/v1/uploads/{upload_id}/complete"): owned(200),
    ("DELETE", "/api/v1/uploads/{upload_id}"): owned(204),
    # Videos.
    ("GET", "/api/v1/videos"): signed_in(200),  # students: ready ones of published courses
    ("GET", "/api/v1/videos/{video_id}"): readable(200),
    ("PATCH", "/api/v1/videos/{video_id}"): owned(200),
    ("DELETE", "/api/v1/videos/{video_id}"): owned(204),
    ("POST", "/api/v1/videos/{video_id}/retry"): owned(200),
    # Automation tokens: personal; made, listed and revoked with a normal login (another user,
    # admins included, does not see the owner's token: 404).
    ("POST", "/api/v1/tokens"): signed_in(201),
    ("GET", "/api/v1/tokens"): signed_in(200),
    ("DELETE", "/api/v1/tokens/{token_id}"): {**owned(204), "student": 404, "admin": 404},
    # Playback: its own expiring token instead of a JWT; without it, nothing (for anyone).
    ("GET", "/api/v1/play/{token}/{path}"): everyone(404),
    # The worker webhook: an HMAC signature, never a JWT; without a valid one, 401 for anyone.
    ("POST", "/api/v1/internal/jobs/events"): everyone(401),
    # Probes and keys.
    ("GET", "/api/v1/healthz"): everyone(200),
    ("GET", "/api/v1/readyz"): everyone(200),
    ("GET", "/api/v1/metrics"): everyone(200),  # aggregate counts only: no ids, no users
    ("GET", "/.well-known/jwks.json"): everyone(200),
}


# The schema's operations (at collection time, from a throwaway app) ----------------------------
def _settings(home: Path, **overrides: Any) -> Settings:
    # As tests/conftest.py's settings_factory (module-scoped here, so the app is built once).
    base: dict[str, Any] = {
        "home": home,
        "database_url": "memory://",
        "public_url": "http://127.0.0.1:8000",
        "login_rate_limit_address": "10000/minute",
        "login_rate_limit_account": "10000/minute",
        "refresh_rate_limit_address": "10000/minute",
        "refresh_rate_limit_account": "10000/minute",
        "login_failure_limit_account_address": "10000/minute",
        "login_failure_limit_address": "10000/minute",
        "login_failure_limit_device": "10000/minute",
        "register_rate_limit_address": "10000/minute",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 8 * 1024,
        "argon2_parallelism": 1,
    }
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


def schema_operations() -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory() as home:
        app = create_app(_settings(Path(home)))
        try:
            paths = app.openapi()["paths"]
        finally:
            app.state.container.close()
    return [(method.upper(), path) for path, ops in paths.items() for method in ops]


OPERATIONS = schema_operations()
CASES = [(method, path, caller) for method, path in OPERATIONS for caller in CALLERS]


# The world: one app, its users; fresh objects per call -----------------------------------------
@dataclass
class World:
    api: TestClient
    ids: dict[str, str] = field(default_factory=dict)  # user ids by caller

    @property
    def container(self) -> Any:
        return self.api.app.state.container

    def login(self, caller: str) -> dict[str, Any]:
        response = self.api.post("/api/v1/auth/login",
                                 json={"username": f"mx-{caller}", "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("authz-home")
    # SQLite (the embedded default) and no transcoders: queued videos stay queued.
    settings = _settings(home, database_url=f"sqlite:///{home}/db.sqlite3",
                         transcode_concurrency=0)
    with TestClient(create_app(settings)) as api:
        w = World(api)
        for caller, role in USERS.items():
            user = w.container.auth.register(f"mx-{caller}", f"mx-{caller}@example.edu",
                                             PASSWORD, role)
            w.ids[caller] = user.id
        yield w


class Objects:
    """The owner's objects for one call, created on first use."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.api = world.api
        self._owner: dict[str, str] | None = None
        self.created: dict[str, str] = {}

    @property
    def owner(self) -> dict[str, str]:
        if self._owner is None:
            token = self.world.login("owner")["access_token"]
            self._owner = {"Authorization": f"Bearer {token}"}
        return self._owner

    def course(self) -> str:
        response = self.api.post("/api/v1/courses", json={"title": "Owner's course"},
                                 headers=self.owner)
        assert response.status_code == 201, response.text
        self.created["course"] = response.json()["id"]
        return self.created["course"]

    def upload(self, *, with_bytes: bool = False) -> dict[str, Any]:
        """An upload in progress (its one part already in storage when `with_bytes`)."""
        data = b"lecture" * 200
        response = self.api.post(
            "/api/v1/uploads", headers=self.owner,
            json={"filename": "lecture.mp4", "size": len(data), "content_type": "video/mp4",
                  "course_id": self.course()},
        )
        assert response.status_code == 201, response.text
        upload = response.json()
        if with_bytes:
            put = self.api.put(upload["parts"][0]["url"], content=data)
            assert put.status_code == 200, put.text
        self.created["upload"] = upload["upload_id"]
        self.created["video"] = upload["video_id"]
        return upload  # type: ignore[no-any-return]

    def queued_video(self) -> str:
        upload = self.upload(with_bytes=True)
        done = self.api.post(f"/api/v1/uploads/{upload['upload_id']}/complete",
                             headers=self.owner)
        assert done.status_code == 200 and done.json()["status"] == "queued", done.text
        return upload["video_id"]  # type: ignore[no-any-return]

    def api_token(self, scope: str = "upload") -> dict[str, Any]:
        """A fresh automation token of the owner (its record, with the secret)."""
        response = self.api.post("/api/v1/tokens", json={"name": "box", "scope": scope},
                                 headers=self.owner)
        assert response.status_code == 201, response.text
        self.created["token"] = response.json()["id"]
        return response.json()  # type: ignore[no-any-return]

    def _move(self, video_id: str, **changes: Any) -> None:
        store = self.world.container.store
        video = store.get_video(video_id)
        assert store.update_video(dataclasses.replace(video, **changes),
                                  expected_status=video.status)

    def failed_video(self) -> str:
        video_id = self.queued_video()
        self._move(video_id, status=VideoStatus.FAILED, error_code="transcode_failed",
                   error_message="ffmpeg exited with 1")
        return video_id

    def ready_video(self) -> str:
        video_id = self.queued_video()
        master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\n360p/index.m3u8\n"
        with tempfile.NamedTemporaryFile("w", suffix=".m3u8", delete=False) as f:
            f.write(master)
        try:
            self.world.container.storage.upload_file(
                f.name, f"videos/{video_id}/hls/master.m3u8", "application/vnd.apple.mpegurl")
        finally:
            Path(f.name).unlink()
        self._move(video_id, status=VideoStatus.READY, progress=100, duration=1.0,
                   width=640, height=360, renditions=({"height": 360, "bitrate": 800000},))
        return video_id


# How to call each route well-formed -------------------------------------------------------------
@dataclass
class Call:
    caller: str
    headers: dict[str, str]
    tokens: dict[str, Any] | None  # the caller's fresh token pair (None for anonymous)
    objects: Objects

    @property
    def refresh_token(self) -> str:
        # Anonymous callers hold a refresh token too (that is what refresh and logout are for).
        pair = self.tokens or self.objects.world.login("owner")
        return pair["refresh_token"]  # type: ignore[no-any-return]


Builder = Callable[[Call], dict[str, Any]]


def _signature_for(call: Call) -> dict[str, Any]:
    event = {"event_id": uuid.uuid4().hex, "job_id": uuid.uuid4().hex, "video_id": "v",
             "attempt": 1, "type": "started"}
    headers = {"content-type": "application/json"}
    if call.caller != "anonymous":  # a signed-in caller forges a signature: still 401
        headers[HEADER] = f"t={int(time.time())},v1={'0' * 64}"
    return {"content": json.dumps(event).encode(), "headers": headers}


def _new_account() -> dict[str, str]:
    name = f"new-{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.edu", "password": PASSWORD}


# Per route: path parameters and request options (json, params, content, extra headers).
REQUESTS: dict[tuple[str, str], Builder] = {
    ("POST", "/api/v1/auth/register"): lambda c: {"json": _new_account()},
    ("POST", "/api/v1/auth/login"): lambda c: {"json": {
        "username": f"mx-{c.caller if c.tokens else 'owner'}", "password": PASSWORD}},
    ("POST", "/api/v1/auth/refresh"): lambda c: {"json": {"refresh_token": c.refresh_token}},
    ("POST", "/api/v1/session"): lambda c: {"headers": {"X-CourseCrafter-CSRF": "1"}, "json": {
        "username": f"mx-{c.caller if c.tokens else 'owner'}", "password": PASSWORD}},
    ("POST", "/api/v1/session/refresh"): lambda c: {"headers": {"X-CourseCrafter-CSRF": "1"}},
    ("DELETE", "/api/v1/session"): lambda c: {"headers": {"X-CourseCrafter-CSRF": "1"}},
    ("POST", "/api/v1/auth/logout"): lambda c: {"json": {"refresh_token": c.refresh_token}},
    ("POST", "/api/v1/courses"): lambda c: {"json": {"title": "Another course"}},
    ("PATCH", "/api/v1/courses/{course_id}"): lambda c: {"json": {"title": "Renamed"}},
    ("POST", "/api/v1/uploads"): lambda c: {"json": {
        "filename": "lecture.mp4", "size": 1000, "content_type": "video/mp4",
        "course_id": c.objects.course()}},
    ("POST", "/api/v1/uploads/{upload_id}/parts"): lambda c: {"json": {"part_numbers": [1]}},
    ("PATCH", "/api/v1/videos/{video_id}"): lambda c: {"json": {"title": "Renamed"}},
    ("POST", "/api/v1/tokens"): lambda c: {"json": {"name": "capture box"}},
    ("POST", "/api/v1/internal/jobs/events"): _signature_for,
}

# Which object each path parameter names, per route (default: the obvious one).
VIDEO_FOR: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/videos/{video_id}/retry"): "failed",
}


def _url(method: str, path: str, objects: Objects) -> str:
    params: dict[str, str] = {}
    if "{course_id}" in path:
        params["course_id"] = objects.course()
    if "{upload_id}" in path:
        with_bytes = path.endswith("/complete")
        params["upload_id"] = objects.upload(with_bytes=with_bytes)["upload_id"]
    if "{video_id}" in path:
        kind = VIDEO_FOR.get((method, path), "queued")
        params["video_id"] = getattr(objects, f"{kind}_video")()
    if "{token_id}" in path:
        params["token_id"] = objects.api_token()["id"]
    if "{token}" in path:  # a made-up token: the real one is tested below
        params["token"] = f"{objects.ready_video()}.99999999999.p.{'0' * 32}"
    if "{path}" in path:
        params["path"] = "hls/master.m3u8"
    return path.format(**params)


def _case_id(case: tuple[str, str, str]) -> str:
    method, path, caller = case
    return f"{method} {path} as {caller}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_route_answers_each_caller_as_the_matrix_says(world: World, case) -> None:
    method, path, caller = case
    expected = MATRIX.get((method, path))
    assert expected is not None, (
        f"{method} {path} has no authorization matrix entry: add one to MATRIX (and to "
        f"REQUESTS if it needs a body) in {__file__}")
    objects = Objects(world)
    tokens = world.login(caller) if caller != "anonymous" else None
    headers = {"Authorization": f"Bearer {tokens['access_token']}"} if tokens else {}
    call = Call(caller, headers, tokens, objects)

    url = _url(method, path, objects)
    options = REQUESTS.get((method, path), lambda c: {})(call)
    options["headers"] = {**headers, **options.get("headers", {})}
    response = world.api.request(method, url, **options)

    assert response.status_code == expected[caller], (
        f"{method} {url} as {caller}: expected {expected[caller]}, got "
        f"{response.status_code}: {response.text[:500]}")
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    if response.status_code == 401 and caller == "anonymous" and path.startswith("/api/v1/") \
            and "internal" not in path:
        assert response.headers.get("www-authenticate", "").startswith("Bearer")
    if caller in ("student", "other") and response.status_code < 300:
        # Nothing of the owner's may leak into what others are shown.
        for name, object_id in objects.created.items():
            assert object_id not in response.text, f"{caller} was shown the owner's {name}"


def test_matrix_has_no_stale_entries() -> None:
    """Entries for routes that no longer exist would hide a renamed route's missing entry."""
    stale = (set(MATRIX) | set(REQUESTS) | set(VIDEO_FOR)) - set(OPERATIONS)
    assert not stale, f"matrix entries for routes not in the schema: {sorted(stale)}"


# Automation tokens as callers ------------------------------------------------------------------
TOKEN_CASES = [(method, path, scope) for method, path in OPERATIONS
               if MATRIX.get((method, path), {}).get("anonymous") == 401
               and MATRIX[(method, path)]["owner"] != 401 for scope in ("upload", "read")]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[_case_id(c) for c in TOKEN_CASES])
def test_an_automation_token_reaches_only_what_its_scope_allows(world: World, case) -> None:
    """The owner's `upload`/`read` token on every authenticated route: the owner's answer where
    its scope allows the route (api/deps.py TOKEN_SCOPE_ROUTES), 403 everywhere else."""
    from coursecrafter_server.api.deps import TOKEN_SCOPE_ROUTES
    from coursecrafter_server.domain import TokenScope

    method, path, scope = case
    objects = Objects(world)
    secret = objects.api_token(scope)["token"]
    headers = {"Authorization": f"Bearer {secret}"}
    url = _url(method, path, objects)
    call = Call("owner", headers, world.login("owner"), objects)
    options = REQUESTS.get((method, path), lambda c: {})(call)
    options["headers"] = {**headers, **options.get("headers", {})}
    response = world.api.request(method, url, **options)

    allowed = (method, path.removeprefix("/api/v1")) in TOKEN_SCOPE_ROUTES[TokenScope(scope)]
    expected = MATRIX[(method, path)]["owner"] if allowed else 403
    assert response.status_code == expected, (
        f"{method} {url} with a {scope} token: expected {expected}, got "
        f"{response.status_code}: {response.text[:500]}")


# Playback with its token, and the probes outside the schema --------------------------------------
@pytest.mark.parametrize("caller", CALLERS)
def test_playback_token_is_the_only_credential(world: World, caller: str) -> None:
    objects = Objects(world)
    video_id = objects.ready_video()
    video = world.api.get(f"/api/v1/videos/{video_id}", headers=objects.owner).json()
    url = video["playback_url"].replace("http://127.0.0.1:8000", "")
    headers = {}
    if caller != "anonymous":
        headers = {"Authorization": f"Bearer {world.login(caller)['access_token']}"}
    response = world.api.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.text.startswith("#EXTM3U")
    token = url.split("/")[4]
    tampered = url.replace(token, token[:-1] + ("1" if token[-1] == "0" else "0"))
    assert world.api.get(tampered, headers=headers).status_code == 404
    other_video = url.replace(video_id, objects.ready_video())  # the token is per video
    assert world.api.get(other_video, headers=headers).status_code == 404


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_root_probes_need_no_credentials(world: World, path: str) -> None:
    assert world.api.get(path).status_code == 200

"""Schemathesis against a real `coursecrafter-server` process: every operation of the served
OpenAPI schema, with generated valid and invalid input (and unsupported methods), must answer
without a server error, with a status code and content type the schema documents, a body that
matches the schema documented for that status, and must refuse calls without credentials where
it declares them required (`ignored_auth`). Generation is randomized (new examples on every run);
a failure names the operation and prints a `curl` reproducer and the Hypothesis seed.
`pytest -s` prints how often each operation answered each status.

The server runs the embedded default (SQLite, local blobs) with no in-process transcoders. An
instructor is signed in for every call, and about half of the generated path parameters (and
`course_id` in bodies and queries) are swapped for the ids of real objects of that instructor, so
the fuzzing reaches past "404 not found" into the handlers. Objects a call destroys (DELETE, a
completed upload) are replaced by fresh ones on next use.

Nothing is excluded. `POST /auth/logout` gets its own freshly signed-in session per example instead
of the shared one, since a logout revokes the access token it is called with (every later call
would then only see 401).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from livesupport import LiveServer, start_live_server
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
# Per operation; about 30 s in all on 2 cores. Raise it for a deeper (nightly) run.
MAX_EXAMPLES = int(os.environ.get("COURSECRAFTER_FUZZ_EXAMPLES", "25"))
# In the server log: a traceback, or a record at ERROR or above (ours: `<date> <time> ERROR
# <logger>: ...`, e.g. the 500 handler's "unhandled error"; uvicorn's: `ERROR:    ...`, e.g.
# "Exception in ASGI application"). The access log is off (main.py), so no status lines.
SERVER_TROUBLE = re.compile(
    r"^Traceback \(most recent call last\)|^\S+ \S+ (?:ERROR|CRITICAL) |^(?:ERROR|CRITICAL):",
    re.M)
CHECKS = [ignored_auth, not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


class Fuzzer:
    """The live server, a signed-in instructor and a pool of that instructor's real objects."""

    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, timeout=30)
        self.http.post("/api/v1/auth/register", json={
            "username": "fuzzer", "email": "fuzzer@example.edu", "password": PASSWORD,
        }).raise_for_status()
        self.auth = self.login()
        self.pool: dict[str, str] = {}
        self.seen: Counter[tuple[str, str, int]] = Counter()

    def close(self) -> None:
        self.http.close()

    def login(self) -> dict[str, str]:
        response = self.http.post("/api/v1/auth/login",
                                  json={"username": "fuzzer", "password": PASSWORD})
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}

    # Real objects, created on first use and again after a call used them up ------------------
    def real(self, kind: str) -> str:
        if kind not in self.pool:
            self.pool[kind] = getattr(self, f"_new_{kind}")()
        return self.pool[kind]

    def forget(self, value: str) -> None:
        self.pool = {k: v for k, v in self.pool.items() if v != value}

    def _new_course(self) -> str:
        response = self.http.post("/api/v1/courses", json={"title": "Fuzzing 101"},
                                  headers=self.auth)
        response.raise_for_status()
        return str(response.json()["id"])

    def _start_upload(self, data: bytes) -> dict[str, Any]:
        response = self.http.post("/api/v1/uploads", headers=self.auth, json={
            "filename": "lecture.mp4", "size": len(data), "content_type": "video/mp4",
            "course_id": self.real("course"),
        })
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def _new_upload(self) -> str:
        return str(self._start_upload(b"x" * 1000)["upload_id"])

    def _new_video(self) -> str:
        data = b"lecture" * 200
        upload = self._start_upload(data)
        self.http.put(upload["parts"][0]["url"], content=data).raise_for_status()
        self.http.post(f"/api/v1/uploads/{upload['upload_id']}/complete",
                       headers=self.auth).raise_for_status()
        return str(upload["video_id"])

    # Steering generated cases towards real ids ---------------------------------------------
    @staticmethod
    def _heads(value: Any) -> bool:
        """A deterministic coin flip per generated value (Hypothesis stays reproducible)."""
        return hashlib.sha256(repr(value).encode()).digest()[0] % 2 == 0

    def steer(self, case: Any) -> None:
        for name, value in list((case.path_parameters or {}).items()):
            kind = name.removesuffix("_id")
            if kind in ("course", "upload", "video") and self._heads(value):
                case.path_parameters[name] = self.real(kind)
        if case.query and "course_id" in case.query and self._heads(case.query["course_id"]):
            case.query["course_id"] = self.real("course")
        body = case.body
        if isinstance(body, dict) and "course_id" in body and self._heads(body["course_id"]):
            body["course_id"] = self.real("course")
        if isinstance(body, dict) and isinstance(body.get("content_type"), str) \
                and self._heads(body["content_type"]):
            body["content_type"] = "video/mp4"  # a random type is nearly always a 415

    def after(self, case: Any, response: Any) -> None:
        self.seen[(case.method.upper(), case.path, response.status_code)] += 1
        used_up = (case.method.upper() == "DELETE" and response.status_code == 204) or (
            case.path.endswith("/complete") and response.status_code == 200)
        if used_up:
            for value in (case.path_parameters or {}).values():
                self.forget(value)


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    server = start_live_server(tmp_path_factory.mktemp("fuzz-home"), {
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0",
        # Generated logins must not lock out the fuzzer's own (429s are covered elsewhere).
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ADDRESS": "100000/minute",
        "COURSECRAFTER_LOGIN_RATE_LIMIT_ACCOUNT": "100000/minute",
        "COURSECRAFTER_REFRESH_RATE_LIMIT_ADDRESS": "100000/minute",
        "COURSECRAFTER_REFRESH_RATE_LIMIT_ACCOUNT": "100000/minute",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ACCOUNT_ADDRESS": "100000/minute",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_ADDRESS": "100000/minute",
        "COURSECRAFTER_LOGIN_FAILURE_LIMIT_DEVICE": "100000/minute",
        "COURSECRAFTER_REGISTER_RATE_LIMIT_ADDRESS": "100000/minute",
    })
    fuzzer = Fuzzer(server)
    try:
        yield fuzzer
    finally:
        print("\nresponses per operation (pytest -s shows this):")
        for (method, path, code), n in sorted(fuzzer.seen.items()):
            print(f"  {n:4d} x {code} {method} {path}")
        fuzzer.close()
        server.stop()
    # Whatever the client saw, the server must not have logged a traceback or an error (an
    # exception that reached the 500 handler, escaped a background task, broke uvicorn).
    log = server.log()
    assert not SERVER_TROUBLE.search(log), "\n".join(
        line for line in log.splitlines() if SERVER_TROUBLE.search(line))[:5000] + \
        f"\n----- server log -----\n{log[-20000:]}"


def _app_schema() -> dict[str, Any]:
    """The schema the app serves, built at collection time from a throwaway app.

    `schemathesis.pytest.from_fixture` (a schema loaded from the live server by a fixture) does
    not run under pytest 9 (schemathesis 4.32 reads the removed `Item._nodeid`), and
    `from_url` at import time would start a server during collection. So the operations come
    from the same app factory, every call goes to the live server (`base_url`), and
    `test_live_server_serves_this_schema` proves the two schemas are one."""
    from coursecrafter_server.app import create_app
    from coursecrafter_server.settings import Settings

    with tempfile.TemporaryDirectory() as home:
        app = create_app(Settings(_env_file=None, home=Path(home),  # type: ignore[call-arg]
                                  database_url="memory://"))
        try:
            return app.openapi()
        finally:
            app.state.container.close()


APP_SCHEMA = _app_schema()
schema = schemathesis.openapi.from_dict(APP_SCHEMA)
schema.config.generation.update(max_examples=MAX_EXAMPLES)


def test_live_server_serves_this_schema(fuzzer: Fuzzer) -> None:
    served = schemathesis.openapi.from_url(f"{fuzzer.server.url}/openapi.json")
    assert served.raw_schema == APP_SCHEMA


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
          database=None)
def test_api_conforms_to_its_schema(case: Any, fuzzer: Fuzzer) -> None:
    fuzzer.steer(case)
    headers = fuzzer.login() if case.path == "/api/v1/auth/logout" else fuzzer.auth
    response = case.call_and_validate(base_url=fuzzer.server.url, headers=headers, checks=CHECKS)
    fuzzer.after(case, response)

"""Test doubles of the CLI/SDK tests (imported by conftest.py and the tests).

:class:`FakeAuthAPI` implements the auth part of the REST API closely enough to catch a
client that misbehaves: refresh tokens rotate on every use, and presenting a used one again
revokes its whole family (RFC 9700 reuse detection) and is counted in ``reuse_detected``.
It is an ``httpx.MockTransport`` handler; :func:`serve_fake` also serves it over real HTTP
for tests that run the ``coursecrafter`` command in subprocesses.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import keyring.backend

# --------------------------------------------------------------------------- keyring


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A process-local keyring so tests never touch the developer's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        from keyring.errors import PasswordDeleteError

        if (service, username) not in self.entries:
            raise PasswordDeleteError("not found")
        del self.entries[(service, username)]


# --------------------------------------------------------------------------- fake API


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None,
           **extra: Any) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": message, **extra}}, headers=headers
    )


@dataclass
class _Refresh:
    username: str
    family: str
    used: bool = False


@dataclass
class _Access:
    username: str
    valid: bool = True


@dataclass
class FakeAuthAPI:
    expires_in: int = 900
    refresh_delay: float = 0.0  # widen race windows in concurrency tests
    down: bool = False  # every request fails to connect
    login_retry_after: int | None = None  # answer logins with 429
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    refresh_presented: list[str] = field(default_factory=list)
    reuse_detected: int = 0
    issued: list[str] = field(default_factory=list)  # every token handed out
    revoked_families: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._access: dict[str, _Access] = {}
        self._refresh: dict[str, _Refresh] = {}

    # -- helpers for tests
    def add_user(self, username: str = "alice", password: str = "s3cret-pass!",
                 email: str | None = None, role: str = "instructor") -> dict[str, Any]:
        user = {"id": f"u-{len(self.users) + 1}", "username": username,
                "email": email or f"{username}@example.com", "role": role}
        self.users[username] = {**user, "password": password}
        return user

    def expire_access_tokens(self) -> None:
        """The server now refuses every access token issued so far (as if expired)."""
        with self._lock:
            for a in self._access.values():
                a.valid = False

    def revoke_all_sessions(self) -> None:
        """Every refresh family dies and every access token is refused."""
        with self._lock:
            self.revoked_families.update(r.family for r in self._refresh.values())
            for a in self._access.values():
                a.valid = False

    @property
    def refresh_count(self) -> int:
        return len(self.refresh_presented)

    def endpoint_calls(self, endpoint: str) -> int:
        return sum(1 for c in self.calls if c == endpoint)

    # -- the handler
    def _issue(self, username: str, family: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        self._access[access] = _Access(username)
        self._refresh[refresh] = _Refresh(username, family)
        self.issued += [access, refresh]
        return {"access_token": access, "refresh_token": refresh, "token_type": "bearer",
                "expires_in": self.expires_in}

    def _bearer_user(self, request: httpx.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        a = self._access.get(header[len("Bearer "):])
        return a.username if a and a.valid else None

    def _public(self, username: str) -> dict[str, Any]:
        return {k: v for k, v in self.users[username].items() if k != "password"}

    def handler(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
        path = request.url.path
        assert path.startswith("/api/v1/"), path
        endpoint = f"{request.method} {path[len('/api/v1'):]}"
        body = json.loads(request.content) if request.content else {}
        delay = 0.0
        with self._lock:
            self.calls.append(endpoint)
            response, delay = self._dispatch(endpoint, request, body)
        if delay:
            time.sleep(delay)
        return response

    def _dispatch(self, endpoint: str, request: httpx.Request,
                  body: dict[str, Any]) -> tuple[httpx.Response, float]:
        if endpoint == "POST /auth/register":
            username, password = body.get("username"), body.get("password", "")
            if username in self.users:
                return _error(409, "conflict", "username already taken"), 0
            if "@" not in (body.get("email") or ""):  # shaped like the server's 422s
                fields = [{"field": "email", "message": "value is not a valid email address"}]
                return _error(422, "validation_error",
                              "email: value is not a valid email address", fields=fields), 0
            if len(password) < 8:
                return _error(422, "weak_password", "password too weak: use at least 8 characters"), 0
            return httpx.Response(201, json=self.add_user(username, password, body.get("email"))), 0

        if endpoint == "POST /auth/login":
            if self.login_retry_after is not None:
                return _error(429, "rate_limited", "too many login attempts",
                              headers={"Retry-After": str(self.login_retry_after)}), 0
            user = self.users.get(body.get("username"))
            if not user or user["password"] != body.get("password"):
                return _error(401, "invalid_credentials", "invalid username or password"), 0
            return httpx.Response(200, json=self._issue(user["username"], secrets.token_hex(8))), 0

        if endpoint == "POST /auth/refresh":
            token = body.get("refresh_token", "")
            self.refresh_presented.append(token)
            r = self._refresh.get(token)
            if r is None or r.family in self.revoked_families:
                return _error(401, "invalid_token", "invalid refresh token"), 0
            if r.used:  # reuse: someone replayed a rotated token
                self.reuse_detected += 1
                self.revoked_families.add(r.family)
                return _error(401, "invalid_token", "refresh token reused"), 0
            r.used = True
            return httpx.Response(200, json=self._issue(r.username, r.family)), self.refresh_delay

        if endpoint == "POST /auth/logout":
            if self._bearer_user(request) is None:
                return _error(401, "invalid_token", "invalid access token"), 0
            r = self._refresh.get(body.get("refresh_token", ""))
            if r is not None:
                self.revoked_families.add(r.family)
            self._access[request.headers["Authorization"][7:]].valid = False
            return httpx.Response(204), 0

        if endpoint == "GET /auth/me":
            username = self._bearer_user(request)
            if username is None:
                return _error(401, "invalid_token", "invalid or expired access token"), 0
            return httpx.Response(200, json=self._public(username)), 0

        return _error(404, "not_found", "no such endpoint"), 0


# --------------------------------------------------------------------------- real HTTP


def serve_fake(api: FakeAuthAPI) -> tuple[ThreadingHTTPServer, str]:
    """Serve ``api`` over HTTP on 127.0.0.1 (in a daemon thread); return (server, url)."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            content = self.rfile.read(length) if length else b""
            request = httpx.Request(self.command, f"http://{self.headers['Host']}{self.path}",
                                    headers=dict(self.headers.items()), content=content)
            response = api.handler(request)
            response.read()
            self.send_response(response.status_code)
            for k, v in response.headers.items():
                if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_DELETE = do_PUT = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"

"""A fake of the instructor's REST API (courses, videos, automation tokens) for the SDK and
in-process CLI tests of `courses publish|unpublish|rename|delete|show`, `videos rename|delete`,
`open` and `token create|list|revoke`, as an ``httpx.MockTransport`` handler.

Auth goes to :class:`cli_fakes.FakeAuthAPI` (login, refresh with rotation...). Besides its access
tokens, the fake accepts the automation tokens it created (``cct_...``) as bearer tokens, with
the server's rules: an ``upload``/``read`` token may only read here (403 otherwise), a revoked one
gets 401, and tokens are made and revoked only with a normal login (403 with a token).
Objects of another owner answer 404, as the real server does."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import httpx
from cli_fakes import FakeAuthAPI

NOW = "2026-11-30T06:00:00Z"


def _error(status: int, code: str, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}})


@dataclass
class ManageAPI:
    auth: FakeAuthAPI = field(default_factory=FakeAuthAPI)
    courses: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id; has "secret"
    owners: dict[str, str] = field(default_factory=dict)  # object id -> username
    requests: list[tuple[str, str, Any]] = field(default_factory=list)  # (method, path, body)

    # -- objects for tests
    def course(self, title: str, owner: str = "alice", published: bool = False) -> str:
        cid = f"c{len(self.courses) + 1}"
        self.courses[cid] = {"id": cid, "title": title, "description": "", "published": published,
                             "created_at": NOW, "updated_at": NOW}
        self.owners[cid] = owner
        return cid

    def video(self, title: str, course_id: str | None, owner: str = "alice",
              kind: str = "video", status: str = "ready") -> str:
        vid = f"v{len(self.videos) + 1}"
        self.videos[vid] = {"id": vid, "kind": kind, "course_id": course_id, "title": title,
                            "status": status, "progress": 100, "phase": None, "error": None}
        self.owners[vid] = owner
        return vid

    # -- the handler
    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path[len("/api/v1"):]
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, path, body))
        if path.startswith("/auth/") and not self._token_of(request):
            return self.auth.handler(request)
        header = request.headers.get("Authorization", "")
        token = self._token_of(request)
        if token is not None:
            if token.get("revoked"):
                return _error(401, "invalid_token", "automation token is invalid or revoked")
            user, scope = token["owner"], token["scope"]
            if path.startswith("/tokens"):
                return _error(403, "forbidden", "automation tokens need a normal login")
            if request.method != "GET":
                return _error(403, "forbidden", f"a {scope} token cannot do this")
        else:
            access = self.auth._access.get(header[len("Bearer "):]) if header else None
            if access is None or not access.valid:
                return _error(401, "invalid_token", "invalid or expired access token")
            user = access.username
        if path == "/auth/me":
            return httpx.Response(200, json=self.auth._public(user))
        return self._api(request.method, path.strip("/").split("/"), request, body, user)

    def _token_of(self, request: httpx.Request) -> dict[str, Any] | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer cct_"):
            return None
        secret = header[len("Bearer "):]
        found = next((t for t in self.tokens.values() if t["secret"] == secret), None)
        return found or {"revoked": True}

    def _mine(self, object_id: str, user: str, table: dict[str, Any]) -> bool:
        return object_id in table and self.owners.get(object_id) == user

    def _course_out(self, cid: str) -> dict[str, Any]:
        inside = [v for v in self.videos.values() if v["course_id"] == cid]
        return {**self.courses[cid],
                "lecture_count": sum(v["kind"] == "video" for v in inside),
                "attachment_count": sum(v["kind"] == "attachment" for v in inside)}

    def _api(self, method: str, parts: list[str], request: httpx.Request, body: Any,
             user: str) -> httpx.Response:
        if parts == ["courses"] and method == "GET":
            return httpx.Response(200, json=[self._course_out(c) for c in self.courses
                                             if self.owners[c] == user])
        if parts[0] == "courses" and len(parts) == 2:
            if not self._mine(parts[1], user, self.courses):
                return _error(404, "not_found", "course not found")
            if method == "PATCH":
                self.courses[parts[1]].update(body)
            if method == "DELETE":
                del self.courses[parts[1]]
                return httpx.Response(204)
            return httpx.Response(200, json=self._course_out(parts[1]))
        if parts == ["videos"] and method == "GET":
            course = request.url.params.get("course_id")
            if course is not None and not self._mine(course, user, self.courses):
                return _error(404, "not_found", "course not found")
            return httpx.Response(200, json=[
                v for i, v in self.videos.items() if self.owners[i] == user
                and (course is None or v["course_id"] == course)])
        if parts[0] == "videos" and len(parts) == 2:
            if not self._mine(parts[1], user, self.videos):
                return _error(404, "not_found", "video not found")
            if method == "PATCH":
                self.videos[parts[1]]["title"] = body["title"]
            if method == "DELETE":
                del self.videos[parts[1]]
                return httpx.Response(204)
            return httpx.Response(200, json=self.videos[parts[1]])
        if parts == ["tokens"] and method == "POST":
            tid = f"t{len(self.tokens) + 1}"
            secret = "cct_" + secrets.token_urlsafe(32)
            self.tokens[tid] = {"id": tid, "name": body["name"], "scope": body.get("scope"),
                                "expires_in": body.get("expires_in"), "owner": user,
                                "secret": secret}
            return httpx.Response(201, json={
                "id": tid, "name": body["name"], "scope": body.get("scope"), "token": secret,
                "created_at": NOW, "expires_at": None if body.get("expires_in") is None
                else "2027-02-28T06:00:00Z", "last_used_at": None})
        if parts == ["tokens"] and method == "GET":
            return httpx.Response(200, json=[
                {"id": t["id"], "name": t["name"], "scope": t["scope"], "created_at": NOW,
                 "expires_at": None, "last_used_at": None}
                for t in self.tokens.values() if t["owner"] == user and not t.get("revoked")])
        if parts[0] == "tokens" and len(parts) == 2 and method == "DELETE":
            token = self.tokens.get(parts[1])
            if token is None or token["owner"] != user or token.get("revoked"):
                return _error(404, "not_found", "token not found")
            token["revoked"] = True
            return httpx.Response(204)
        return _error(404, "not_found", "Not Found")

"""A fake CourseCrafter server *and* object storage for the upload tests, as one httpx transport.

:class:`FakeCourseCrafter` answers ``/api/v1/auth/*`` with :class:`cli_fakes.FakeAuthAPI`, and
implements ``/courses``, ``/uploads`` (start, sign, list parts, complete, abort) and ``/videos``
(get, list, retry, with a scripted status sequence for ``wait``) the way the real server does.
Part URLs point at ``http://storage.test/...`` with a signature token; the storage side consumes
the PUT body chunk by chunk (never buffering it, so memory tests measure the client), checks the
``Content-Length``, and records size + MD5 (and the bytes when ``keep_data``).

Faults are queued per part number in ``faults``: the next PUT of that part gets the first one:

* ``"500"``, ``"503"``, ``"429"``: that status (``Retry-After: 0`` on 429/503);
* ``"403"``: refused, as if the URL had expired;
* ``"bad_etag"``: stored, but answered with an ETag that is not the body's MD5;
* ``"reset"``: the connection breaks halfway through the body (``httpx.WriteError``);
* ``"404"``: storage has no such upload;
* ``"interrupt"``: ``KeyboardInterrupt`` in the thread sending the part.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from cli_fakes import FakeAuthAPI

STORAGE_HOST = "storage.test"
MIB = 1024 * 1024


def _error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message}},
                          headers=headers or None)


@dataclass
class StoredPart:
    size: int
    md5: str
    etag: str
    data: bytes | None = None


@dataclass
class FakeUpload:
    id: str
    video_id: str
    size: int
    part_size: int
    part_count: int
    status: str = "active"
    parts: dict[int, StoredPart] = field(default_factory=dict)

    def part_length(self, n: int) -> int:
        return self.size - self.part_size * (self.part_count - 1) if n == self.part_count else self.part_size


class FakeCourseCrafter(httpx.BaseTransport):
    def __init__(self, *, part_size: int = MIB, first_batch: int = 32, keep_data: bool = True,
                 url_ttl: int = 3600) -> None:
        self.auth = FakeAuthAPI()
        self.auth.add_user("alice", "s3cret-pass!")
        self.auth.add_user("bob", "s3cret-pass!")
        self.part_size = part_size
        self.first_batch = first_batch
        self.keep_data = keep_data
        self.url_ttl = url_ttl
        self.lock = threading.Lock()
        self.courses: dict[str, dict[str, Any]] = {}
        self.course_owner: dict[str, str] = {}
        self.videos: dict[str, dict[str, Any]] = {}
        self.video_owner: dict[str, str] = {}
        self.uploads: dict[str, FakeUpload] = {}
        self.signatures: dict[str, tuple[str, int]] = {}  # token -> (upload id, part)
        self.expired: set[str] = set()
        self.faults: dict[int, list[str]] = {}
        self.puts: list[tuple[int, int]] = []  # (part number, status) of every PUT
        self.api_calls: list[str] = []
        self.sign_requests: list[list[int]] = []
        self.created: list[dict[str, Any]] = []  # POST /uploads bodies
        self.video_script: dict[str, list[dict[str, Any]]] = {}  # id -> successive GET updates
        self.put_active = 0
        self.put_active_max = 0
        self.retry_supported = True

    # ------------------------------------------------------------------ helpers for tests
    def expire_urls(self) -> None:
        """Every part URL signed so far is refused from now on (403)."""
        with self.lock:
            self.expired.update(self.signatures)

    def only_upload(self) -> FakeUpload:
        assert len(self.uploads) == 1, list(self.uploads)
        return next(iter(self.uploads.values()))

    def assembled(self, upload: FakeUpload) -> bytes:
        return b"".join(upload.parts[n].data or b"" for n in range(1, upload.part_count + 1))

    def puts_of(self, status: int | None = None) -> list[int]:
        return [n for n, s in self.puts if status is None or s == status]

    # ------------------------------------------------------------------ transport
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == STORAGE_HOST:
            return self._storage(request)
        request.read()
        path = request.url.path
        assert path.startswith("/api/v1/"), path
        if path.startswith("/api/v1/auth/"):
            return self.auth.handler(request)
        endpoint = f"{request.method} {path[len('/api/v1'):]}"
        with self.lock:
            self.api_calls.append(endpoint)
        user = self.auth._bearer_user(request)
        if user is None:
            return _error(401, "invalid_token", "invalid or expired access token")
        body = json.loads(request.content) if request.content else {}
        return self._api(endpoint, request, body, user)

    # ------------------------------------------------------------------ API
    def _api(self, endpoint: str, request: httpx.Request, body: dict[str, Any],
             user: str) -> httpx.Response:
        method, path = endpoint.split(" ", 1)
        parts = path.strip("/").split("/")
        now = "2024-05-01T10:00:00Z"
        if endpoint == "POST /courses":
            course = {"id": uuid.uuid4().hex, "title": body["title"],
                      "description": body.get("description", ""), "published": False,
                      "created_at": now, "updated_at": now}
            self.courses[course["id"]] = course
            self.course_owner[course["id"]] = user
            return httpx.Response(201, json=course)
        if endpoint == "GET /courses":
            return httpx.Response(200, json=[c for i, c in self.courses.items()
                                             if self.course_owner[i] == user])
        if endpoint == "POST /uploads":
            return self._start(body, user)
        if parts[0] == "uploads" and len(parts) >= 2:
            with self.lock:
                upload = self.uploads.get(parts[1])
            if upload is None or self.video_owner.get(upload.video_id) != user:
                return _error(404, "not_found", "upload not found")
            if method == "POST" and parts[2:] == ["parts"]:
                if upload.status != "active":
                    return _error(409, "invalid_state", f"the upload was {upload.status}; start a new upload")
                numbers = body.get("part_numbers") or list(range(1, min(upload.part_count, 200) + 1))
                if len(numbers) > 200 or any(not 1 <= n <= upload.part_count for n in numbers):
                    return _error(422, "invalid_part_numbers", "bad part numbers")
                with self.lock:
                    self.sign_requests.append(list(numbers))
                return httpx.Response(200, json={"parts": self._sign(upload, sorted(set(numbers))),
                                                 "url_expires_in": self.url_ttl})
            if method == "GET" and parts[2:] == ["parts"]:
                held = [] if upload.status != "active" else [
                    {"part_number": n, "size": p.size, "etag": p.etag}
                    for n, p in sorted(upload.parts.items())]
                return httpx.Response(200, json={
                    "upload_id": upload.id, "video_id": upload.video_id, "status": upload.status,
                    "size": upload.size, "part_size": upload.part_size,
                    "part_count": upload.part_count, "parts": held})
            if method == "POST" and parts[2:] == ["complete"]:
                return self._complete(upload, body)
            if method == "DELETE" and len(parts) == 2:
                upload.status = "aborted"
                return httpx.Response(204)
        if endpoint == "GET /videos":
            course = request.url.params.get("course_id")
            return httpx.Response(200, json=[
                v for i, v in self.videos.items() if self.video_owner[i] == user
                and (course is None or v["course_id"] == course)])
        if parts[0] == "videos" and len(parts) >= 2:
            video = self.videos.get(parts[1])
            if video is None or self.video_owner[parts[1]] != user:
                return _error(404, "not_found", "video not found")
            if method == "GET" and len(parts) == 2:
                script = self.video_script.get(video["id"])
                if script:
                    video.update(script.pop(0))
                return httpx.Response(200, json=video)
            if method == "POST" and parts[2:] == ["retry"]:
                if not self.retry_supported:
                    return _error(404, "not_found", "Not Found")
                if video["status"] != "failed":
                    return _error(409, "invalid_state", "only a failed video can be retried")
                video.update(status="queued", error=None, progress=0, phase=None)
                return httpx.Response(200, json=video)
        return _error(404, "not_found", "Not Found")

    def _video(self, body: dict[str, Any], user: str) -> dict[str, Any]:
        name = body["filename"]
        video = {
            "id": uuid.uuid4().hex, "kind": body.get("kind", "video"),
            "course_id": body.get("course_id"), "title": body.get("title") or name.rsplit(".", 1)[0],
            "filename": name, "content_type": body["content_type"], "size": body["size"],
            "status": "awaiting_upload", "progress": 0, "phase": None, "error": None,
            "duration": None, "width": None, "height": None, "renditions": [],
            "playback_url": None, "poster_url": None, "download_url": None,
            "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:00:00Z",
        }
        self.videos[video["id"]] = video
        self.video_owner[video["id"]] = user
        return video

    def _start(self, body: dict[str, Any], user: str) -> httpx.Response:
        self.created.append(body)
        ctype = body["content_type"]
        if body.get("kind", "video") == "video" and ctype.split("/")[0] not in ("video", "audio") \
                and ctype != "application/octet-stream":
            return _error(415, "unsupported_media_type",
                          f"{ctype!r} is not a video or audio type; send slides and notes with "
                          "kind=attachment")
        if body["size"] <= 0:
            return _error(422, "size_mismatch", "the file is empty: nothing to upload")
        course = body.get("course_id")
        if course is not None and self.course_owner.get(course) != user:
            return _error(404, "not_found", "course not found")
        video = self._video(body, user)
        count = -(-body["size"] // self.part_size)
        upload = FakeUpload(uuid.uuid4().hex, video["id"], body["size"], self.part_size, count)
        with self.lock:
            self.uploads[upload.id] = upload
        first = list(range(1, min(count, self.first_batch) + 1))
        return httpx.Response(201, json={
            "upload_id": upload.id, "video_id": video["id"], "key": f"uploads/{video['id']}/source",
            "size": upload.size, "part_size": upload.part_size, "part_count": count,
            "expires_at": "2024-05-02T10:00:00Z", "url_expires_in": self.url_ttl,
            "parts": self._sign(upload, first)})

    def _sign(self, upload: FakeUpload, numbers: list[int]) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for n in numbers:
                token = secrets.token_hex(8)
                self.signatures[token] = (upload.id, n)
                out.append({"part_number": n, "url": f"http://{STORAGE_HOST}/b/uploads/"
                            f"{upload.video_id}/source?uploadId={upload.id}&partNumber={n}&sig={token}"})
        return out

    def _complete(self, upload: FakeUpload, body: dict[str, Any]) -> httpx.Response:
        video = self.videos[upload.video_id]
        if upload.status == "completed":
            return httpx.Response(200, json=video)
        if upload.status != "active":
            return _error(409, "invalid_state", f"the upload was {upload.status}")
        missing = [n for n in range(1, upload.part_count + 1) if n not in upload.parts]
        if missing:
            return _error(409, "upload_incomplete", f"{len(missing)} part(s) missing: {missing[:10]}")
        for n, p in upload.parts.items():
            if p.size != upload.part_length(n):
                return _error(422, "size_mismatch", f"part {n} has {p.size} bytes")
        claimed = {p["part_number"]: p["etag"] for p in body.get("parts", [])}
        for n, etag in claimed.items():
            if etag.strip('"') != upload.parts[n].etag.strip('"'):
                return _error(409, "upload_incomplete", f"part {n} in storage is not the part you sent")
        upload.status = "completed"
        video["status"] = "uploaded" if video["kind"] == "video" else "ready"
        return httpx.Response(200, json=video)

    # ------------------------------------------------------------------ storage
    def _storage(self, request: httpx.Request) -> httpx.Response:
        query = parse_qs(request.url.query.decode())
        token = query.get("sig", [""])[0]
        number = int(query.get("partNumber", ["0"])[0])
        with self.lock:
            fault = self.faults.get(number, []).pop(0) if self.faults.get(number) else None
            signed = self.signatures.get(token)
            expired = token in self.expired
            self.put_active += 1
            self.put_active_max = max(self.put_active_max, self.put_active)
        try:
            return self._put(request, number, token, fault, signed, expired)
        finally:
            with self.lock:
                self.put_active -= 1

    def _put(self, request: httpx.Request, number: int, token: str, fault: str | None,
             signed: tuple[str, int] | None, expired: bool) -> httpx.Response:
        assert request.method == "PUT"
        assert "transfer-encoding" not in request.headers, "part PUTs must not be chunked"
        declared = int(request.headers["Content-Length"])
        status = 200
        try:
            if fault == "interrupt":
                raise KeyboardInterrupt
            if signed is None or expired or fault == "403" or signed[1] != number:
                status = 403
                return _error(403, "url_expired", "the URL expired")
            upload = self.uploads[signed[0]]
            if fault == "404" or upload.status != "active":
                status = 404
                return _error(404, "no_such_upload", "no such upload")
            md5 = hashlib.md5()
            size = 0
            data = bytearray() if self.keep_data else None
            for chunk in request.stream:
                md5.update(chunk)
                size += len(chunk)
                if data is not None:
                    data += chunk
                if fault == "reset" and size >= declared // 2:
                    status = -1
                    raise httpx.WriteError("[Errno 104] Connection reset by peer")
            assert size == declared, (size, declared)
            if fault in ("500", "503", "429"):
                status = int(fault)
                return _error(status, "slow_down", "try again", **{"Retry-After": "0"})
            etag = md5.hexdigest()
            if fault == "bad_etag":
                etag = hashlib.md5(b"corrupted" + etag.encode()).hexdigest()
            with self.lock:
                upload.parts[number] = StoredPart(size, md5.hexdigest(), f'"{etag}"',
                                                  bytes(data) if data is not None else None)
            return httpx.Response(200, headers={"ETag": f'"{etag}"'})
        finally:
            with self.lock:
                self.puts.append((number, status))


def logged_in_client(fake: FakeCourseCrafter, username: str = "alice", **kwargs: Any):
    """A :class:`Client` on ``fake`` (memory credential store), logged in."""
    from coursecrafter_cli import Client, MemoryCredentialStore

    client = Client("http://127.0.0.1:8000", transport=fake,
                    credential_store=kwargs.pop("credential_store", MemoryCredentialStore()),
                    **kwargs)
    client.login(username, "s3cret-pass!")
    return client


def no_sleep(_: float) -> None:
    time.sleep(0)

"""In-memory fake of the store port, for unit tests. Same contract as the real adapters."""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from coursecrafter_server.chunk_records import Chunk, ChunkStatus
from coursecrafter_server.domain import (
    AlreadyExists,
    ApiToken,
    Course,
    Job,
    JobStatus,
    RefreshToken,
    Upload,
    UploadStatus,
    User,
    Video,
    VideoStatus,
)
from coursecrafter_server.store.base import UPDATABLE_COURSE_FIELDS


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users: dict[str, User] = {}
        self._tokens: dict[str, RefreshToken] = {}
        self._revoked_families: set[str] = set()
        self._revocations: dict[str, datetime] = {}
        self._courses: dict[str, Course] = {}
        self._videos: dict[str, Video] = {}
        self._uploads: dict[str, Upload] = {}
        self._jobs: dict[str, Job] = {}
        self._events: dict[str, datetime] = {}
        self._api_tokens: dict[str, ApiToken] = {}
        self._chunks: dict[str, Chunk] = {}

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    def add_user(self, user: User) -> None:
        with self._lock:
            if user.id in self._users:  # never silently replace another account
                raise AlreadyExists("user already exists")
            # Every username before any email, so the message is the same as the real adapters'.
            if any(o.username.lower() == user.username.lower() for o in self._users.values()):
                raise AlreadyExists("username is already taken")
            if any(o.email.lower() == user.email.lower() for o in self._users.values()):
                raise AlreadyExists("email is already registered")
            self._users[user.id] = user

    def get_user(self, user_id: str) -> User | None:
        return self._users.get(user_id)

    def get_user_by_username(self, username: str) -> User | None:
        wanted = username.lower()
        # Under the lock: iterating while another thread inserts raises RuntimeError.
        with self._lock:
            return next((u for u in self._users.values() if u.username.lower() == wanted), None)

    def count_users(self) -> int:
        return len(self._users)

    def add_refresh_token(self, token: RefreshToken) -> None:
        with self._lock:
            if token.token_hash in self._tokens:  # as the real adapters' unique key does
                raise AlreadyExists("refresh token already exists")
            self._tokens[token.token_hash] = token

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        return self._tokens.get(token_hash)

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        with self._lock:
            token = self._tokens.get(token_hash)
            if token is None or token.used_at is not None:
                return False
            self._tokens[token_hash] = dataclasses.replace(token, used_at=when)
            return True

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        with self._lock:
            self._revoked_families.add(family_id)
            count = 0
            for key, token in self._tokens.items():
                if token.family_id == family_id and token.revoked_at is None:
                    self._tokens[key] = dataclasses.replace(token, revoked_at=when)
                    count += 1
            return count

    def is_refresh_family_revoked(self, family_id: str) -> bool:
        return family_id in self._revoked_families

    def delete_expired_refresh_tokens(self, now: datetime) -> int:
        with self._lock:
            expired = [k for k, t in self._tokens.items() if t.expires_at <= now]
            for key in expired:
                del self._tokens[key]
            return len(expired)

    def add_revocation(self, token_id: str, expires_at: datetime) -> None:
        with self._lock:
            known = self._revocations.get(token_id)
            self._revocations[token_id] = max(known, expires_at) if known else expires_at

    def any_revoked(self, token_ids: list[str], now: datetime) -> bool:
        with self._lock:
            return any((exp := self._revocations.get(t)) is not None and exp > now
                       for t in token_ids)

    def delete_expired_revocations(self, now: datetime) -> int:
        with self._lock:
            expired = [k for k, exp in self._revocations.items() if exp <= now]
            for key in expired:
                del self._revocations[key]
            return len(expired)

    # Courses -------------------------------------------------------------------------------
    def add_course(self, course: Course) -> None:
        with self._lock:
            if course.id in self._courses:
                raise AlreadyExists("course already exists")
            self._courses[course.id] = course

    def get_course(self, course_id: str) -> Course | None:
        return self._courses.get(course_id)

    def list_courses(self, owner_id: str) -> list[Course]:
        with self._lock:
            owned = [c for c in self._courses.values() if c.owner_id == owner_id]
        # Ties broken by id, as the real adapters' ORDER BY / sort do.
        return sorted(owned, key=lambda c: (c.created_at, c.id))

    def list_published_courses(self, limit: int = 1000) -> list[Course]:
        with self._lock:
            published = [c for c in self._courses.values() if c.published]
        return sorted(published, key=lambda c: (c.created_at, c.id))[: max(limit, 0)]

    def update_course(self, course: Course) -> None:
        with self._lock:
            stored = self._courses.get(course.id)
            if stored is None:  # as an UPDATE that matches nothing: no upsert
                return
            self._courses[course.id] = dataclasses.replace(
                stored, **{name: getattr(course, name) for name in UPDATABLE_COURSE_FIELDS})

    def delete_course(self, course_id: str) -> bool:
        with self._lock:
            existed = self._courses.pop(course_id, None) is not None
            for key, video in self._videos.items():
                if video.course_id == course_id:
                    self._videos[key] = dataclasses.replace(video, course_id=None)
            return existed

    # Videos --------------------------------------------------------------------------------
    def add_video(self, video: Video) -> None:
        with self._lock:
            if video.id in self._videos:
                raise AlreadyExists("video already exists")
            self._videos[video.id] = video

    def get_video(self, video_id: str) -> Video | None:
        return self._videos.get(video_id)

    def list_course_videos(self, course_id: str) -> list[Video]:
        with self._lock:
            found = [v for v in self._videos.values() if v.course_id == course_id]
        return sorted(found, key=lambda v: (v.created_at, v.id), reverse=True)

    def list_videos_in_status(
        self, statuses: list[VideoStatus], *, updated_before: datetime, limit: int = 100
    ) -> list[Video]:
        if limit <= 0 or not statuses:
            return []
        wanted = {VideoStatus(s) for s in statuses}
        with self._lock:
            found = [v for v in self._videos.values()
                     if v.status in wanted and v.updated_at < updated_before]
        return sorted(found, key=lambda v: (v.updated_at, v.id))[:limit]

    def list_videos(self, owner_id: str, course_id: str | None = None) -> list[Video]:
        with self._lock:
            owned = [
                v
                for v in self._videos.values()
                if v.owner_id == owner_id and (course_id is None or v.course_id == course_id)
            ]
        return sorted(owned, key=lambda v: (v.created_at, v.id), reverse=True)

    def list_videos_early_expired(self, now: datetime, limit: int = 100) -> list[Video]:
        if limit <= 0:
            return []
        with self._lock:
            found = [v for v in self._videos.values()
                     if v.early_expires_at is not None and v.early_expires_at <= now]
        return sorted(found, key=lambda v: (v.early_expires_at, v.id))[:limit]

    def update_video(self, video: Video, *, expected_status: VideoStatus | None = None) -> bool:
        with self._lock:
            stored = self._videos.get(video.id)
            if stored is None:
                return False
            if expected_status is not None and stored.status != expected_status:
                return False
            self._videos[video.id] = video
            return True

    def delete_video(self, video_id: str) -> bool:
        with self._lock:
            return self._videos.pop(video_id, None) is not None

    # Uploads -------------------------------------------------------------------------------
    def add_upload(self, upload: Upload) -> None:
        with self._lock:
            if upload.id in self._uploads:
                raise AlreadyExists("upload already exists")
            self._uploads[upload.id] = upload

    def get_upload(self, upload_id: str) -> Upload | None:
        return self._uploads.get(upload_id)

    def set_upload_status(
        self, upload_id: str, status: UploadStatus, *, expected: UploadStatus
    ) -> bool:
        with self._lock:
            stored = self._uploads.get(upload_id)
            if stored is None or stored.status != expected:
                return False
            self._uploads[upload_id] = dataclasses.replace(stored, status=status)
            return True

    def list_expired_uploads(self, now: datetime, limit: int = 100) -> list[Upload]:
        if limit <= 0:
            return []
        with self._lock:
            expired = [
                u
                for u in self._uploads.values()
                if u.status == UploadStatus.ACTIVE and u.expires_at <= now
            ]
        return sorted(expired, key=lambda u: (u.expires_at, u.id))[:limit]

    # Jobs ----------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        with self._lock:
            if job.id in self._jobs:
                raise AlreadyExists("job already exists")
            self._jobs[job.id] = job

    def get_job(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def get_latest_job(self, video_id: str) -> Job | None:
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.video_id == video_id]
        # Ties broken by id, newest (largest) first, as the real adapters' ORDER BY / sort do.
        return max(jobs, key=lambda j: (j.created_at, j.id), default=None)

    def update_job(
        self,
        job: Job,
        *,
        expected_status: JobStatus | None = None,
        expected_attempt: int | None = None,
    ) -> bool:
        with self._lock:
            stored = self._jobs.get(job.id)
            if stored is None:
                return False
            if expected_status is not None and stored.status != expected_status:
                return False
            if expected_attempt is not None and stored.attempt != expected_attempt:
                return False
            self._jobs[job.id] = job
            return True

    def list_jobs(
        self,
        statuses: list[JobStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        with self._lock:
            return _in_status(self._jobs.values(), {JobStatus(s) for s in statuses},
                              updated_before, heartbeat_before, limit)

    # Webhook events ------------------------------------------------------------------------
    def record_event(self, event_id: str, received_at: datetime) -> bool:
        with self._lock:
            if event_id in self._events:
                return False
            self._events[event_id] = received_at
            return True

    def has_event(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._events

    def count_videos_by_status(self) -> dict[VideoStatus, int]:
        with self._lock:
            return dict(collections.Counter(v.status for v in self._videos.values()))

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        with self._lock:
            return dict(collections.Counter(j.status for j in self._jobs.values()))

    def delete_events_before(self, when: datetime) -> int:
        with self._lock:
            old = [k for k, received in self._events.items() if received < when]
            for key in old:
                del self._events[key]
            return len(old)

    # Automation tokens ---------------------------------------------------------------------
    def add_api_token(self, token: ApiToken) -> None:
        with self._lock:
            tokens = self._api_tokens
            if token.id in tokens or any(t.token_hash == token.token_hash
                                         for t in tokens.values()):
                raise AlreadyExists("token already exists")
            tokens[token.id] = token

    def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._lock:
            tokens = self._api_tokens
            return next((t for t in tokens.values() if t.token_hash == token_hash), None)

    def list_api_tokens(self, user_id: str) -> list[ApiToken]:
        with self._lock:
            tokens = [t for t in self._api_tokens.values()
                      if t.user_id == user_id]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    def delete_api_token(self, token_id: str, user_id: str) -> bool:
        with self._lock:
            tokens = self._api_tokens
            token = tokens.get(token_id)
            if token is None or token.user_id != user_id:
                return False
            del tokens[token_id]
            return True

    def touch_api_token(self, token_id: str, when: datetime, *, unless_after: datetime) -> bool:
        with self._lock:
            tokens = self._api_tokens
            token = tokens.get(token_id)
            if token is None or (token.last_used_at is not None
                                 and token.last_used_at > unless_after):
                return False
            tokens[token_id] = dataclasses.replace(token, last_used_at=when)
            return True

    # Chunks --------------------------------------------------------------------------------
    def add_chunks(self, chunks: list[Chunk]) -> int:
        with self._lock:
            stored = self._chunks
            new = [c for c in chunks if c.id not in stored]
            stored.update((c.id, c) for c in new)
            return len(new)

    def list_chunks(self, job_id: str, job_attempt: int) -> list[Chunk]:
        with self._lock:
            found = [c for c in self._chunks.values()
                     if c.job_id == job_id and c.job_attempt == job_attempt]
        return sorted(found, key=lambda c: c.index)

    def update_chunk(self, chunk: Chunk, *, expected_status: ChunkStatus,
                     expected_attempt: int) -> bool:
        with self._lock:
            stored = self._chunks
            current = stored.get(chunk.id)
            if current is None or current.status != expected_status or \
                    current.attempt != expected_attempt:
                return False
            stored[chunk.id] = chunk
            return True

    def list_chunks_in_status(
        self,
        statuses: list[ChunkStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Chunk]:
        with self._lock:
            return _in_status(self._chunks.values(), {ChunkStatus(s) for s in statuses},
                              updated_before, heartbeat_before, limit)


class _Beating(Protocol):
    id: str
    status: Any
    updated_at: datetime
    heartbeat_at: datetime | None


B = TypeVar("B", bound=_Beating)


def _in_status(records: Iterable[B], wanted: set[Any], updated_before: datetime | None,
               heartbeat_before: datetime | None, limit: int) -> list[B]:
    """Jobs or chunks in one of the `wanted` statuses, oldest change first; no heartbeat yet
    counts from updated_at."""
    if limit <= 0:
        return []
    found = [
        r for r in records
        if r.status in wanted
        and (updated_before is None or r.updated_at < updated_before)
        and (heartbeat_before is None
             or (r.updated_at if r.heartbeat_at is None else r.heartbeat_at) < heartbeat_before)
    ]
    return sorted(found, key=lambda r: (r.updated_at, r.id))[:limit]

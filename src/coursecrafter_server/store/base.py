"""The store ports: what the application needs from a database, and nothing more.

One port per aggregate (users, refresh tokens, revoked access tokens, automation tokens, courses,
videos, uploads, jobs, webhook events); each service depends on the ports it uses, and `Store`,
what the bootstrap opens, is all of them. Two adapters implement every port
(`sqlite.SQLiteStore`, `mongo.MongoStore`); `memory.MemoryStore` is the in-memory fake for unit
tests. All run the same contract tests (tests/test_store_contract.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from coursecrafter_server.chunk_records import Chunk, ChunkStatus
from coursecrafter_server.domain import (
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


# What `update_course` writes: a course's owner and creation time never change.
UPDATABLE_COURSE_FIELDS = ("title", "description", "published", "updated_at")


class UserStore(Protocol):
    def add_user(self, user: User) -> None:
        """Insert; raise `AlreadyExists` naming the field when username or email is taken
        (case-insensitive)."""

    def get_user(self, user_id: str) -> User | None: ...

    def get_user_by_username(self, username: str) -> User | None:
        """Case-insensitive."""

    def count_users(self) -> int: ...


class RefreshTokenStore(Protocol):
    """Refresh tokens and their revoked families."""

    def add_refresh_token(self, token: RefreshToken) -> None: ...

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        """Atomically set `used_at` if it is unset. True when this call used it; False when it
        was already used (or does not exist): the caller treats that as reuse."""

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        """Revoke every token of the family; return how many were newly revoked."""

    def is_refresh_family_revoked(self, family_id: str) -> bool: ...

    def delete_expired_refresh_tokens(self, now: datetime) -> int: ...


class RevocationStore(Protocol):
    """Revoked access tokens: the revocation list of the embedded mode, so a logout survives a
    restart (with Redis configured the list lives there instead)."""

    def add_revocation(self, token_id: str, expires_at: datetime) -> None:
        """Remember `token_id` (a jti, or a family marker) as revoked until `expires_at`; a second
        call keeps the later expiry."""

    def any_revoked(self, token_ids: list[str], now: datetime) -> bool:
        """Whether any of `token_ids` is revoked with an expiry after `now`."""

    def delete_expired_revocations(self, now: datetime) -> int: ...


class CourseStore(Protocol):
    def add_course(self, course: Course) -> None: ...

    def get_course(self, course_id: str) -> Course | None: ...

    def list_courses(self, owner_id: str) -> list[Course]:
        """The owner's courses, oldest first."""

    def list_published_courses(self, limit: int = 1000) -> list[Course]:
        """Every owner's published courses (what students may read), oldest first."""

    def update_course(self, course: Course) -> None:
        """Replace the stored course of the same id (its `UPDATABLE_COURSE_FIELDS`)."""

    def delete_course(self, course_id: str) -> bool:
        """True when it existed. Videos of the course keep existing with `course_id` None."""


class VideoStore(Protocol):
    """Videos and attachments."""

    def add_video(self, video: Video) -> None: ...

    def get_video(self, video_id: str) -> Video | None: ...

    def list_videos(self, owner_id: str, course_id: str | None = None) -> list[Video]:
        """The owner's videos (of one course when given), newest first."""

    def list_course_videos(self, course_id: str) -> list[Video]:
        """The videos of one course, whoever uploaded them, newest first."""

    def list_videos_in_status(
        self, statuses: list[VideoStatus], *, updated_before: datetime, limit: int = 100
    ) -> list[Video]:
        """Videos in any of `statuses` last updated before `updated_before`, oldest first (the
        sweeper's look for videos an interrupted request left half-way)."""

    def list_videos_early_expired(self, now: datetime, limit: int = 100) -> list[Video]:
        """Videos whose `early_expires_at` is set and not after `now`, oldest first (the
        sweeper's look for early outputs no player can reference any more)."""

    def update_video(
        self, video: Video, *, expected_status: VideoStatus | None = None
    ) -> bool:
        """Replace the stored video of the same id. With `expected_status`, only if the stored
        status still is that (compare-and-set, so two writers cannot both move a video); return
        whether it was written."""

    def delete_video(self, video_id: str) -> bool: ...

    def count_videos_by_status(self) -> dict[VideoStatus, int]:
        """How many videos are in each status (statuses with none left out; for /metrics)."""


class UploadStore(Protocol):
    def add_upload(self, upload: Upload) -> None: ...

    def get_upload(self, upload_id: str) -> Upload | None: ...

    def set_upload_status(
        self, upload_id: str, status: UploadStatus, *, expected: UploadStatus
    ) -> bool:
        """Compare-and-set the upload's status; True when this call changed it."""

    def list_expired_uploads(self, now: datetime, limit: int = 100) -> list[Upload]:
        """Active uploads whose `expires_at` has passed, oldest first."""


class JobStore(Protocol):
    """Transcoding jobs: the outbox (written before publishing; the sweeper re-publishes what
    got stuck)."""

    def add_job(self, job: Job) -> None: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def get_latest_job(self, video_id: str) -> Job | None:
        """The video's most recently created job."""

    def update_job(
        self, job: Job, *, expected_status: JobStatus | None = None,
        expected_attempt: int | None = None,
    ) -> bool:
        """Replace the stored job of the same id, only if the stored status/attempt still are
        the expected ones (compare-and-set); return whether it was written."""

    def list_jobs(
        self, statuses: list[JobStatus], *, updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None, limit: int = 100,
    ) -> list[Job]:
        """Jobs in any of `statuses`, oldest `updated_at` first; with `updated_before`, only those
        updated before it; with `heartbeat_before`, only those whose heartbeat (or, when none
        yet, updated_at) is before it."""

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (statuses with none left out; for /metrics)."""


class EventStore(Protocol):
    """Webhook event ids already applied."""

    def record_event(self, event_id: str, received_at: datetime) -> bool:
        """Remember a webhook event id; True when it is new, False when seen before (atomic)."""

    def has_event(self, event_id: str) -> bool:
        """Whether `record_event` has remembered this id."""

    def delete_events_before(self, when: datetime) -> int: ...


class ApiTokenStore(Protocol):
    """Automation tokens (only the hash of the secret is ever stored)."""

    def add_api_token(self, token: ApiToken) -> None:
        """Insert; raise `AlreadyExists` for a taken id or hash."""

    def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    def list_api_tokens(self, user_id: str) -> list[ApiToken]:
        """The user's tokens, oldest first."""

    def delete_api_token(self, token_id: str, user_id: str) -> bool:
        """Delete the token if `user_id` owns it; True when it did."""

    def touch_api_token(self, token_id: str, when: datetime, *, unless_after: datetime) -> bool:
        """Set `last_used_at = when` unless it is already later than `unless_after` (one
        conditional write, so a busy token is written at most once per interval); True when
        written."""


class ChunkStore(Protocol):
    """The chunks of a chunked job (chunk_jobs.py); kept apart from the job records."""

    def add_chunks(self, chunks: list[Chunk]) -> int:
        """Insert every chunk whose id is not stored yet (a stored one is kept as it is);
        returns how many were inserted."""

    def list_chunks(self, job_id: str, job_attempt: int) -> list[Chunk]:
        """The chunks of one job attempt, by index."""

    def update_chunk(self, chunk: Chunk, *, expected_status: ChunkStatus,
                     expected_attempt: int) -> bool:
        """Replace the stored chunk if it still has that status and attempt (compare-and-set)."""

    def list_chunks_in_status(
        self,
        statuses: list[ChunkStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Chunk]:
        """Oldest first; `heartbeat_before` counts a chunk without one from `updated_at`."""


class CatalogStore(CourseStore, VideoStore, Protocol):
    """Courses and their videos: what instructors manage and students watch."""


class Store(
    UserStore, RefreshTokenStore, RevocationStore, ApiTokenStore, CourseStore, VideoStore,
    UploadStore, JobStore, EventStore, ChunkStore, Protocol,
):
    """The whole database, as the bootstrap opens it: every port, and its connection."""

    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def close(self) -> None: ...

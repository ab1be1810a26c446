"""Domain records and errors. Knows nothing of FastAPI, SQLite, MongoDB or Redis."""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime


class Role(str, enum.Enum):
    INSTRUCTOR = "instructor"
    STUDENT = "student"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    id: str
    username: str
    email: str
    password_hash: str
    role: Role
    created_at: datetime


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token as stored: only the SHA-256 of the secret, never the secret itself."""

    token_hash: str
    user_id: str
    family_id: str
    issued_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class TokenScope(str, enum.Enum):
    """What an automation token may do (enforced in api/deps.py)."""

    UPLOAD = "upload"  # create uploads (parts, complete, abort), read videos and courses
    READ = "read"  # GET videos, courses and the account, nothing else


@dataclass(frozen=True)
class ApiToken:
    """An automation token (`cct_...`) as stored: only the SHA-256 of the secret."""

    id: str
    user_id: str
    name: str
    token_hash: str
    scope: TokenScope
    created_at: datetime
    expires_at: datetime | None = None  # None: never
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Course:
    id: str
    owner_id: str
    title: str
    description: str
    published: bool
    created_at: datetime
    updated_at: datetime


class VideoKind(str, enum.Enum):
    VIDEO = "video"  # transcoded into HLS
    ATTACHMENT = "attachment"  # slides, notes: stored as uploaded


class VideoStatus(str, enum.Enum):
    AWAITING_UPLOAD = "awaiting_upload"
    UPLOADED = "uploaded"
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class Video:
    """A video (or attachment) record; `status` follows docs/architecture.md "Video lifecycle"."""

    id: str
    owner_id: str
    course_id: str | None
    kind: VideoKind
    title: str
    filename: str
    content_type: str
    size: int
    sha256: str | None
    status: VideoStatus
    created_at: datetime
    updated_at: datetime
    progress: int = 0
    phase: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    # Rungs of the HLS ladder once ready: [{"height": 720, "bitrate": 2800000}, ...]
    renditions: tuple[dict[str, int], ...] = ()
    # An early rendition (remux or fast first rung) can be watched while still `processing`.
    playable: bool = False
    # Early outputs (`videos/{id}/hls/early/`) may be deleted from this time on: set when
    # nothing will reference them any more (ready or failed) plus the playback URL TTL, so
    # players that loaded the early playlist keep playing until their URLs expire.
    early_expires_at: datetime | None = None

    @property
    def watchable(self) -> bool:
        """Ready, or playable early (an early rendition while the ladder is being made)."""
        return self.kind is VideoKind.VIDEO and (
            self.status is VideoStatus.READY
            or (self.playable and self.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)))


class UploadStatus(str, enum.Enum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ABORTED = "aborted"


@dataclass(frozen=True)
class Upload:
    """One multipart upload of a video's bytes into storage at `key`."""

    id: str
    video_id: str
    owner_id: str
    key: str
    storage_upload_id: str
    size: int
    part_size: int
    part_count: int
    status: UploadStatus
    created_at: datetime
    expires_at: datetime


class JobStatus(str, enum.Enum):
    PENDING = "pending"  # written, not yet confirmed by the queue (outbox)
    PUBLISHED = "published"  # the queue has it
    PROCESSING = "processing"  # a worker reported `started`; heartbeats keep it alive
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """The transcoding job of a video. `attempt` grows with every re-queue; events of an older
    attempt are ignored."""

    id: str
    video_id: str
    attempt: int
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    heartbeat_at: datetime | None = None


class DomainError(Exception):
    """Base of errors the API turns into `{"error": {"code", "message"}}` responses."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class AlreadyExists(DomainError):
    status_code = 409
    code = "conflict"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class InvalidCredentials(DomainError):
    status_code = 401
    code = "invalid_credentials"


class InvalidToken(DomainError):
    status_code = 401
    code = "invalid_token"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class WeakPassword(DomainError):
    status_code = 422
    code = "weak_password"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"


class InvalidState(DomainError):
    status_code = 409
    code = "invalid_state"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class ServiceUnavailable(DomainError):
    status_code = 503
    code = "service_unavailable"


# The video lifecycle (docs/architecture.md "Video lifecycle"): which status may follow which.
# A write that keeps the status (progress, playable, a rename, the early outputs' grace) is always
# allowed. `coursecrafter_server.lifecycle.write` applies a step to the store (compare-and-set).
VIDEO_TRANSITIONS: dict[VideoStatus, frozenset[VideoStatus]] = {
    # uploaded: a video's bytes are complete; ready: an attachment is stored as it is;
    # failed: the upload expired.
    VideoStatus.AWAITING_UPLOAD: frozenset(
        {VideoStatus.UPLOADED, VideoStatus.READY, VideoStatus.FAILED}),
    VideoStatus.UPLOADED: frozenset({VideoStatus.QUEUED}),  # the job is written, then queued
    # processing: a worker started; ready/failed: its outcome arrived before `started` did, or a
    # dead letter failed it.
    VideoStatus.QUEUED: frozenset({VideoStatus.PROCESSING, VideoStatus.READY, VideoStatus.FAILED}),
    # queued: re-queued after a lost worker or a retryable failure.
    VideoStatus.PROCESSING: frozenset({VideoStatus.QUEUED, VideoStatus.READY, VideoStatus.FAILED}),
    VideoStatus.READY: frozenset(),
    VideoStatus.FAILED: frozenset({VideoStatus.QUEUED}),  # retry
}


class IllegalTransition(InvalidState):
    """A status that may not follow the video's current one (a bug, or a stale read)."""


def transition(video: Video, status: VideoStatus | None = None, **changes: object) -> Video:
    """The record after one lifecycle step: `status` (None: unchanged) and other field changes.
    Raises `IllegalTransition` when `status` may not follow `video.status`."""
    if status is not None and status is not video.status and \
            status not in VIDEO_TRANSITIONS[video.status]:
        raise IllegalTransition(f"a {video.status.value} video cannot become {status.value}")
    return replace(video, **({"status": status} if status is not None else {}), **changes)

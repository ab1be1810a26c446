"""The job message and the webhook events: the contracts between server and workers.

The worker package owns these schemas (DESIGN.md "Job message", "Webhook events"); the server
imports them. Plain dataclasses and JSON, so the worker needs no web framework; incoming events
are type-checked by one strict pydantic model per event type (`EVENT_MODELS`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

QUEUE_NAME = "coursecrafter.transcode"
DEAD_LETTER_QUEUE = "coursecrafter.transcode.dead"

EventType = Literal["started", "progress", "playable", "completed", "failed"]
EVENT_TYPES: tuple[str, ...] = ("started", "progress", "playable", "completed", "failed")
PHASES: tuple[str, ...] = ("probing", "transcoding", "uploading")


class MessageError(ValueError):
    """A message or event that does not match its schema (a poison message)."""


def _require(data: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise MessageError(f"field {name!r} must be {getattr(kind, '__name__', kind)}")
    return value


def _load(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MessageError("not a JSON object")
    return data


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    video_id: str
    attempt: int
    source_key: str
    output_prefix: str
    callback_url: str
    created_at: str  # ISO 8601 UTC

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "JobMessage":
        data = _load(raw)
        attempt = _require(data, "attempt", int)
        if attempt < 1:
            raise MessageError("field 'attempt' must be >= 1")
        return cls(
            job_id=_require(data, "job_id", str),
            video_id=_require(data, "video_id", str),
            attempt=attempt,
            source_key=_require(data, "source_key", str),
            output_prefix=_require(data, "output_prefix", str),
            callback_url=_require(data, "callback_url", str),
            created_at=_require(data, "created_at", str),
        )


@dataclass(frozen=True)
class Rendition:
    height: int
    width: int
    bitrate: int  # bits per second, video + audio as in the master playlist's BANDWIDTH
    playlist: str  # relative to the output prefix, e.g. "hls/720p/index.m3u8"


@dataclass(frozen=True)
class JobEvent:
    """One webhook event. `type` decides which optional fields are set:

    - started: none
    - progress: `progress` (0-100) and `phase` (probing | transcoding | uploading)
    - playable: an early rendition is watchable while the ladder is still being made:
      `playlist_key` (the master playlist, which names only the early rendition), `renditions`
      (that one rendition, its playlist under `hls/early/`), `duration`, `width`, `height`
    - completed: `duration` (s), `width`, `height` (source), `renditions`, `playlist_key`,
      `poster_key` (None for audio-only)
    - failed: `error_code`, `error_message`, and `retryable` (False for bad input: the server
      marks the video failed at once; True for infrastructure failures: the server may retry)
    """

    job_id: str
    video_id: str
    attempt: int
    type: EventType
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    sent_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    progress: int | None = None
    phase: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    renditions: tuple[Rendition, ...] = ()
    playlist_key: str | None = None
    poster_key: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool | None = None

    def to_json(self) -> bytes:
        data = {k: v for k, v in asdict(self).items() if v not in (None, ())}
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> "JobEvent":
        """Parse and type-check a whole event (its type's model, below): anything off is a
        `MessageError`, before any of it is applied."""
        data = _load(raw)
        kind = data.get("type")
        model = EVENT_MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            raise MessageError(f"unknown event type {kind!r}"[:200])
        try:
            parsed = model.model_validate(data)
        except ValidationError as exc:
            raise MessageError(_summary(exc)) from None
        fields = parsed.model_dump(exclude={"renditions"})
        renditions = tuple(Rendition(**r.model_dump()) for r in getattr(parsed, "renditions", ()))
        return cls(**fields, renditions=renditions)


# Event schemas: one strict pydantic model per event type (no coercion: "abc", "1", true or {}
# where a number belongs are refused). Unknown fields are ignored so that a newer worker's extra
# fields do not get its events refused during a rolling upgrade. A new type is one model more
# and one entry in EVENT_MODELS (plus its fields on JobEvent).
_Id = Annotated[str, StringConstraints(min_length=1, max_length=200)]
_Key = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
_Pixels = Annotated[int, Field(ge=0, le=1 << 16)]


class _EventModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    event_id: _Id
    job_id: _Id
    video_id: _Id
    attempt: int = Field(ge=1, le=1_000_000)
    sent_at: str = Field("", max_length=64)


class StartedEvent(_EventModel):
    type: Literal["started"]


class ProgressEvent(_EventModel):
    type: Literal["progress"]
    progress: int = Field(ge=0, le=100)
    phase: Literal["probing", "transcoding", "uploading"]


class RenditionModel(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    height: _Pixels  # 0 for an audio rendition
    width: _Pixels
    bitrate: int = Field(ge=0, le=10**10)
    playlist: _Key


class CompletedEvent(_EventModel):
    type: Literal["completed"]
    duration: float = Field(ge=0, le=10**7, allow_inf_nan=False)
    width: _Pixels | None = None  # None: audio only
    height: _Pixels | None = None
    renditions: list[RenditionModel] = Field(min_length=1, max_length=64)
    playlist_key: _Key
    poster_key: _Key | None = None


class PlayableEvent(_EventModel):
    type: Literal["playable"]
    duration: float | None = Field(None, ge=0, le=10**7, allow_inf_nan=False)
    width: _Pixels | None = None
    height: _Pixels | None = None
    renditions: list[RenditionModel] = Field(default_factory=list, max_length=1)  # the early one
    playlist_key: _Key


class FailedEvent(_EventModel):
    type: Literal["failed"]
    error_code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    error_message: str = Field(max_length=10_000)
    retryable: bool


EVENT_MODELS: dict[str, type[_EventModel]] = {
    "started": StartedEvent,
    "progress": ProgressEvent,
    "playable": PlayableEvent,
    "completed": CompletedEvent,
    "failed": FailedEvent,
}


def _summary(exc: ValidationError) -> str:
    """Where and what, never the offending values (they are echoed to the sender only, but
    may be large)."""
    parts = [".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors()[:5]]
    return "; ".join(parts)[:1000]

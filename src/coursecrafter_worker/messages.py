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

EventType = Literal["started", "progress", "playable", "chunked", "completed", "failed"]
EVENT_TYPES: tuple[str, ...] = ("started", "progress", "playable", "chunked", "completed",
                                "failed")
#: Kinds of chunk job (DESIGN.md "Transcoding"): a piece of the picture, the audio track, the join.
CHUNK_KINDS: tuple[str, ...] = ("video", "audio", "join")
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
class ChunkRef:
    """What makes a job message a chunk job (absent: the whole video). `index` orders the
    chunks of one job attempt: the picture pieces 0..pieces-1, then the audio piece (when
    `audio`), then the join; `attempt` is the chunk's own, counted apart from the job's."""

    kind: str  # "video" | "audio" | "join"
    index: int
    attempt: int
    pieces: int  # picture pieces of the job
    audio: bool  # whether an audio piece exists
    start: float  # source seconds where the piece starts (0 for the join)
    content: str  # the ladder's content class, the same for every piece
    #: Source seconds where the next picture piece starts (None: the last piece, the audio,
    #: the join, or a message from before this field): the piece keeps the frames before it.
    end: float | None = None

    @classmethod
    def from_dict(cls, data: Any) -> "ChunkRef":
        if not isinstance(data, dict):
            raise MessageError("field 'chunk' must be an object")
        kind = _require(data, "kind", str)
        if kind not in CHUNK_KINDS:
            raise MessageError(f"unknown chunk kind {kind!r}"[:200])
        start = data.get("start")
        if not isinstance(start, (int, float)) or isinstance(start, bool) or start < 0:
            raise MessageError("field 'chunk.start' must be a number >= 0")
        ref = cls(kind=kind, index=_require(data, "index", int),
                  attempt=_require(data, "attempt", int), pieces=_require(data, "pieces", int),
                  audio=_require(data, "audio", bool), start=float(start),
                  content=_require(data, "content", str), end=_optional_end(data, start))
        if ref.index < 0 or ref.attempt < 1 or ref.pieces < 1:
            raise MessageError("chunk index, attempt or pieces out of range")
        return ref


def _optional_end(data: dict[str, Any], start: float) -> float | None:
    end = data.get("end")
    if end is None:
        return None
    if not isinstance(end, (int, float)) or isinstance(end, bool) or end <= start:
        raise MessageError("field 'chunk.end' must be a number after 'chunk.start'")
    return float(end)


@dataclass(frozen=True)
class JobMessage:
    job_id: str
    video_id: str
    attempt: int
    source_key: str
    output_prefix: str
    callback_url: str
    created_at: str  # ISO 8601 UTC
    chunk: ChunkRef | None = None  # set on a chunk job only

    @property
    def run_key(self) -> tuple[str, int] | tuple[str, int, int, int]:
        """What one run of this message is (a consumer runs and reports each once): the job
        attempt, and for a chunk job also the chunk and its attempt (a job's chunks share the
        job's id and attempt)."""
        if self.chunk is None:
            return (self.job_id, self.attempt)
        return (self.job_id, self.attempt, self.chunk.index, self.chunk.attempt)

    def to_json(self) -> bytes:
        data = asdict(self)
        if self.chunk is None:
            del data["chunk"]  # a whole-video job's message is as it always was
        return json.dumps(data, separators=(",", ":")).encode()

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
            chunk=ChunkRef.from_dict(data["chunk"]) if data.get("chunk") is not None else None,
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
    - chunked: the source was cut for chunked transcoding: `pieces` (picture pieces, >= 2),
      `audio` (an audio piece too), `content` (the ladder's content class), `starts` (each
      picture piece's start, source seconds); the server then queues one job per chunk
    - failed: `error_code`, `error_message`, and `retryable` (False for bad input: the server
      marks the video failed at once; True for infrastructure failures: the server may retry)

    `chunk` and `chunk_attempt` are set on every event of a chunk job (its index and attempt,
    see `ChunkRef`); the join's `completed` is the video's.
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
    chunk: int | None = None
    chunk_attempt: int | None = None
    pieces: int | None = None
    audio: bool | None = None
    content: str | None = None
    starts: tuple[float, ...] = ()

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
        fields = parsed.model_dump(exclude={"renditions", "starts"})
        renditions = tuple(Rendition(**r.model_dump()) for r in getattr(parsed, "renditions", ()))
        starts = tuple(getattr(parsed, "starts", ()))
        return cls(**fields, renditions=renditions, starts=starts)


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
    chunk: int | None = Field(None, ge=0, le=100_000)
    chunk_attempt: int | None = Field(None, ge=1, le=1_000_000)


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


class ChunkedEvent(_EventModel):
    type: Literal["chunked"]
    pieces: int = Field(ge=2, le=100_000)
    audio: bool
    content: Annotated[str, StringConstraints(min_length=1, max_length=32)]
    starts: list[Annotated[float, Field(ge=0, le=10**7, allow_inf_nan=False)]] = Field(
        min_length=2, max_length=100_000)


class FailedEvent(_EventModel):
    type: Literal["failed"]
    error_code: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    error_message: str = Field(max_length=10_000)
    retryable: bool


EVENT_MODELS: dict[str, type[_EventModel]] = {
    "started": StartedEvent,
    "progress": ProgressEvent,
    "playable": PlayableEvent,
    "chunked": ChunkedEvent,
    "completed": CompletedEvent,
    "failed": FailedEvent,
}


def _summary(exc: ValidationError) -> str:
    """Where and what, never the offending values (they are echoed to the sender only, but
    may be large)."""
    parts = [".".join(map(str, e["loc"])) + ": " + e["msg"] for e in exc.errors()[:5]]
    return "; ".join(parts)[:1000]

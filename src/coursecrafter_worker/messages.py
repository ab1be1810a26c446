"""The job message and the webhook events: the contracts between server and workers.

The worker package owns these schemas (DESIGN.md "Job message", "Webhook events"); the server
imports them. Plain dataclasses and JSON, so the worker needs no web framework.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

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
        data = _load(raw)
        kind = _require(data, "type", str)
        if kind not in EVENT_TYPES:
            raise MessageError(f"unknown event type {kind!r}")
        progress = data.get("progress")
        if progress is not None and (not isinstance(progress, int) or not 0 <= progress <= 100):
            raise MessageError("field 'progress' must be an integer 0-100")
        phase = data.get("phase")
        if phase is not None and phase not in PHASES:
            raise MessageError(f"unknown phase {phase!r}")
        try:
            renditions = tuple(Rendition(**r) for r in data.get("renditions", ()))
        except TypeError as exc:
            raise MessageError(f"bad rendition: {exc}") from None
        return cls(
            job_id=_require(data, "job_id", str),
            video_id=_require(data, "video_id", str),
            attempt=_require(data, "attempt", int),
            type=kind,  # type: ignore[arg-type]
            event_id=_require(data, "event_id", str),
            sent_at=str(data.get("sent_at", "")),
            progress=progress,
            phase=phase,
            duration=data.get("duration"),
            width=data.get("width"),
            height=data.get("height"),
            renditions=renditions,
            playlist_key=data.get("playlist_key"),
            poster_key=data.get("poster_key"),
            error_code=data.get("error_code"),
            error_message=data.get("error_message"),
            retryable=data.get("retryable"),
        )

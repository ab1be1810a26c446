"""Typed results of the SDK: each is a frozen dataclass *and* the server's JSON object.

>>> video = Video.from_dict({"id": "v1", "status": "ready", "playable": True, "extra": 1})
>>> video.status, video["status"], video.get("extra")
('ready', 'ready', 1)
>>> isinstance(video, dict) and dataclasses.is_dataclass(video)
True

Why both: callers written before these types existed index the results as dicts
(``video["status"]``), compare them with dicts and hand them to ``json.dumps``; a
:class:`Record` still is that dict, exactly as the server sent it (unknown members included),
while its fields give typed, documented attribute access (``video.status``,
``video.created_at`` as a ``datetime``, ``video.error`` as a :class:`VideoError`).
:meth:`Record.to_dict` returns a plain copy.  The attributes are read once, when the record is
made: changing an item (``video["status"] = ...``) does not change them (attributes cannot be
assigned: the dataclass is frozen).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar, Union

from coursecrafter_cli.errors import CourseCrafterError

__all__ = [
    "Record",
    "User",
    "Login",
    "Course",
    "Rendition",
    "VideoError",
    "Video",
    "Token",
    "NewToken",
]

R = TypeVar("R", bound="Record")


class Record(dict):  # type: ignore[type-arg]  # a dict[str, Any]; subscripting dict breaks pickling on 3.10
    """Base of the typed results: a ``dict`` (the JSON object as received) whose dataclass
    fields are the typed view of it.  Build one with :meth:`from_dict`."""

    _hints: ClassVar[dict[str, Any]]

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record of one JSON object.  A member the server did not send takes the field's
        default (an older server); one of the wrong type raises :class:`CourseCrafterError`."""
        if not isinstance(data, Mapping):
            raise CourseCrafterError(
                f"the server sent {type(data).__name__} where {cls.__name__} was expected"
            )
        values = {f.name: _convert(cls, f.name, data[f.name])
                  for f in dataclasses.fields(cls) if f.name in data}  # type: ignore[arg-type]
        record = cls(**values)
        dict.clear(record)
        dict.update(record, data)
        return record

    @classmethod
    def list_from(cls: type[R], data: Any) -> list[R]:
        """Records of a JSON array of objects."""
        if not isinstance(data, list):
            raise CourseCrafterError(
                f"the server sent {type(data).__name__} where a list of {cls.__name__} was expected"
            )
        return [cls.from_dict(item) for item in data]

    def __post_init__(self) -> None:
        # Built from fields (not from_dict): the dict form is the fields in JSON shape.
        dict.update(self, {f.name: _jsonable(getattr(self, f.name))
                           for f in dataclasses.fields(self)})  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        """A plain (deep) copy of the JSON object."""
        return copy.deepcopy(dict(self))

    # A dict subclass with a __dict__ pickles its items and its attributes: both come back.
    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_dict, (dict(self),))


def _record(cls: type[R]) -> type[R]:
    """Make ``cls`` a frozen, keyword-only dataclass that keeps ``dict`` equality."""
    made = dataclasses.dataclass(frozen=True, eq=False, kw_only=True)(cls)
    made._hints = typing.get_type_hints(made)
    return made


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return dict(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _parse_time(value: str) -> datetime:
    # 3.10's fromisoformat does not take the "Z" the server writes.
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _convert(cls: type[Record], name: str, value: Any) -> Any:
    hint = cls._hints[name]
    try:
        return _as(hint, value)
    except (TypeError, ValueError):
        raise CourseCrafterError(
            f"the server sent an unexpected {cls.__name__}.{name}: {type(value).__name__}"
        ) from None


def _as(hint: Any, value: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None:
            if type(None) in options:
                return None
            raise TypeError("null")
        return _as(next(t for t in options if t is not type(None)), value)
    if origin is list:
        if not isinstance(value, list):
            raise TypeError("not a list")
        (item,) = typing.get_args(hint)
        return [_as(item, v) for v in value]
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, Record):
        if not isinstance(value, Mapping):
            raise TypeError("not an object")
        return hint.from_dict(value)
    if hint is datetime:
        if not isinstance(value, str):
            raise TypeError("not a time")
        return _parse_time(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError("not a number")
        return float(value)
    if hint is int and isinstance(value, bool):
        raise TypeError("not an integer")
    if not isinstance(value, hint):
        raise TypeError(f"not a {hint.__name__}")
    return value


# --------------------------------------------------------------------------- the records


@_record
class User(Record):
    """An account (``GET /auth/me``, ``register``)."""

    id: str = ""
    username: str = ""
    email: str = ""
    role: str = ""  #: ``instructor``, ``student`` or ``admin``


@_record
class Login(Record):
    """What :meth:`Client.login` returns: who is logged in where (never the tokens)."""

    username: str = ""
    api_url: str = ""


@_record
class Course(Record):
    """A course.  ``lecture_count`` / ``attachment_count``: its videos and attachments."""

    id: str = ""
    title: str = ""
    description: str = ""
    published: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None
    lecture_count: int = 0
    attachment_count: int = 0


@_record
class Rendition(Record):
    """One rung of the HLS ladder."""

    height: int = 0
    bitrate: int = 0


@_record
class VideoError(Record):
    """Why a video failed: a machine-readable ``code`` (``not_media``, ``truncated``...) and a
    readable ``message``."""

    code: str = ""
    message: str = ""


@_record
class Video(Record):
    """A video or attachment record (``GET /videos/{id}``).

    ``status`` goes ``awaiting_upload → uploaded → queued → processing → ready | failed``;
    ``playable`` turns true as soon as an early rendition can be watched; ``error`` is set
    when ``failed``; ``duration``, ``width``, ``height``, ``renditions``, ``playback_url`` and
    ``poster_url`` once transcoded.
    """

    id: str = ""
    kind: str = "video"  #: ``video`` or ``attachment``
    course_id: str | None = None
    title: str = ""
    filename: str = ""
    content_type: str = ""
    size: int = 0
    status: str = ""
    progress: int = 0
    phase: str | None = None
    error: VideoError | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    renditions: list[Rendition] = dataclasses.field(default_factory=list)
    playable: bool = False
    playback_url: str | None = None
    poster_url: str | None = None
    download_url: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    @property
    def ready(self) -> bool:
        return self.status == "ready"


@_record
class Token(Record):
    """An automation token as listed (never the secret)."""

    id: str = ""
    name: str = ""
    scope: str = ""  #: ``upload`` or ``read``
    created_at: datetime | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@_record
class NewToken(Token):
    """A token just made: ``token`` (``cct_...``) is the secret, shown this once (and never in
    a ``repr``)."""

    token: str = dataclasses.field(default="", repr=False)

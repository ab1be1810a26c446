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
from collections.abc import Callable, Mapping
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
Convert = Callable[[Any], Any]


class Record(dict):  # type: ignore[type-arg]  # a dict[str, Any]; subscripting dict breaks pickling on 3.10
    """Base of the typed results: a ``dict`` (the JSON object as received) whose dataclass
    fields are the typed view of it.  Build one with :meth:`from_dict`."""

    #: (name, converter, default, default factory) of each field: made on the class's first
    #: from_dict (not at import: the CLI's start-up, help and completion need none).
    _spec: ClassVar[tuple[tuple[str, Convert, Any, Any], ...]]

    @classmethod
    def _fields_spec(cls) -> tuple[tuple[str, Convert, Any, Any], ...]:
        spec = cls.__dict__.get("_spec")
        if spec is None:
            hints = typing.get_type_hints(cls)
            spec = tuple((f.name, _converter(hints[f.name]), f.default, f.default_factory)
                         for f in dataclasses.fields(cls))  # type: ignore[arg-type]
            cls._spec = spec
        return spec

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record of one JSON object.  A member the server did not send takes the field's
        default (an older server); one of the wrong type raises :class:`CourseCrafterError`."""
        if not isinstance(data, Mapping):
            raise CourseCrafterError(
                f"the server sent {type(data).__name__} where {cls.__name__} was expected"
            )
        # Not through __init__: that would build the dict form from the fields (see
        # __post_init__), only for it to be replaced by ``data``.
        record = cls.__new__(cls)
        dict.update(record, data)
        for name, convert, default, factory in cls._fields_spec():
            if name in data:
                try:
                    value = convert(data[name])
                except (TypeError, ValueError):
                    raise CourseCrafterError(
                        f"the server sent an unexpected {cls.__name__}.{name}: "
                        f"{type(data[name]).__name__}"
                    ) from None
            else:
                value = default if factory is dataclasses.MISSING else factory()
            object.__setattr__(record, name, value)
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
    return dataclasses.dataclass(frozen=True, eq=False, kw_only=True)(cls)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Record):
        return dict(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("not a time")
    # 3.10's fromisoformat does not take the "Z" the server writes.
    return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("not a number")
    return float(value)


def _exactly(kind: type) -> Convert:
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise TypeError(f"not a {kind.__name__}")
        return value

    return check


def _converter(hint: Any) -> Convert:
    """The function that checks / converts a JSON value to ``hint`` (raising TypeError or
    ValueError), made once per field."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [t for t in typing.get_args(hint) if t is not type(None)]
        inner = _converter(options[0])
        return lambda value: None if value is None else inner(value)
    if origin is list:
        item = _converter(typing.get_args(hint)[0])

        def items(value: Any) -> list[Any]:
            if not isinstance(value, list):
                raise TypeError("not a list")
            return [item(v) for v in value]

        return items
    if hint is Any:
        return lambda value: value
    if isinstance(hint, type) and issubclass(hint, Record):
        record: type[Record] = hint
        return lambda value: record.from_dict(value) if isinstance(value, Mapping) else _no(value)
    if hint is datetime:
        return _parse_time
    if hint is float:
        return _number
    return _exactly(hint)


def _no(value: Any) -> Any:
    raise TypeError("not an object")


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

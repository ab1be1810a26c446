"""What the store holds, one row codec per record type, for both database adapters.

The domain's records (users, tokens, courses, videos, uploads, jobs) plus three small rows only
the store has (a revoked refresh family, a revoked access token, a seen webhook event). Each
adapter builds the set once with its own value encoding (`record_codecs`); the field names are
the SQLite column names and the MongoDB document fields alike, and each record's key is SQLite's
primary key column and MongoDB's `_id`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from coursecrafter_server.domain import ApiToken, Course, Job, RefreshToken, Upload, User, Video
from coursecrafter_server.store.codec import RowCodec, identity

T = TypeVar("T")


@dataclass(frozen=True)
class RevokedFamily:
    """A refresh-token family revoked as a whole; kept apart from the tokens so the revocation
    also covers tokens added afterwards."""

    family_id: str
    revoked_at: datetime


@dataclass(frozen=True)
class Revocation:
    """A revoked access token (a jti, or a family marker) and until when that matters."""

    token_id: str
    expires_at: datetime


@dataclass(frozen=True)
class SeenEvent:
    """A webhook event id already applied (so a redelivery is not applied twice)."""

    event_id: str
    received_at: datetime


# Lowercased in Python (not a case-insensitive collation, which may fold ASCII only) so that every
# adapter agrees with `str.lower()` on what counts as the same name; unique indexes hold on these.
USER_DERIVED: dict[str, Callable[[User], Any]] = {
    "username_lower": lambda user: user.username.lower(),
    "email_lower": lambda user: user.email.lower(),
}


@dataclass(frozen=True)
class RecordCodecs:
    """One codec per record type; each attribute is named like the table (collection) it fills."""

    users: RowCodec[User]
    refresh_tokens: RowCodec[RefreshToken]
    revoked_refresh_families: RowCodec[RevokedFamily]
    revoked_tokens: RowCodec[Revocation]
    courses: RowCodec[Course]
    videos: RowCodec[Video]
    uploads: RowCodec[Upload]
    jobs: RowCodec[Job]
    webhook_events: RowCodec[SeenEvent]
    api_tokens: RowCodec[ApiToken]


def record_codecs(
    *,
    encode_time: Callable[[datetime], Any],
    decode_time: Callable[[Any], datetime | None],
    encode_nested: Callable[[list[Any]], Any] = identity,
    decode_nested: Callable[[Any], list[Any]] = identity,
) -> RecordCodecs:
    """Every record's codec with one adapter's encoding of times and nested lists."""

    def codec(record: type[T], key: str = "id",
              derived: Mapping[str, Callable[[T], Any]] | None = None) -> RowCodec[T]:
        return RowCodec(record, key=key, derived=derived, encode_time=encode_time,
                        decode_time=decode_time, encode_nested=encode_nested,
                        decode_nested=decode_nested)

    return RecordCodecs(
        users=codec(User, derived=USER_DERIVED),
        refresh_tokens=codec(RefreshToken, key="token_hash"),
        revoked_refresh_families=codec(RevokedFamily, key="family_id"),
        revoked_tokens=codec(Revocation, key="token_id"),
        courses=codec(Course),
        videos=codec(Video),
        uploads=codec(Upload),
        jobs=codec(Job),
        webhook_events=codec(SeenEvent, key="event_id"),
        api_tokens=codec(ApiToken),
    )

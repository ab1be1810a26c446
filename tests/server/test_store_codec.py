"""The row codec stores every field of a record, whatever its kind, and reads it back: a new
field is covered without touching any adapter."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from coursecrafter_server.domain import Role, User, Video, VideoKind, VideoStatus
from coursecrafter_server.store.codec import RowCodec


def _full_video() -> Video:
    now = datetime(2026, 11, 30, 7, 30, 1, 123000, tzinfo=timezone.utc)
    return Video(id="v1", owner_id="u1", course_id="c1", kind=VideoKind.VIDEO, title="T",
                 filename="t.mp4", content_type="video/mp4", size=10, sha256="ab",
                 status=VideoStatus.READY, created_at=now, updated_at=now, progress=100,
                 phase="uploading", error_code="e", error_message="m", duration=1.5, width=640,
                 height=360, renditions=({"height": 360, "bitrate": 800000},), playable=True,
                 early_expires_at=now)


def test_every_field_round_trips_through_text_and_native_encodings() -> None:
    video = _full_video()
    text = RowCodec(Video, encode_time=lambda t: t.isoformat(),
                    decode_time=datetime.fromisoformat, encode_nested=json.dumps,
                    decode_nested=json.loads)
    native = RowCodec(Video, encode_time=lambda t: t, decode_time=lambda t: t)
    for codec in (text, native):
        row = codec.encode(video)
        assert set(row) == {f.name for f in dataclasses.fields(Video)} - {"id"}
        assert codec.decode(row, "v1") == video
    stored = text.encode(video)
    assert stored["status"] == "ready" and stored["kind"] == "video"
    assert json.loads(stored["renditions"]) == [{"height": 360, "bitrate": 800000}]


def test_a_field_an_older_row_lacks_takes_its_default() -> None:
    codec = RowCodec(Video, encode_time=lambda t: t, decode_time=lambda t: t)
    row = codec.encode(_full_video())
    del row["playable"], row["early_expires_at"], row["renditions"]
    old = codec.decode(row, "v1")
    assert (old.playable, old.early_expires_at, old.renditions) == (False, None, ())


def test_the_key_derived_values_and_a_subset_as_adapters_write_them() -> None:
    codec = RowCodec(User, encode_time=lambda t: t, decode_time=lambda t: t,
                     derived={"username_lower": lambda u: u.username.lower()})
    user = User(id="u1", username="ÄLICE", email="a@example.com", password_hash="h",
                role=Role.ADMIN, created_at=datetime(2026, 11, 30, tzinfo=timezone.utc))
    row = codec.encode(user, key_as="_id")
    assert row["_id"] == "u1" and row["username_lower"] == "älice" and row["role"] == "admin"
    assert codec.decode(row, row["_id"]) == user  # the derived value is never read back
    assert codec.encode(user, only=("role",)) == {"role": "admin"}


def test_an_enum_given_as_its_plain_value_is_stored_by_value() -> None:
    codec = RowCodec(Video, encode_time=lambda t: t, decode_time=lambda t: t)
    video = dataclasses.replace(_full_video(), status="queued")  # type: ignore[arg-type]
    assert codec.encode(video)["status"] == "queued"
    assert codec.decode(codec.encode(video), "v1").status is VideoStatus.QUEUED


def test_values_follow_the_field_order() -> None:
    codec = RowCodec(Video, encode_time=lambda t: t, decode_time=lambda t: t)
    video = _full_video()
    assert codec.values(video) == tuple(codec.encode(video)[name] for name in codec.fields)
    assert codec.fields[:2] == ("owner_id", "course_id")

"""The video lifecycle in one place: the domain's table of legal steps, and `lifecycle.write`,
the one way services change a video's record (compare-and-set on the status they read)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import pytest

from coursecrafter_server import lifecycle
from coursecrafter_server.domain import (
    VIDEO_TRANSITIONS,
    IllegalTransition,
    Video,
    VideoKind,
    VideoStatus,
)
from coursecrafter_server.store.memory import MemoryStore

S = VideoStatus


def video(status: VideoStatus) -> Video:
    now = datetime.now(timezone.utc)
    return Video(id=uuid.uuid4().hex, owner_id="u", course_id=None, kind=VideoKind.VIDEO,
                 title="t", filename="t.mp4", content_type="video/mp4", size=1, sha256=None,
                 status=status, created_at=now, updated_at=now)


def test_the_table_is_the_documented_lifecycle() -> None:
    # docs/architecture.md: awaiting_upload → uploaded → queued → processing → ready | failed;
    # retry sends failed back to queued; attachments go awaiting_upload → ready.
    for a, b in [(S.AWAITING_UPLOAD, S.UPLOADED), (S.UPLOADED, S.QUEUED),
                 (S.QUEUED, S.PROCESSING), (S.PROCESSING, S.READY), (S.PROCESSING, S.FAILED),
                 (S.FAILED, S.QUEUED), (S.AWAITING_UPLOAD, S.READY)]:
        assert b in VIDEO_TRANSITIONS[a], (a, b)
    assert set(VIDEO_TRANSITIONS) == set(VideoStatus)
    assert VIDEO_TRANSITIONS[S.READY] == frozenset()  # nothing moves a ready video back


@pytest.mark.parametrize(("start", "to"), [
    (S.READY, S.PROCESSING), (S.READY, S.QUEUED), (S.UPLOADED, S.READY),
    (S.AWAITING_UPLOAD, S.PROCESSING), (S.FAILED, S.READY),
])
def test_an_illegal_step_is_refused_and_nothing_is_written(start, to) -> None:
    store = MemoryStore()
    stored = video(start)
    store.add_video(stored)
    with pytest.raises(IllegalTransition):
        lifecycle.write(store, stored, to)
    assert store.get_video(stored.id).status is start


def test_a_step_is_compare_and_set_on_the_status_read() -> None:
    store = MemoryStore()
    read = video(S.QUEUED)
    store.add_video(read)
    moved = lifecycle.write(store, read, S.PROCESSING, progress=5)
    assert moved is not None and store.get_video(read.id) == moved
    # A second writer still holding the old read loses, and changes nothing.
    assert lifecycle.write(store, read, S.FAILED, error_code="x") is None
    assert store.get_video(read.id).status is S.PROCESSING
    # Same-status writes (progress, a rename) are always legal steps.
    renamed = lifecycle.write(store, moved, title="Lecture 1")
    assert renamed is not None and renamed.status is S.PROCESSING
    assert renamed.updated_at >= moved.updated_at

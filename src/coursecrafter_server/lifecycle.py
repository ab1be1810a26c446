"""Applying a step of the video lifecycle to the store: the one way a video's record changes.

The table of legal steps is the domain's (`domain.VIDEO_TRANSITIONS`); this checks a step
against it and writes it compare-and-set on the status that was read, so two writers can never
both move a video (the loser gets None back and reads again, or leaves it to the winner).
"""

from __future__ import annotations

from datetime import datetime, timezone

from coursecrafter_server.domain import Video, VideoStatus, transition
from coursecrafter_server.store.base import VideoStore


def write(store: VideoStore, video: Video, status: VideoStatus | None = None,
          **changes: object) -> Video | None:
    """Write `video` moved to `status` (None: the same) with `changes`, if its stored status is
    still `video.status`. Returns the written record, or None when another writer moved it first.
    Raises `IllegalTransition` for a step the lifecycle does not have."""
    changes.setdefault("updated_at", datetime.now(timezone.utc))
    moved = transition(video, status, **changes)
    return moved if store.update_video(moved, expected_status=video.status) else None

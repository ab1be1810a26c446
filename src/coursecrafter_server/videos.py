"""Video records as their owner sees them: read, list, delete (with everything in storage)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from coursecrafter_server.domain import NotFound, Role, User, Video, VideoKind, VideoStatus
from coursecrafter_server.storage import ObjectStorage
from coursecrafter_server.store.base import Store
from coursecrafter_server.uploads import source_key

log = logging.getLogger(__name__)


def output_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


class VideoService:
    def __init__(
        self, store: Store, storage: ObjectStorage, *, url_ttl: int,
        on_delete: Callable[[Video], None] | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.url_ttl = url_ttl
        # Closes the video's open transcoding job, so no sweeper re-queues work for a deleted video.
        self.on_delete = on_delete

    def get_owned(self, user: User, video_id: str) -> Video:
        video = self.store.get_video(video_id)
        if video is None or (video.owner_id != user.id and user.role is not Role.ADMIN):
            raise NotFound("video not found")
        return video

    def list(self, user: User, course_id: str | None = None) -> list[Video]:
        return self.store.list_videos(user.id, course_id)

    def delete(self, user: User, video_id: str) -> None:
        video = self.get_owned(user, video_id)
        if self.on_delete is not None:
            self.on_delete(video)
        self.store.delete_video(video.id)
        # Storage after the record: a crash in between leaves orphan bytes, never a dangling record.
        self.storage.delete_prefix(output_prefix(video.id))
        self.storage.delete_prefix(source_key(video).rsplit("/", 1)[0] + "/")
        log.info("deleted video %s and its objects", video.id)

    def download_url(self, video: Video) -> str | None:
        if video.kind is VideoKind.ATTACHMENT and video.status is VideoStatus.READY:
            return self.storage.presign_get(source_key(video), self.url_ttl)
        return None

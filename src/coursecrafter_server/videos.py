"""Video records as their owner sees them: read, list, delete (with everything in storage)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from coursecrafter_server.domain import InvalidState, NotFound, Role, User, Video, VideoKind, VideoStatus
from coursecrafter_worker.storage import ObjectStorage
from coursecrafter_server import lifecycle
from coursecrafter_server.store.base import CatalogStore
from coursecrafter_server.uploads import purge_video_storage, source_key

log = logging.getLogger(__name__)


class VideoService:
    def __init__(
        self, store: CatalogStore, storage: ObjectStorage, *, url_ttl: int,
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

    def get_readable(self, user: User, video_id: str) -> Video:
        """As `get_owned`, and for students a watchable video (ready, or playable early) of a
        published course."""
        if user.role is not Role.STUDENT:
            return self.get_owned(user, video_id)
        video = self.store.get_video(video_id)
        if video is None or not video.watchable or not self._published(
            video.course_id
        ):
            raise NotFound("video not found")
        return video

    def list(self, user: User, course_id: str | None = None) -> list[Video]:
        """Instructors and admins: their own videos. Students: the watchable videos (ready, or
        playable early) of published courses (of `course_id` when given; an unpublished or
        unknown course is not found)."""
        if user.role is not Role.STUDENT:
            if course_id is not None:
                # Another owner's course (or none) is not found, rather than an empty list.
                course = self.store.get_course(course_id)
                if course is None or (course.owner_id != user.id and user.role is not Role.ADMIN):
                    raise NotFound("course not found")
            return self.store.list_videos(user.id, course_id)
        if course_id is not None:
            if not self._published(course_id):
                raise NotFound("course not found")
            courses = [course_id]
        else:
            courses = [c.id for c in self.store.list_published_courses()]
        return [v for c in courses for v in self.store.list_course_videos(c)
                if v.watchable]

    def _published(self, course_id: str | None) -> bool:
        course = self.store.get_course(course_id) if course_id else None
        return course is not None and course.published

    def delete(self, user: User, video_id: str) -> None:
        video = self.get_owned(user, video_id)
        if self.on_delete is not None:
            self.on_delete(video)
        self.store.delete_video(video.id)
        # Storage after the record: a crash in between leaves orphan bytes, never a dangling
        # record, and the sweeper's reconciliation removes orphans. Whatever the video's state:
        # an open upload is aborted too, so a later `complete` has nothing to assemble.
        removed = purge_video_storage(self.storage, video.id)
        log.info("deleted video %s and its %d stored object(s)/upload(s)", video.id, removed)

    def rename(self, user: User, video_id: str, title: str) -> Video:
        """Set the title of one of `user`'s videos. Compare-and-set on the status, so a
        transcoder moving the video meanwhile is not overwritten (the rename is re-applied)."""
        for _ in range(5):
            video = self.get_owned(user, video_id)
            renamed = lifecycle.write(self.store, video, title=title)
            if renamed is not None:
                return renamed
        raise InvalidState("the video is changing too fast to rename; try again")

    def download_url(self, video: Video) -> str | None:
        if video.kind is VideoKind.ATTACHMENT and video.status is VideoStatus.READY:
            return self.storage.presign_get(source_key(video), self.url_ttl,
                                            download_name=video.filename)
        return None

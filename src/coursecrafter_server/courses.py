"""Courses: owned by an instructor; another owner's course is reported as not found. Students read
published courses (and nothing else)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone

from coursecrafter_server.domain import Course, NotFound, Role, User, VideoKind, VideoStatus
from coursecrafter_server.store.base import CatalogStore


class CourseService:
    def __init__(self, store: CatalogStore) -> None:
        self.store = store

    def create(self, owner: User, title: str, description: str = "") -> Course:
        now = datetime.now(timezone.utc)
        course = Course(
            id=uuid.uuid4().hex, owner_id=owner.id, title=title, description=description,
            published=False, created_at=now, updated_at=now,
        )
        self.store.add_course(course)
        return course

    def get_owned(self, user: User, course_id: str) -> Course:
        """The course if `user` owns it (admins see all); NotFound otherwise, never 403, so ids of
        other instructors' courses cannot be probed."""
        course = self.store.get_course(course_id)
        if course is None or (course.owner_id != user.id and user.role is not Role.ADMIN):
            raise NotFound("course not found")
        return course

    def get_readable(self, user: User, course_id: str) -> Course:
        """As `get_owned`, and for students any published course."""
        course = self.store.get_course(course_id)
        if course is not None and user.role is Role.STUDENT and course.published:
            return course
        return self.get_owned(user, course_id)

    def list(self, user: User) -> list[Course]:
        """Students: every published course; instructors and admins: their own."""
        if user.role is Role.STUDENT:
            return self.store.list_published_courses()
        return self.store.list_courses(user.id)

    def update(self, user: User, course_id: str, **changes: object) -> Course:
        course = self.get_owned(user, course_id)
        fields = {k: v for k, v in changes.items() if v is not None}
        updated = dataclasses.replace(course, **fields, updated_at=datetime.now(timezone.utc))
        self.store.update_course(updated)
        return updated

    def delete(self, user: User, course_id: str) -> None:
        self.get_owned(user, course_id)
        self.store.delete_course(course_id)

    def counts(self, user: User, courses: list[Course]) -> dict[str, tuple[int, int]]:
        """(lectures, attachments) per course id, as `user` sees them: students count only ready
        ones. One query for an instructor's own courses; one per course otherwise."""
        counts: dict[str, list[int]] = {c.id: [0, 0] for c in courses}
        mine = user.role is not Role.STUDENT and all(c.owner_id == user.id for c in courses)
        if mine and len(courses) > 1:
            videos = self.store.list_videos(user.id)
        else:
            videos = [v for c in courses for v in self.store.list_course_videos(c.id)]
        for video in videos:
            slot = counts.get(video.course_id or "")
            if slot is None or (user.role is Role.STUDENT and video.status is not VideoStatus.READY):
                continue
            slot[0 if video.kind is VideoKind.VIDEO else 1] += 1
        return {k: (v[0], v[1]) for k, v in counts.items()}

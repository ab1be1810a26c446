"""/courses: an instructor's courses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from coursecrafter_server.api.deps import ContainerDep, CurrentUser, InstructorUser
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.courses import CourseService
from coursecrafter_server.domain import Course, User

router = APIRouter(prefix="/courses", tags=["courses"])
_errors = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 413, 422)}


async def get_courses(container: ContainerDep) -> CourseService:  # no I/O: no threadpool hop
    return container.courses


Courses = Annotated[CourseService, Depends(get_courses)]


class CourseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)


class CoursePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    published: bool | None = None


class CourseOut(BaseModel):
    id: str
    title: str
    description: str
    published: bool
    created_at: datetime
    updated_at: datetime
    lecture_count: int = Field(description="videos in the course (students: ready ones)")
    attachment_count: int = Field(description="attachments in the course (students: ready ones)")

    @classmethod
    def of(cls, course: Course, counts: tuple[int, int] = (0, 0)) -> "CourseOut":
        return cls(
            id=course.id, title=course.title, description=course.description,
            published=course.published, created_at=course.created_at, updated_at=course.updated_at,
            lecture_count=counts[0], attachment_count=counts[1],
        )


def _out(user: User, courses: CourseService, items: list[Course]) -> list[CourseOut]:
    counts = courses.counts(user, items)
    return [CourseOut.of(c, counts[c.id]) for c in items]


@router.post("", status_code=status.HTTP_201_CREATED, responses=_errors)
def create_course(body: CourseIn, user: InstructorUser, courses: Courses) -> CourseOut:
    return CourseOut.of(courses.create(user, body.title, body.description))


@router.get("", responses=_errors)
def list_courses(user: CurrentUser, courses: Courses) -> list[CourseOut]:
    """Instructors and admins: their own courses. Students: every published course."""
    return _out(user, courses, courses.list(user))


@router.get("/{course_id}", responses=_errors)
def get_course(course_id: str, user: CurrentUser, courses: Courses) -> CourseOut:
    return _out(user, courses, [courses.get_readable(user, course_id)])[0]


@router.patch("/{course_id}", responses=_errors)
def update_course(course_id: str, body: CoursePatch, user: InstructorUser, courses: Courses) -> CourseOut:
    return _out(user, courses, [courses.update(user, course_id, **body.model_dump())])[0]


@router.delete("/{course_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors)
def delete_course(course_id: str, user: InstructorUser, courses: Courses) -> Response:
    courses.delete(user, course_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

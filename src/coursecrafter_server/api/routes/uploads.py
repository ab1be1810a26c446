"""/uploads: start, sign parts, list what storage holds, complete, abort."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Response, status
from pydantic import BaseModel, ConfigDict, Field

from coursecrafter_server.api.deps import ContainerDep, InstructorUser
from coursecrafter_server.api.routes.videos import VideoOut, video_out
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.domain import VideoKind, VideoStatus
from coursecrafter_server.uploads import PartUrl, UploadService

router = APIRouter(prefix="/uploads", tags=["uploads"])
_errors = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)}


async def get_uploads(container: ContainerDep) -> UploadService:  # no I/O: no threadpool hop
    return container.uploads


Uploads = Annotated[UploadService, Depends(get_uploads)]


class UploadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filename: str = Field(min_length=1, max_length=1024)
    size: int = Field(ge=0, description="bytes; the whole file")
    # Checked as an RFC 6838 media type by the service (422 invalid_content_type).
    content_type: str = Field(min_length=3, max_length=200)
    course_id: str | None = Field(default=None, max_length=64)
    title: str | None = Field(default=None, max_length=200)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    kind: VideoKind = VideoKind.VIDEO


class PartUrlOut(BaseModel):
    part_number: int
    url: str


class UploadOut(BaseModel):
    upload_id: str
    video_id: str
    key: str
    size: int
    part_size: int
    part_count: int
    expires_at: datetime
    url_expires_in: int
    parts: list[PartUrlOut]


class SignIn(BaseModel):
    part_numbers: list[int] = Field(default_factory=list, max_length=1000)


class SignOut(BaseModel):
    parts: list[PartUrlOut]
    url_expires_in: int


class StoredPart(BaseModel):
    part_number: int
    size: int
    etag: str


class PartsOut(BaseModel):
    upload_id: str
    video_id: str
    status: str
    size: int
    part_size: int
    part_count: int
    parts: list[StoredPart]


class CompletedPartIn(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: str = Field(min_length=1, max_length=200)


class CompleteIn(BaseModel):
    parts: list[CompletedPartIn] = Field(
        default_factory=list, max_length=10_000,
        description="optional: the ETags the client got; a mismatch is refused",
    )


def _urls(parts: list[PartUrl]) -> list[PartUrlOut]:
    return [PartUrlOut(part_number=p.part_number, url=p.url) for p in parts]


@router.post("", status_code=status.HTTP_201_CREATED, responses=_errors)
def start_upload(body: UploadIn, user: InstructorUser, uploads: Uploads) -> UploadOut:
    started = uploads.start(user, **body.model_dump())
    u = started.upload
    return UploadOut(
        upload_id=u.id, video_id=u.video_id, key=u.key, size=u.size, part_size=u.part_size,
        part_count=u.part_count, expires_at=u.expires_at, url_expires_in=started.url_expires_in,
        parts=_urls(started.parts),
    )


@router.post("/{upload_id}/parts", responses=_errors)
def sign_parts(upload_id: str, body: SignIn, user: InstructorUser, uploads: Uploads) -> SignOut:
    parts = uploads.sign_parts(user, upload_id, body.part_numbers)
    return SignOut(parts=_urls(parts), url_expires_in=uploads.url_ttl)


@router.get("/{upload_id}/parts", responses=_errors)
def list_parts(upload_id: str, user: InstructorUser, uploads: Uploads) -> PartsOut:
    upload, parts = uploads.list_parts(user, upload_id)
    return PartsOut(
        upload_id=upload.id, video_id=upload.video_id, status=upload.status.value,
        size=upload.size, part_size=upload.part_size, part_count=upload.part_count,
        parts=[StoredPart(part_number=p.part_number, size=p.size, etag=p.etag) for p in parts],
    )


@router.post("/{upload_id}/complete", responses=_errors)
def complete_upload(
    upload_id: str, user: InstructorUser, uploads: Uploads, container: ContainerDep,
    body: CompleteIn | None = None,
) -> VideoOut:
    etags = {p.part_number: p.etag for p in body.parts} if body else {}
    video = uploads.complete(user, upload_id, etags)
    if video.status is VideoStatus.UPLOADED:
        # Also reached when a client repeats `complete` after a crash here: enqueue is idempotent.
        container.jobs.enqueue(video)
        video = container.store.get_video(video.id) or video
    return video_out(video, container)


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors)
def abort_upload(upload_id: str, user: InstructorUser, uploads: Uploads) -> Response:
    uploads.abort(user, upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

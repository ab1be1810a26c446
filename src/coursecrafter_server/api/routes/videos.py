"""/videos: status and results of an owner's videos."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from coursecrafter_server.api.deps import ContainerDep, CurrentUser, InstructorUser
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.bootstrap import Container
from coursecrafter_server.domain import Video, VideoKind, VideoStatus
from coursecrafter_server.videos import VideoService

router = APIRouter(prefix="/videos", tags=["videos"])
_errors = {code: {"model": ErrorResponse} for code in (401, 403, 404, 409)}


async def get_videos(container: ContainerDep) -> VideoService:  # no I/O: no threadpool hop
    return container.videos


Videos = Annotated[VideoService, Depends(get_videos)]


class VideoError(BaseModel):
    code: str
    message: str


class Rendition(BaseModel):
    height: int
    bitrate: int


class VideoOut(BaseModel):
    id: str
    kind: str
    course_id: str | None
    title: str
    filename: str
    content_type: str
    size: int
    status: str
    progress: int
    phase: str | None
    error: VideoError | None
    duration: float | None
    width: int | None
    height: int | None
    renditions: list[Rendition]
    playable: bool
    playback_url: str | None
    poster_url: str | None
    download_url: str | None
    created_at: datetime
    updated_at: datetime


def video_out(video: Video, container: Container) -> VideoOut:
    playback_url, poster_url = container.playback.urls(video)
    error = (
        VideoError(code=video.error_code, message=video.error_message or video.error_code)
        if video.error_code
        else None
    )
    return VideoOut(
        id=video.id, kind=video.kind.value, course_id=video.course_id, title=video.title,
        filename=video.filename, content_type=video.content_type, size=video.size,
        status=video.status.value, progress=video.progress, phase=video.phase, error=error,
        duration=video.duration, width=video.width, height=video.height,
        renditions=[Rendition(**r) for r in video.renditions],
        playable=video.kind is VideoKind.VIDEO and (
            video.playable or video.status is VideoStatus.READY),
        playback_url=playback_url, poster_url=poster_url,
        download_url=container.videos.download_url(video),
        created_at=video.created_at, updated_at=video.updated_at,
    )


@router.get("", responses=_errors)
def list_videos(
    user: CurrentUser, videos: Videos, container: ContainerDep,
    course_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[VideoOut]:
    """Instructors and admins: their own videos. Students: ready videos of published courses."""
    return [video_out(v, container) for v in videos.list(user, course_id)]


@router.get("/{video_id}", responses=_errors)
def get_video(video_id: str, user: CurrentUser, videos: Videos, container: ContainerDep) -> VideoOut:
    return video_out(videos.get_readable(user, video_id), container)


class VideoPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)


@router.patch("/{video_id}",
              responses={**_errors, **{c: {"model": ErrorResponse} for c in (400, 413, 422)}})
def update_video(video_id: str, body: VideoPatch, user: InstructorUser, videos: Videos,
                 container: ContainerDep) -> VideoOut:
    """Rename a video or attachment (`{title}`)."""
    return video_out(videos.rename(user, video_id, body.title), container)


@router.delete("/{video_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_errors)
def delete_video(video_id: str, user: InstructorUser, videos: Videos) -> Response:
    videos.delete(user, video_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{video_id}/retry", responses=_errors)
def retry_video(video_id: str, user: InstructorUser, videos: Videos, container: ContainerDep) -> VideoOut:
    video = container.jobs.retry(videos.get_owned(user, video_id))
    return video_out(video, container)

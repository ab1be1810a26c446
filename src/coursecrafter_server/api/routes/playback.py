"""/playback: HLS playlists of ready videos, behind expiring tokens instead of JWTs (players)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse

from coursecrafter_server.api.deps import ContainerDep
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.domain import NotFound

router = APIRouter(prefix="/playback", tags=["playback"])
_errors = {code: {"model": ErrorResponse} for code in (404, 422)}


# `response_class=Response` (no media type of its own) so that errors are documented as the JSON
# they are; the playlist's own type is declared for 200.
@router.get(
    "/{video_id}/{path:path}", response_class=Response, responses={
        200: {"description": "an HLS playlist",
              "content": {"application/vnd.apple.mpegurl": {"schema": {"type": "string"}}}},
        **_errors,
    },
)
def playlist(
    video_id: str, path: str, container: ContainerDep,
    expires: Annotated[int | None, Query()] = None,
    token: Annotated[str | None, Query(max_length=128)] = None,
) -> PlainTextResponse:
    if expires is None or not token:
        # Without its token a link is as invalid as with a wrong one: same answer, no hint.
        raise NotFound("playback link is invalid or has expired")
    text = container.playback.playlist(video_id, path, expires, token)
    return PlainTextResponse(
        text, media_type="application/vnd.apple.mpegurl",
        headers={"Cache-Control": "private, max-age=60"},
    )

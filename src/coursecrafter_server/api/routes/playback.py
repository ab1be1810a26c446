"""/playback: HLS playlists of ready videos, behind expiring tokens instead of JWTs (players)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from coursecrafter_server.api.deps import ContainerDep

router = APIRouter(prefix="/playback", tags=["playback"])


@router.get("/{video_id}/{path:path}", response_class=PlainTextResponse)
def playlist(
    video_id: str, path: str, container: ContainerDep,
    expires: Annotated[int, Query()], token: Annotated[str, Query(max_length=128)],
) -> PlainTextResponse:
    text = container.playback.playlist(video_id, path, expires, token)
    return PlainTextResponse(
        text, media_type="application/vnd.apple.mpegurl",
        headers={"Cache-Control": "private, max-age=60"},
    )

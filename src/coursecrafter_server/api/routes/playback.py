"""/play/{token}/...: a video's HLS outputs behind its playback token instead of a JWT (players).

Playlists come through the API; other files (segments, poster) from the local directory or, on
S3, by a 302 to a short-lived pre-signed URL (the API carries no video bytes)."""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from coursecrafter_server.api.deps import ContainerDep
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.domain import NotFound
from coursecrafter_server.playback import Playlist, StoredFile
from coursecrafter_worker.storage import NoSuchKey, ObjectStorage
from coursecrafter_worker.storage.local import LocalStorage

router = APIRouter(prefix="/play", tags=["playback"])
MPEGURL = "application/vnd.apple.mpegurl"
# Playlists are revalidated on every use (a 304 is cheap), so a deleted or unpublished video stops
# playing at once; segments never change under a token.
PLAYLIST_CACHE = "public, no-cache"


# `response_class=Response` (no media type of its own) so that errors are documented as the JSON
# they are.
@router.get(
    "/{token}/{path:path}", response_class=Response, responses={
        200: {"description": "a playlist, segment or poster",
              "content": {MPEGURL: {"schema": {"type": "string"}}}},
        302: {"description": "(S3) the file at a pre-signed URL (minutes; never past the token)"},
        304: {"description": "not modified (If-None-Match / If-Modified-Since)"},
        403: {"model": ErrorResponse, "description": "`url_expired`: fetch the video again"},
        404: {"model": ErrorResponse},
    },
)
async def play(token: str, path: str, request: Request, container: ContainerDep) -> Response:
    found = await run_in_threadpool(container.playback.resolve, token, path)
    if isinstance(found, Playlist):
        headers = {"ETag": found.etag, "Cache-Control": PLAYLIST_CACHE}
        if _not_modified(request, found.etag, None):
            return Response(status_code=304, headers=headers)
        return Response(found.text, media_type=MPEGURL, headers=headers)
    return await _stored_file(request, container.storage, found)


async def _stored_file(request: Request, storage: ObjectStorage, found: StoredFile) -> Response:
    if not isinstance(storage, LocalStorage):
        url = await run_in_threadpool(storage.presign_get, found.key, found.expires_in)
        # A cached redirect must still lead somewhere: half the URL's life.
        return RedirectResponse(url, status_code=302, headers={
            "Cache-Control": f"public, max-age={found.expires_in // 2}"})
    try:
        path, info = await run_in_threadpool(storage.stat_object, found.key)
        stat = await run_in_threadpool(path.stat)
    except (NoSuchKey, FileNotFoundError):
        raise NotFound("no such playback file") from None
    headers = {"Cache-Control": f"public, max-age={found.expires_in}",
               "Last-Modified": formatdate(stat.st_mtime, usegmt=True)}
    if info.etag:
        headers["ETag"] = info.etag
    if _not_modified(request, headers.get("ETag"), stat.st_mtime):
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=info.content_type, headers=headers, stat_result=stat)


def _not_modified(request: Request, etag: str | None, mtime: float | None) -> bool:
    """RFC 9110 13.1: If-None-Match wins over If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return etag is not None
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return etag is not None and etag in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since and mtime is not None:
        try:
            return int(mtime) <= parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
    return False

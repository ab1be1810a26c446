"""Bench-only ASGI app for bench/playback_segments.py: the real app (S3 storage from the
environment) plus `POST /bench/seed`, which makes one ready video whose segments are random bytes
and returns its playback URL, and `GET /proxy/{token}/{path}`, which streams the same file through
the API instead of redirecting to storage (the alternative the benchmark compares with)."""

from __future__ import annotations

import os
import tempfile
import uuid
from datetime import datetime, timezone

from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from coursecrafter_server.app import create_app
from coursecrafter_server.domain import Video, VideoKind, VideoStatus

app = create_app()
container = app.state.container


@app.post("/bench/seed")
def seed(segments: int, size: int) -> dict[str, str]:
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="bench", course_id=None, kind=VideoKind.VIDEO,
                  title="bench", filename="b.mp4", content_type="video/mp4", size=1,
                  sha256=None, status=VideoStatus.READY, created_at=now, updated_at=now,
                  duration=4.0 * segments, width=1280, height=720,
                  renditions=({"height": 720, "bitrate": 2_000_000},))
    container.store.add_video(video)
    with tempfile.NamedTemporaryFile() as f:
        f.write(os.urandom(size))
        f.flush()
        for i in range(segments):
            container.storage.upload_file(f.name, f"videos/{video.id}/hls/720p/seg_{i:05d}.ts",
                                          "video/mp2t")
    playback_url, _ = container.playback.urls(video)
    assert playback_url is not None
    return {"playback_url": playback_url}


@app.get("/proxy/{token}/{path:path}")
async def proxy(token: str, path: str) -> StreamingResponse:
    found = await run_in_threadpool(container.playback.resolve, token, path)
    stream = await run_in_threadpool(container.storage.open_read, found.key)  # type: ignore[union-attr]

    async def body():  # type: ignore[no-untyped-def]
        try:
            while chunk := await run_in_threadpool(stream.read, 256 * 1024):
                yield chunk
        finally:
            stream.close()

    return StreamingResponse(body(), media_type="video/mp2t")

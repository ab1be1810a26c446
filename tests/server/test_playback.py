"""Playback of private HLS outputs on both storage adapters: the API rewrites playlists so every
reference works on its own (variants back through the API, segments pre-signed in storage)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from coursecrafter_server.domain import Video, VideoKind, VideoStatus

MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360
360p/index.m3u8
"""
VARIANT = """#EXTM3U
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:4.0,
seg_00000.ts
#EXTINF:2.0,
seg_00001.ts
#EXT-X-ENDLIST
"""


@pytest.fixture(params=["local", "s3"])
def api(request, app_factory):
    overrides: dict[str, object] = {"transcode_concurrency": 0}
    if request.param == "s3":
        overrides["storage_url"] = f"s3://{request.getfixturevalue('s3_bucket')}/pb-" \
            f"{uuid.uuid4().hex[:8]}"
        overrides["s3_endpoint_url"] = request.getfixturevalue("moto_endpoint")
    return app_factory(**overrides)


def ready_video(api, tmp_path) -> Video:
    container = api.app.state.container
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=1, sha256=None,
                  status=VideoStatus.READY, created_at=now, updated_at=now, duration=6.0,
                  width=640, height=360, renditions=({"height": 360, "bitrate": 800000},))
    container.store.add_video(video)
    files = {"hls/master.m3u8": MASTER.encode(), "hls/360p/index.m3u8": VARIANT.encode(),
             "hls/360p/seg_00000.ts": b"segment zero", "hls/360p/seg_00001.ts": b"segment one",
             "poster.jpg": b"\xff\xd8poster"}
    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        container.storage.upload_file(path, f"videos/{video.id}/{name}", "application/octet-stream")
    return video


def fetch(api, url: str) -> httpx.Response:
    # API URLs go through the test client; pre-signed S3 URLs over real HTTP to moto.
    if url.startswith("http://127.0.0.1:8000"):
        return api.get(url.removeprefix("http://127.0.0.1:8000"))
    return httpx.get(url, timeout=10)


def test_playback_url_leads_to_every_segment(api, tmp_path):
    video = ready_video(api, tmp_path)
    playback_url, poster_url = api.app.state.container.playback.urls(video)
    master = fetch(api, playback_url)
    assert master.status_code == 200
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    (variant_ref,) = [line for line in master.text.splitlines() if line and line[0] != "#"]
    assert variant_ref.startswith("360p/index.m3u8?expires=")
    variant = fetch(api, playback_url.split("master.m3u8")[0] + variant_ref)
    assert variant.status_code == 200 and "#EXT-X-ENDLIST" in variant.text
    segments = [line for line in variant.text.splitlines() if line and line[0] != "#"]
    assert [fetch(api, url).content for url in segments] == [b"segment zero", b"segment one"]
    assert fetch(api, poster_url).content == b"\xff\xd8poster"


def test_tampered_or_expired_playback_links_are_404(api, tmp_path):
    video = ready_video(api, tmp_path)
    signer = api.app.state.container.playback.signer
    url = signer.master_url(video.id).removeprefix("http://127.0.0.1:8000")
    assert api.get(url.replace("token=", "token=0")).status_code == 404
    other = ready_video(api, tmp_path)
    assert api.get(url.replace(video.id, other.id)).status_code == 404
    past = int(time.time()) - 10
    expired = f"/api/v1/playback/{video.id}/master.m3u8?{signer.query(video.id, past)}"
    assert api.get(expired).status_code == 404
    escape = f"/api/v1/playback/{video.id}/../../uploads/x/source?{signer.query(video.id, past + 3600)}"
    assert api.get(escape).status_code == 404


def test_video_record_carries_playback_urls_only_when_ready(api, tmp_path):
    video = ready_video(api, tmp_path)
    playback = api.app.state.container.playback
    assert all(playback.urls(video))
    import dataclasses

    assert playback.urls(dataclasses.replace(video, status=VideoStatus.PROCESSING)) == (None, None)


def test_a_video_playable_early_plays_its_early_rendition_while_processing(api, tmp_path):
    container = api.app.state.container
    now = datetime.now(timezone.utc)
    video = Video(id=uuid.uuid4().hex, owner_id="u", course_id=None, kind=VideoKind.VIDEO,
                  title="t", filename="t.mp4", content_type="video/mp4", size=1, sha256=None,
                  status=VideoStatus.PROCESSING, created_at=now, updated_at=now, playable=True)
    container.store.add_video(video)
    early_master = MASTER.replace("360p/index.m3u8", "early/index.m3u8")
    files = {"hls/master.m3u8": early_master.encode(), "hls/early/index.m3u8": VARIANT.encode(),
             "hls/early/seg_00000.ts": b"early zero", "hls/early/seg_00001.ts": b"early one"}
    for name, data in files.items():
        path = tmp_path / name.replace("/", "_")
        path.write_bytes(data)
        container.storage.upload_file(path, f"videos/{video.id}/{name}", "application/octet-stream")
    playback_url, poster_url = container.playback.urls(video)
    assert playback_url is not None and poster_url is None  # the poster comes with the ladder
    (variant_ref,) = [x for x in fetch(api, playback_url).text.splitlines() if x and x[0] != "#"]
    assert variant_ref.startswith("early/index.m3u8?expires=")
    variant = fetch(api, playback_url.split("master.m3u8")[0] + variant_ref)
    segments = [x for x in variant.text.splitlines() if x and x[0] != "#"]
    assert [fetch(api, url).content for url in segments] == [b"early zero", b"early one"]
    # Not playable (still processing, or failed): no URL.
    for status, playable in ((VideoStatus.PROCESSING, False), (VideoStatus.FAILED, False)):
        other = Video(**{**video.__dict__, "status": status, "playable": playable})
        assert container.playback.urls(other) == (None, None)

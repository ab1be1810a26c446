"""Playback through a token in the path, on both storage adapters: the playback URL leads a player
to every playlist, segment and poster by plain relative URLs; the URL is the same for every viewer
within a window; an expired token is 403 `url_expired` (the player fetches the video again), a
deleted or unpublished video stops playing at once; conditional GETs answer 304."""

from __future__ import annotations

import dataclasses
import time
import uuid
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from coursecrafter_server.domain import Role, VideoStatus
from coursecrafter_server.playback import STORAGE_URL_LIFE, start_on_middle_rung
from coursecrafter_worker.storage.local import LocalStorage

PASSWORD = "correct horse battery"
PUBLIC = "http://127.0.0.1:8000"

# As FFmpeg writes it: top rung first.
MASTER = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-STREAM-INF:BANDWIDTH=2800000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720
720p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=1400000,AVERAGE-BANDWIDTH=1000000,RESOLUTION=854x480
480p/index.m3u8

#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=600000,RESOLUTION=640x360
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
RUNGS = ("720p", "480p", "360p")


@pytest.fixture(params=["local", "s3"])
def api(request, app_factory, home):
    overrides: dict[str, object] = {"transcode_concurrency": 0,
                                    "database_url": f"sqlite:///{home}/db.sqlite3"}
    if request.param == "s3":
        overrides["storage_url"] = f"s3://{request.getfixturevalue('s3_bucket')}/pb-" \
            f"{uuid.uuid4().hex[:8]}"
        overrides["s3_endpoint_url"] = request.getfixturevalue("moto_endpoint")
    return app_factory(**overrides)


def account(api, username: str, role: Role) -> dict[str, str]:
    api.app.state.container.auth.register(username, f"{username}@example.edu", PASSWORD, role)
    tokens = api.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def ready_video(api, teacher, course_id: str, tmp_path) -> str:
    """A video made ready the way the worker leaves one: its outputs under videos/{id}/."""
    upload = api.post("/api/v1/uploads", headers=teacher, json={
        "filename": "lecture.mp4", "size": 1000, "content_type": "video/mp4",
        "course_id": course_id}).json()
    container = api.app.state.container
    video = container.store.get_video(upload["video_id"])
    assert container.store.update_video(dataclasses.replace(
        video, status=VideoStatus.READY, progress=100, duration=6.0, width=1280, height=720,
        renditions=tuple({"height": int(r[:-1]), "bitrate": 1000000} for r in RUNGS)))
    files = {"hls/master.m3u8": MASTER.encode(), "poster.jpg": b"\xff\xd8poster",
             "hls/early/index.m3u8": VARIANT.encode()}
    for rung in RUNGS:
        files[f"hls/{rung}/index.m3u8"] = VARIANT.encode()
        files[f"hls/{rung}/seg_00000.ts"] = f"{rung} segment zero".encode()
        files[f"hls/{rung}/seg_00001.ts"] = f"{rung} segment one".encode()
    for name, data in files.items():
        path = tmp_path / f"{video.id}-{name.replace('/', '_')}"
        path.write_bytes(data)
        content_type = "application/vnd.apple.mpegurl" if name.endswith(".m3u8") else \
            "video/mp2t" if name.endswith(".ts") else "image/jpeg"
        container.storage.upload_file(path, f"videos/{video.id}/{name}", content_type)
    return video.id


@pytest.fixture
def school(api, tmp_path):
    teacher = account(api, "ada", Role.INSTRUCTOR)
    student = account(api, "sam", Role.STUDENT)
    course = api.post("/api/v1/courses", headers=teacher, json={"title": "Algorithms"}).json()
    api.patch(f"/api/v1/courses/{course['id']}", headers=teacher, json={"published": True})
    return {"teacher": teacher, "student": student, "course": course["id"],
            "video": ready_video(api, teacher, course["id"], tmp_path)}


def get(api, url: str, follow: bool = True, **headers: str) -> httpx.Response:
    """What a player does: API URLs through the test client; a redirect (S3) followed over real
    HTTP to the pre-signed URL, with the same headers."""
    response = api.get(url.removeprefix(PUBLIC), headers=headers, follow_redirects=False)
    if follow and response.status_code == 302:
        return httpx.get(response.headers["location"], headers=headers, timeout=10)
    return response


def uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


def video_of(api, school, who: str = "student") -> dict:
    response = api.get(f"/api/v1/videos/{school['video']}", headers=school[who])
    assert response.status_code == 200, response.text
    return response.json()


def every_file(api, video: dict) -> dict[str, str]:
    """Every URL a player reaches from `playback_url` and `poster_url`."""
    urls = {"master": video["playback_url"], "poster": video["poster_url"]}
    master = get(api, video["playback_url"]).text
    for variant in uris(master):
        urls[variant] = urljoin(video["playback_url"], variant)
        for segment in uris(get(api, urls[variant]).text):
            urls[f"{variant}:{segment}"] = urljoin(urls[variant], segment)
    return urls


def test_playback_url_leads_to_every_file_by_relative_urls(api, school):
    video = video_of(api, school)
    assert video["playback_url"].startswith(f"{PUBLIC}/api/v1/play/")
    master = get(api, video["playback_url"])
    assert master.status_code == 200, master.text
    assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    # The full ladder, plain relative URIs (no query), the middle rung first.
    assert uris(master.text) == ["480p/index.m3u8", "720p/index.m3u8", "360p/index.m3u8"]
    assert master.text.startswith("#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n")
    for rung in RUNGS:
        variant_url = urljoin(video["playback_url"], f"{rung}/index.m3u8")
        variant = get(api, variant_url)
        assert variant.status_code == 200 and "#EXT-X-ENDLIST" in variant.text
        assert uris(variant.text) == ["seg_00000.ts", "seg_00001.ts"]
        segments = [get(api, urljoin(variant_url, s)) for s in uris(variant.text)]
        assert [s.content for s in segments] == [f"{rung} segment zero".encode(),
                                                 f"{rung} segment one".encode()]
    poster = get(api, video["poster_url"])
    assert poster.status_code == 200 and poster.content == b"\xff\xd8poster"
    assert poster.headers["content-type"] == "image/jpeg"
    # The token covers everything under the video's prefix: an early rendition too.
    early = get(api, urljoin(video["playback_url"], "early/index.m3u8"))
    assert early.status_code == 200 and early.text == VARIANT


def test_segments_come_from_the_api_locally_and_from_s3_by_a_short_lived_url(api, school):
    video = video_of(api, school)
    signer = api.app.state.container.playback.signer
    expires = int(urlsplit(video["playback_url"]).path.split("/")[4].split(".")[1])
    segment = get(api, urljoin(video["playback_url"], "480p/seg_00000.ts"), follow=False)
    if isinstance(api.app.state.container.storage, LocalStorage):
        assert segment.status_code == 200 and segment.content == b"480p segment zero"
        assert segment.headers["content-type"] == "video/mp2t"
        return
    assert segment.status_code == 302
    presigned = parse_qs(urlsplit(segment.headers["location"]).query)
    left = expires - time.time()  # the token's life left, give or take a slow machine
    assert signer.ttl - 60 <= left <= signer.ttl + signer.window
    # Minutes, never past the token: a storage URL saved from a redirect dies soon after an
    # unpublish or delete (the token path itself is re-checked on every request).
    assert int(presigned["X-Amz-Expires"][0]) == STORAGE_URL_LIFE
    signer.clock = lambda: expires - 30  # the token's last half-minute
    near_end = get(api, urljoin(video["playback_url"], "480p/seg_00000.ts"), follow=False)
    assert 25 <= int(parse_qs(urlsplit(near_end.headers["location"]).query)[
        "X-Amz-Expires"][0]) <= 30


def test_every_viewer_gets_the_same_url_within_a_window(api, school):
    signer = api.app.state.container.playback.signer
    start = (time.time() // signer.window) * signer.window  # the start of a window
    signer.clock = lambda: start + 1
    first = video_of(api, school)
    assert video_of(api, school) == first  # asked again
    assert video_of(api, school, "teacher")["playback_url"] == first["playback_url"]
    listed = api.get("/api/v1/videos", headers=school["student"]).json()
    assert [v["playback_url"] for v in listed] == [first["playback_url"]]
    signer.clock = lambda: start + signer.window - 1  # the window's last second
    assert video_of(api, school)["playback_url"] == first["playback_url"]
    signer.clock = lambda: start + signer.window + 1  # the next window: a new URL, the old works
    assert video_of(api, school)["playback_url"] != first["playback_url"]
    assert get(api, first["playback_url"]).status_code == 200


def test_an_expired_token_is_403_url_expired_on_every_file_and_a_fresh_one_resumes(api, school):
    video = video_of(api, school)
    urls = every_file(api, video)
    assert len(urls) == 2 + 3 + 6
    signer = api.app.state.container.playback.signer
    expires = int(urlsplit(video["playback_url"]).path.split("/")[4].split(".")[1])
    signer.clock = lambda: expires + 1
    for name, url in urls.items():
        response = get(api, url)
        assert response.status_code == 403, (name, response.text)
        assert response.json()["error"]["code"] == "url_expired"
        assert response.headers["cache-control"] == "no-store"
    fresh = video_of(api, school)
    assert fresh["playback_url"] != video["playback_url"]
    again = every_file(api, fresh)
    assert all(get(api, url).status_code == 200 for url in again.values())


def test_tampered_or_foreign_tokens_are_404(api, school, tmp_path):
    url = video_of(api, school)["playback_url"]
    token = urlsplit(url).path.split("/")[4]
    video_id, expires, scope, signature = token.split(".")
    other = ready_video(api, school["teacher"], school["course"], tmp_path)
    forged = [
        f"{video_id}.{expires}.{scope}.{'0' * 32}",
        f"{other}.{expires}.{scope}.{signature}",  # the token is per video
        f"{video_id}.{int(expires) + 3600}.{scope}.{signature}",  # and per expiry
        f"{video_id}.{expires}.{'d' if scope == 'p' else 'p'}.{signature}",  # and per scope
        f"{video_id}.{expires}.{scope}.\u00e9{signature[1:]}",
        "nonsense",
    ]
    for bad in forged:
        response = get(api, url.replace(token, bad))
        assert response.status_code == 404, (bad, response.text)
        assert response.json()["error"]["code"] == "not_found"
    for escape in ("hls/../../../uploads/x/source", "hls/%2e%2e/%2e%2e/x", "hls//master.m3u8",
                   "hls/1080p/index.m3u8", "hls/360p/seg_99999.ts"):  # and what is not there
        assert get(api, url.replace("hls/master.m3u8", escape)).status_code == 404, escape


def test_unpublishing_or_deleting_stops_playback_at_once(api, school):
    """Hardening item 15: a token outliving the video's visibility opens nothing."""
    urls = every_file(api, video_of(api, school))
    assert api.patch(f"/api/v1/courses/{school['course']}", headers=school["teacher"],
                     json={"published": False}).status_code == 200
    for name, url in urls.items():
        response = get(api, url)
        assert response.status_code == 404, (name, response.text)
    assert api.get(f"/api/v1/videos/{school['video']}",
                   headers=school["student"]).status_code == 404  # no new token either
    # The owner still previews the draft, with a token minted for it.
    draft_urls = every_file(api, video_of(api, school, "teacher"))
    assert all(get(api, url).status_code == 200 for url in draft_urls.values())
    assert api.delete(f"/api/v1/videos/{school['video']}",
                      headers=school["teacher"]).status_code == 204
    for name, url in draft_urls.items():
        assert get(api, url).status_code == 404, name


def test_conditional_gets_answer_304(api, school):
    video = video_of(api, school)
    for url in (video["playback_url"], urljoin(video["playback_url"], "360p/index.m3u8"),
                urljoin(video["playback_url"], "360p/seg_00001.ts"), video["poster_url"]):
        first = get(api, url)
        assert first.status_code == 200 and first.headers["etag"]
        again = get(api, url, **{"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304 and not again.content, url
        assert get(api, url, **{"If-None-Match": '"something-else"'}).status_code == 200
        if "last-modified" in first.headers:
            since = get(api, url, **{"If-Modified-Since": first.headers["last-modified"]})
            assert since.status_code == 304, url
    assert "last-modified" in get(api, urljoin(video["playback_url"], "360p/seg_00001.ts")).headers


def test_videos_get_playback_urls_only_when_watchable(api, school):
    container = api.app.state.container
    video = container.store.get_video(school["video"])
    assert all(container.playback.urls(video))
    for status in (VideoStatus.PROCESSING, VideoStatus.FAILED, VideoStatus.QUEUED):
        assert container.playback.urls(dataclasses.replace(video, status=status)) == (None, None)
    audio_only = container.playback.urls(dataclasses.replace(video, width=None, height=None))
    assert audio_only[0] and audio_only[1] is None  # no picture, no poster


def test_a_video_playable_early_plays_its_early_rendition_while_processing(api, school, tmp_path):
    """Playable early: the same master URL names the early rendition until the ladder replaces it;
    no poster yet; not playable (or failed) means no URL at all."""
    container = api.app.state.container
    video = dataclasses.replace(container.store.get_video(school["video"]),
                                status=VideoStatus.PROCESSING, playable=True, progress=10)
    assert container.store.update_video(video)
    early_master = MASTER.split("#EXT-X-STREAM-INF")[0] + \
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=640x360\nearly/index.m3u8\n"
    for name, data in {"hls/master.m3u8": early_master.encode(),
                       "hls/early/seg_00000.ts": b"early zero",
                       "hls/early/seg_00001.ts": b"early one"}.items():
        path = tmp_path / f"early-{name.replace('/', '_')}"
        path.write_bytes(data)
        container.storage.upload_file(path, f"videos/{video.id}/{name}", "video/mp2t")
    record = video_of(api, school)
    assert record["status"] == "processing" and record["playable"] is True
    assert record["playback_url"] and record["poster_url"] is None  # the poster comes with the ladder
    master = get(api, record["playback_url"])
    assert uris(master.text) == ["early/index.m3u8"]
    variant_url = urljoin(record["playback_url"], "early/index.m3u8")
    variant = get(api, variant_url)
    assert [get(api, urljoin(variant_url, u)).content for u in uris(variant.text)] == \
        [b"early zero", b"early one"]
    for status, playable in ((VideoStatus.PROCESSING, False), (VideoStatus.FAILED, True)):
        other = dataclasses.replace(video, status=status, playable=playable)
        assert container.playback.urls(other) == (None, None)


@pytest.mark.parametrize(("rungs", "first"), [
    ((720,), 720), ((720, 360), 720), ((720, 480, 360), 480), ((1080, 720, 480, 360), 720),
    ((360, 480, 720, 1080), 720),
])
def test_the_master_playlist_starts_on_the_middle_rung_and_keeps_the_ladder(rungs, first):
    master = "#EXTM3U\n#EXT-X-VERSION:6\n" + "".join(
        f"#EXT-X-STREAM-INF:AVERAGE-BANDWIDTH=1,BANDWIDTH={h * 4000},RESOLUTION={h * 16 // 9}x{h}\n"
        f"{h}p/index.m3u8\n" for h in rungs)
    listed = uris(start_on_middle_rung(master))
    assert listed[0] == f"{first}p/index.m3u8"
    assert sorted(listed) == sorted(f"{h}p/index.m3u8" for h in rungs)
    # Each URI stays under its own STREAM-INF line.
    lines = start_on_middle_rung(master).splitlines()
    for index, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF"):
            height = line.rsplit("x", 1)[1]
            assert lines[index + 1] == f"{height}p/index.m3u8"

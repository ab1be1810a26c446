"""Playback of private HLS outputs through a playback token carried in the path.

    {public_url}/api/v1/play/{token}/hls/master.m3u8      the master playlist (`playback_url`)
    {public_url}/api/v1/play/{token}/hls/720p/index.m3u8  a variant playlist
    {public_url}/api/v1/play/{token}/hls/720p/seg_00001.ts
    {public_url}/api/v1/play/{token}/poster.jpg           (`poster_url`)

`/play/{token}/` maps onto the storage prefix `videos/{video_id}/`, so one token covers every
output of one video (the early rendition too), and playlists keep their plain relative URIs: the
files are served exactly as the worker wrote them (the master playlist only reordered). A token is
minted per time window, not per request: every viewer asking within a window gets the same URLs,
which a CDN can cache. It lives between `ttl` and `ttl + window` seconds.

Every request re-checks the video: a deleted video, or (for a token minted for a published course)
an unpublished course, answers 404 at once, whatever the token's life left."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from coursecrafter_server.domain import DomainError, NotFound, Video, VideoStatus
from coursecrafter_server.store.base import CatalogStore
from coursecrafter_worker.storage import NoSuchKey, ObjectStorage
from coursecrafter_worker.storage.keys import MASTER_PLAYLIST as MASTER
from coursecrafter_worker.storage.keys import POSTER, output_prefix

PLAY_PATH = "/api/v1/play"
MAX_PLAYLIST_BYTES = 4 * 1024 * 1024
# A storage URL (S3 redirect) is used at once, so it lives only minutes: one saved from a redirect
# stops working soon after the video is deleted or unpublished, whatever the token's life left.
STORAGE_URL_LIFE = 600

# Scopes: a token minted while the video's course is published is re-checked against publication
# on every request (students hold those); one minted for a draft only needs the video to exist
# (only its owner and admins can see a draft's video, so only they can mint such a token).
PUBLISHED, DRAFT = "p", "d"

_TOKEN = re.compile(r"^([A-Za-z0-9_-]{1,64})\.(\d{1,12})\.([pd])\.([0-9a-f]{32})$")
_SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}"
_PATH = re.compile(rf"^{_SEGMENT}(?:/{_SEGMENT}){{0,4}}$")
_BANDWIDTH = re.compile(r"(?:^|[:,])BANDWIDTH=(\d+)")


class UrlExpired(DomainError):
    """403, so that a player fetches a fresh `playback_url` (a 404 would mean "gone")."""

    status_code = 403
    code = "url_expired"


@dataclass(frozen=True)
class PlaybackToken:
    video_id: str
    expires: int
    scope: str


class PlaybackSigner:
    def __init__(self, secret: bytes, *, api_url: str, ttl: int,
                 clock: Callable[[], float] = time.time) -> None:
        self._secret = hashlib.sha256(b"coursecrafter-playback-v2" + secret).digest()
        self.api_url = api_url
        self.ttl = ttl
        # Quarter-TTL windows: URLs stay the same for a while (CDN hits) and every token still
        # lives at least `ttl` seconds.
        self.window = max(1, ttl // 4)
        self.clock = clock

    def _signature(self, video_id: str, expires: int, scope: str) -> str:
        message = f"{video_id}\n{expires}\n{scope}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def mint(self, video_id: str, scope: str, *, now: float | None = None) -> str:
        now = self.clock() if now is None else now
        expires = -(-int(now + self.ttl) // self.window) * self.window  # ceiling to the window
        return f"{video_id}.{expires}.{scope}.{self._signature(video_id, expires, scope)}"

    def url(self, token: str, path: str) -> str:
        return f"{self.api_url}{PLAY_PATH}/{token}/{path}"

    def parse(self, token: str) -> PlaybackToken:
        match = _TOKEN.match(token)
        # Forged and malformed tokens look like a missing object: no hint of what was wrong.
        if match is None:
            raise NotFound("playback link is invalid")
        video_id, expires_text, scope, signature = match.groups()
        expected = self._signature(video_id, int(expires_text), scope)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise NotFound("playback link is invalid")
        if int(expires_text) < self.clock():
            raise UrlExpired("the playback link has expired; fetch the video again for a new one",
                             headers={"Cache-Control": "no-store"})
        return PlaybackToken(video_id, int(expires_text), scope)


@dataclass(frozen=True)
class Playlist:
    text: str
    etag: str


@dataclass(frozen=True)
class StoredFile:
    """A segment, poster or other output: served from storage by the route (file or redirect)."""

    key: str
    expires_in: int  # life of a pre-signed URL or a cached copy: never past the token


class PlaybackService:
    def __init__(self, store: CatalogStore, storage: ObjectStorage, signer: PlaybackSigner) -> None:
        self.store = store
        self.storage = storage
        self.signer = signer

    def _published(self, course_id: str | None) -> bool:
        course = self.store.get_course(course_id) if course_id else None
        return course is not None and course.published

    def urls(self, video: Video) -> tuple[str | None, str | None]:
        """`playback_url` and `poster_url` of a video its caller may read (checked by the caller)."""
        if not video.watchable:
            return None, None
        token = self.signer.mint(video.id, PUBLISHED if self._published(video.course_id) else DRAFT)
        # The poster comes with the ladder (none while playable early); audio only: none at all.
        ready = video.status is VideoStatus.READY
        poster = self.signer.url(token, POSTER) if ready and video.width else None
        return self.signer.url(token, MASTER), poster

    def resolve(self, token: str, path: str) -> Playlist | StoredFile:
        checked = self.signer.parse(token)
        if not _PATH.match(path):
            raise NotFound("no such playback file")
        video = self.store.get_video(checked.video_id)
        if video is None or not video.watchable or (
                checked.scope == PUBLISHED and not self._published(video.course_id)):
            raise NotFound("video not found")
        key = f"{output_prefix(video.id)}{path}"
        if not path.endswith(".m3u8"):
            left = int(checked.expires - self.signer.clock())
            return StoredFile(key, max(1, min(left, STORAGE_URL_LIFE)))
        try:
            with self.storage.open_read(key) as stream:
                data = stream.read(MAX_PLAYLIST_BYTES)
        except NoSuchKey:
            raise NotFound("no such playback file") from None
        text = start_on_middle_rung(data.decode("utf-8", errors="replace"))
        return Playlist(text, f'"{hashlib.sha256(text.encode()).hexdigest()[:32]}"')


def start_on_middle_rung(text: str) -> str:
    """List the middle rung of a master playlist first, the others after it in their order.

    Players start on the first variant listed (Safari, hls.js without `startLevel`): the top rung
    stalls a slow connection, the bottom one shows blurry slides until the player steps up. With an
    even count the upper middle wins (lecture rungs are cheap; text must be legible)."""
    lines = text.splitlines()
    variants: list[tuple[int, int, int]] = []  # (first line, URI line, bandwidth)
    for index, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:"):
            continue
        uri = index + 1
        while uri < len(lines) and (not lines[uri].strip() or lines[uri].startswith("#")):
            uri += 1
        if uri < len(lines):
            bandwidth = _BANDWIDTH.search(line[len("#EXT-X-STREAM-INF:"):])
            variants.append((index, uri, int(bandwidth.group(1)) if bandwidth else 0))
    if len(variants) < 2:
        return text
    start = sorted(variants, key=lambda v: v[2])[len(variants) // 2]
    first = variants[0][0]
    if start[0] == first:
        return text
    block = lines[start[0]:start[1] + 1]
    reordered = lines[:first] + block + lines[first:start[0]] + lines[start[1] + 1:]
    return "\n".join(reordered) + "\n"

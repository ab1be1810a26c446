"""Playback of private HLS outputs: the API serves the (small) playlists with every reference
rewritten to a URL that works on its own: variant playlists back through this API under the same
expiring token, segments as pre-signed storage URLs (local /blobs or S3). Players never need
credentials, and the API never carries segment bytes."""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from urllib.parse import quote

from coursecrafter_server.domain import NotFound, Video, VideoStatus
from coursecrafter_worker.storage import NoSuchKey, ObjectStorage
from coursecrafter_server.videos import output_prefix

_PLAYLIST_PATH = re.compile(r"^(master|(?:\d{2,4}p|audio|early)/index)\.m3u8$")
_URI_ATTR = re.compile(r'URI="([^"]+)"')


class PlaybackSigner:
    def __init__(self, secret: bytes, *, api_url: str, ttl: int) -> None:
        self._secret = hashlib.sha256(b"coursecrafter-playback-v1" + secret).digest()
        self.api_url = api_url
        self.ttl = ttl

    def token(self, video_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{video_id}.{expires}".encode(), hashlib.sha256).hexdigest()

    def check(self, video_id: str, expires: int, token: str) -> None:
        # Bytes: compare_digest refuses (TypeError) a str with non-ASCII characters.
        expected = self.token(video_id, expires).encode()
        if expires < time.time() or not hmac.compare_digest(expected, token.encode()):
            raise NotFound("playback link is invalid or has expired")

    def query(self, video_id: str, expires: int) -> str:
        return f"expires={expires}&token={self.token(video_id, expires)}"

    def master_url(self, video_id: str) -> str:
        expires = int(time.time()) + self.ttl
        return (f"{self.api_url}/api/v1/playback/{quote(video_id)}/master.m3u8?"
                f"{self.query(video_id, expires)}")


class PlaybackService:
    def __init__(self, storage: ObjectStorage, signer: PlaybackSigner) -> None:
        self.storage = storage
        self.signer = signer

    def urls(self, video: Video) -> tuple[str | None, str | None]:
        if video.kind.value != "video":
            return None, None
        if video.status is not VideoStatus.READY:
            # Playable early: the same master URL, which names the early rendition until the
            # ladder replaces it; the poster comes with the ladder.
            early = video.playable and video.status in (VideoStatus.QUEUED, VideoStatus.PROCESSING)
            return (self.signer.master_url(video.id) if early else None), None
        poster_key = f"{output_prefix(video.id)}poster.jpg"
        poster = None
        if video.width:  # audio-only lectures have no poster
            poster = self.storage.presign_get(poster_key, self.signer.ttl)
        return self.signer.master_url(video.id), poster

    def playlist(self, video_id: str, path: str, expires: int, token: str) -> str:
        self.signer.check(video_id, expires, token)
        if not _PLAYLIST_PATH.match(path):
            raise NotFound("no such playlist")
        key = f"{output_prefix(video_id)}hls/{path}"
        try:
            with self.storage.open_read(key) as stream:
                text = stream.read(1024 * 1024).decode("utf-8")
        except NoSuchKey:
            raise NotFound("no such playlist") from None
        directory = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
        remaining = max(60, expires - int(time.time()))
        return _rewrite(text, lambda uri: self._resolve(video_id, directory, uri, expires,
                                                        remaining))

    def _resolve(self, video_id: str, directory: str, uri: str, expires: int,
                 remaining: int) -> str:
        if "://" in uri or uri.startswith("/") or ".." in uri.split("/"):
            return uri  # not ours to rewrite (and never a way out of the video's prefix)
        relative = directory + uri
        if relative.endswith(".m3u8"):
            # Relative to this playlist's URL, so it resolves back to this route.
            return f"{uri}?{self.signer.query(video_id, expires)}"
        return self.storage.presign_get(f"{output_prefix(video_id)}hls/{relative}", remaining)


def _rewrite(text: str, resolve) -> str:  # type: ignore[no-untyped-def]
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            lines.append(resolve(stripped))
        elif stripped.startswith("#") and 'URI="' in stripped:
            lines.append(_URI_ATTR.sub(lambda m: f'URI="{resolve(m.group(1))}"', stripped))
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"

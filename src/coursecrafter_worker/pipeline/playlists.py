"""HLS master playlists the pipeline writes itself, and what they say about their renditions.

One layout for a ladder with a separate audio rendition, whoever makes it (the whole-ladder
transcode, transcode.py; the chunk join, chunks.py): the audio is `audio/index.m3u8`, declared by
an EXT-X-MEDIA of group "audio", and every rung's EXT-X-STREAM-INF names that group, counts the
audio in its BANDWIDTH and lists both codecs. FFmpeg's own master for such a ladder is not used:
it names the group "group_audio" and lists the audio once more as a variant of its own (which a
player would offer as a quality).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

AUDIO_GROUP = "audio"
AUDIO_RUNG = "audio"
#: The audio the pipeline encodes: AAC-LC.
AUDIO_CODEC = "mp4a.40.2"

_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def stream_inf(master: str) -> dict[str, dict[str, str]]:
    """Rung name (the first directory of its URI) → the attributes of its #EXT-X-STREAM-INF."""
    out: dict[str, dict[str, str]] = {}
    lines = master.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:") and i + 1 < len(lines):
            attrs = {k: v for k, v in _ATTR.findall(line.split(":", 1)[1])}
            out[lines[i + 1].strip().split("/")[0]] = attrs
    return out


def bandwidths(segments: list[tuple[float, Path]]) -> tuple[int, int]:
    """(peak, average) bit rate of a rendition's segments, as FFmpeg 7+ measures them for
    BANDWIDTH / AVERAGE-BANDWIDTH: bytes of each segment over its EXTINF duration."""
    peak = max(int(p.stat().st_size * 8 / max(d, 0.1)) for d, p in segments)
    total = sum(d for d, _ in segments)
    average = int(sum(p.stat().st_size for _, p in segments) * 8 / max(total, 0.1))
    return peak, average


@dataclass(frozen=True)
class Variant:
    """A rung in a master playlist, with its picture's own numbers (no audio in them)."""

    name: str  # its directory: the playlist is `{name}/index.m3u8`
    bandwidth: int
    resolution: str | None = None  # "1280x720"
    codecs: str | None = None  # the picture's ("avc1.64001f"); an audio codec here is dropped
    average: int | None = None  # AVERAGE-BANDWIDTH, written only with the audio's average too


@dataclass(frozen=True)
class Audio:
    """The ladder's one audio rendition, `{AUDIO_RUNG}/index.m3u8`."""

    bandwidth: int
    average: int | None = None


def master_playlist(variants: list[Variant], audio: Audio | None) -> str:
    """The master playlist of `variants` (in that order), naming the audio rendition when there
    is one: each rung's BANDWIDTH is its picture's plus the audio's."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if audio is not None:
        lines.append(f'#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="{AUDIO_GROUP}",NAME="audio",'
                     f'DEFAULT=YES,AUTOSELECT=YES,URI="{AUDIO_RUNG}/index.m3u8"')
    for v in variants:
        extra = audio.bandwidth if audio is not None else 0
        attrs = [f"BANDWIDTH={v.bandwidth + extra}"]
        if v.average is not None and (audio is None or audio.average is not None):
            extra_average = audio.average if audio is not None and audio.average else 0
            attrs.append(f"AVERAGE-BANDWIDTH={v.average + extra_average}")
        if v.resolution:
            attrs.append(f"RESOLUTION={v.resolution}")
        if v.codecs:
            codecs = [c for c in v.codecs.strip('"').split(",") if c and
                      (audio is None or not c.startswith("mp4a."))]
            if audio is not None:
                codecs.append(AUDIO_CODEC)
            attrs.append(f'CODECS="{",".join(codecs)}"')
        if audio is not None:
            attrs.append(f'AUDIO="{AUDIO_GROUP}"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), f"{v.name}/index.m3u8"]
    return "\n".join(lines) + "\n"

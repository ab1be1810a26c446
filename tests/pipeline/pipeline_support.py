"""Helpers for the pipeline tests: make clips with FFmpeg's lavfi sources, read HLS outputs back.

Everything here runs the same FFmpeg binary the pipeline uses (find_ffmpeg()), so the tests need
nothing but the imageio-ffmpeg wheel.
"""

from __future__ import annotations

import random
import re
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from coursecrafter_worker.pipeline import find_ffmpeg

FFMPEG = find_ffmpeg()


def ffmpeg(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run FFmpeg quietly; raise with its stderr when it fails."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *map(str, args)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}")
    return proc


def make_clip(
    path: Path,
    *,
    size: str = "320x240",
    rate: float = 30,
    duration: float = 2.0,
    video: bool = True,
    audio: bool = True,
    vf: str | None = None,
    out_args: tuple[str, ...] = (),
    source: str = "testsrc2",
    pix_fmt: str = "yuv420p",
) -> Path:
    """A small test clip: `testsrc2` (or `color`) video, `sine` audio, x264 ultrafast + AAC."""
    args: list[str] = []
    if video:
        sep = ":" if "=" in source else "="
        args += ["-f", "lavfi", "-i", f"{source}{sep}s={size}:r={rate}:d={duration}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    if vf:
        args += ["-vf", vf]
    if video:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", pix_fmt]
    if audio:
        args += ["-c:a", "aac", "-b:a", "64k"]
    ffmpeg(*args, *out_args, path)
    return path


# --------------------------------------------------------------------------------------------
# Reading outputs back


@dataclass
class Variant:
    bandwidth: int
    resolution: tuple[int, int] | None
    codecs: str
    uri: str


def read_master(path: Path) -> list[Variant]:
    lines = path.read_text().splitlines()
    assert lines and lines[0] == "#EXTM3U", lines[:2]
    out: list[Variant] = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = line.split(":", 1)[1]
            bw = re.search(r"(?:^|,)BANDWIDTH=(\d+)", attrs)
            res = re.search(r"RESOLUTION=(\d+)x(\d+)", attrs)
            codecs = re.search(r'CODECS="([^"]*)"', attrs)
            assert bw, line
            out.append(
                Variant(
                    bandwidth=int(bw.group(1)),
                    resolution=(int(res.group(1)), int(res.group(2))) if res else None,
                    codecs=codecs.group(1) if codecs else "",
                    uri=lines[i + 1].strip(),
                )
            )
    return out


@dataclass
class MediaPlaylist:
    durations: list[float]
    segments: list[str]
    ended: bool
    target_duration: int

    @property
    def total(self) -> float:
        return sum(self.durations)


def read_playlist(path: Path) -> MediaPlaylist:
    text = path.read_text()
    durations: list[float] = []
    segments: list[str] = []
    target = -1
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#EXTINF:"):
            durations.append(float(line[len("#EXTINF:"):].split(",")[0]))
            segments.append(lines[i + 1].strip())
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":", 1)[1])
    return MediaPlaylist(durations, segments, "#EXT-X-ENDLIST" in text, target)


@dataclass
class Decoded:
    seconds: float
    frames: int
    has_audio: bool
    has_video: bool
    stderr: str


def decode(path: Path, timeout: float = 60) -> Decoded:
    """Decode `path` (an HLS playlist or any media) to the null muxer, as a player would."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-i", str(path), "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    times = re.findall(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)", proc.stderr)
    assert times, proc.stderr[-2000:]
    h, m, s = times[-1]
    frames = re.findall(r"frame=\s*(\d+)", proc.stderr)
    stream_lines = [line for line in proc.stderr.splitlines() if "Stream #0:" in line]
    return Decoded(
        seconds=int(h) * 3600 + int(m) * 60 + float(s),
        frames=int(frames[-1]) if frames else 0,
        has_audio=any("Audio:" in line for line in stream_lines),
        has_video=any("Video:" in line for line in stream_lines),
        stderr=proc.stderr,
    )


def jpeg_size(path: Path) -> tuple[int, int]:
    """(width, height) from a JPEG's SOF marker."""
    data = path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    raise AssertionError("no SOF marker in JPEG")


def frame_at(source: Path, seconds: float, out: Path) -> Path:
    ffmpeg("-ss", str(seconds), "-i", source, "-frames:v", "1", "-update", "1", out)
    return out


def psnr(a: Path, b: Path) -> float:
    """Average PSNR (dB) between two same-size images; higher is more alike."""
    argv = [FFMPEG, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b),
            "-filter_complex", "[0][1]psnr", "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    match = re.search(r"average:(inf|[\d.]+)", proc.stderr)
    assert match, proc.stderr[-1000:]
    return float(match.group(1))


def output_files(out_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*") if p.is_file())


# --------------------------------------------------------------------------------------------
# The clips (one set per session, each made on first use)


class Clips:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _p(self, name: str) -> Path:
        return self.root / name

    @cached_property
    def normal(self) -> Path:
        """854x480 16:9, 30 fps, 6 s with audio: two 4 s-grid segments (4 + 2)."""
        return make_clip(self._p("normal.mp4"), size="854x480", duration=6)

    @cached_property
    def short(self) -> Path:
        return make_clip(self._p("short.mp4"), size="320x180", duration=1)

    @cached_property
    def no_audio(self) -> Path:
        return make_clip(self._p("noaudio.mp4"), size="640x360", duration=2, audio=False)

    @cached_property
    def audio_only(self) -> Path:
        return make_clip(self._p("audio.m4a"), video=False, duration=2)

    @cached_property
    def audio_with_cover(self) -> Path:
        """An .m4a with cover art (an attached-picture video stream): still audio-only."""
        cover = self._p("cover.jpg")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64", "-frames:v", "1", "-update", "1", cover)
        out = self._p("cover.m4a")
        ffmpeg("-i", self.audio_only, "-i", cover, "-map", "0", "-map", "1", "-c", "copy",
               "-disposition:v:0", "attached_pic", out)
        return out

    @cached_property
    def one_frame(self) -> Path:
        return make_clip(self._p("oneframe.mp4"), size="320x240", rate=25, duration=0.04,
                         audio=False, out_args=("-frames:v", "1"))

    @cached_property
    def odd(self) -> Path:
        # 4:4:4: x264 cannot store odd sizes in 4:2:0.
        # (testsrc2 rounds its own size to even: scale after it.)
        return make_clip(self._p("odd.mp4"), size="854x480", duration=1, audio=False,
                         vf="scale=853:479,setsar=1", pix_fmt="yuv444p")

    @cached_property
    def portrait(self) -> Path:
        return make_clip(self._p("portrait.mp4"), size="480x854", duration=1, audio=False)

    @cached_property
    def rotated(self) -> Path:
        """Stored 854x480 with a 90-degree display matrix: a phone held upright."""
        out = self._p("rotated.mp4")
        ffmpeg("-display_rotation", "90", "-i", self.short_landscape_480, "-c", "copy", out)
        return out

    @cached_property
    def short_landscape_480(self) -> Path:
        return make_clip(self._p("land480.mp4"), size="854x480", duration=1)

    @cached_property
    def anamorphic(self) -> Path:
        """720x480 stored, SAR 32:27: displays as 853x480 (NTSC widescreen DV)."""
        return make_clip(self._p("anamorphic.mp4"), size="720x480", duration=1, audio=False,
                         vf="setsar=32/27")

    @cached_property
    def vfr(self) -> Path:
        """Every frame for the first 20, then every 4th: 12.8 fps average on a 30 fps base."""
        return make_clip(self._p("vfr.mp4"), size="320x240", duration=3, audio=False,
                         vf="select='lt(n\\,20)+not(mod(n\\,4))'", out_args=("-fps_mode", "vfr"))

    @cached_property
    def hd1440(self) -> Path:
        return make_clip(self._p("hd1440.mp4"), size="2560x1440", rate=10, duration=1, audio=False)

    @cached_property
    def long_gray(self) -> Path:
        """20 s of 1280x720: cheap to make (flat gray), seconds to transcode: for timeouts."""
        return make_clip(self._p("long.mp4"), size="1280x720", duration=20, source="color=c=gray")

    @cached_property
    def raw_h264(self) -> Path:
        """An elementary H.264 stream: the container states no duration."""
        return make_clip(self._p("raw.h264"), size="320x240", duration=2, audio=False,
                         out_args=("-f", "h264"))

    @cached_property
    def live_mkv(self) -> Path:
        """Matroska written live (as a browser MediaRecorder does): no duration in the header."""
        return make_clip(self._p("live.mkv"), size="320x240", duration=2,
                         out_args=("-f", "matroska", "-live", "1"))

    @cached_property
    def interlaced(self) -> Path:
        return make_clip(self._p("interlaced.mp4"), size="320x240", rate=25, duration=1,
                         audio=False, vf="setfield=tff",
                         out_args=("-flags", "+ildct+ilme", "-x264opts", "tff=1"))

    @cached_property
    def two_audio(self) -> Path:
        out = self._p("twoaudio.mkv")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=1",
               "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
               "-f", "lavfi", "-i", "sine=frequency=880:duration=1",
               "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-preset", "ultrafast",
               "-c:a", "aac", "-disposition:a:0", "0", "-disposition:a:1", "default", out)
        return out

    @cached_property
    def too_large(self) -> Path:
        """8208x16: declared wider than the 8192 limit (FFV1 in Matroska, one frame)."""
        out = self._p("wide.mkv")
        ffmpeg("-f", "lavfi", "-i", "color=c=black:s=8208x16:d=0.04", "-frames:v", "1",
               "-c:v", "ffv1", out)
        return out

    @cached_property
    def truncated(self) -> Path:
        """An MP4 whose index (moov, written last) is gone: cut at 50%."""
        data = self.normal.read_bytes()
        out = self._p("truncated.mp4")
        out.write_bytes(data[: len(data) // 2])
        return out

    @cached_property
    def truncated_faststart(self) -> Path:
        """An MP4 with its index first (faststart), cut at 50%: the index outlives half the data."""
        full = make_clip(self._p("faststart.mp4"), size="320x240", duration=4,
                         out_args=("-movflags", "+faststart"))
        data = full.read_bytes()
        out = self._p("truncated_faststart.mp4")
        out.write_bytes(data[: len(data) // 2])
        return out

    @cached_property
    def index_only(self) -> Path:
        """A faststart MP4 cut just after its index: every sample it lists is missing."""
        data = self.truncated_faststart.with_name("faststart.mp4").read_bytes()
        mdat = data.find(b"mdat")
        assert mdat > 0
        out = self._p("index_only.mp4")
        out.write_bytes(data[: mdat + 4 + 100])
        return out

    @cached_property
    def text_file(self) -> Path:
        out = self._p("notes.mp4")
        out.write_text("Lecture 3 notes: bring a calculator.\n" * 20)
        return out

    @cached_property
    def random_bytes(self) -> Path:
        out = self._p("random.mp4")
        out.write_bytes(random.Random(1234).randbytes(200_000))
        return out

    @cached_property
    def empty(self) -> Path:
        out = self._p("empty.mp4")
        out.write_bytes(b"")
        return out

    @cached_property
    def playlist_disguised(self) -> Path:
        """An HLS playlist uploaded as a video, pointing at a local file: must not be followed."""
        secret = self._p("secret.ts")
        make_clip(secret, size="160x120", duration=1, out_args=("-f", "mpegts"))
        out = self._p("sneaky.m3u8")
        out.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.0,\nfile:{secret}\n#EXT-X-ENDLIST\n")
        return out

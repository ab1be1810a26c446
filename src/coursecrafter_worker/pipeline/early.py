"""The early pass: make a lecture watchable before its ladder exists (DESIGN.md "Transcoding").

`make_early(source, out_dir)` writes `out_dir/hls/early/index.m3u8` + `seg_NNNNN.ts` and
`out_dir/hls/master.m3u8` (one rendition: `early/index.m3u8`), by the first path that works:

1. remux: a source browsers play as it is (H.264 8-bit 4:2:0 — yuv420p/yuvj420p —, profile
   baseline/main/high, level <= 5.2, progressive, not rotated; AAC with at most 2 channels or
   no audio; in MP4/MOV/MKV/TS) is copied (`-c copy`) into HLS segments cut at its own
   keyframes. Profile and level come from the first SPS (`trace_headers` on one packet). If the
   copy fails, or its keyframes are too far apart (a segment longer than `MAX_SEGMENT_SECONDS`,
   e.g. a screen recording with a keyframe every 30 s), the next path is taken.
2. fast rung: the ladder's lowest rung (360p, or the source's own size below that) in one quick
   x264 `ultrafast` pass, keyframes every `SEGMENT_SECONDS` as the ladder has them.

No early rendition (returns None): audio-only sources (their one AAC rendition is the whole
ladder and takes seconds anyway), and sources under 1 s (likewise).

The master playlist is written here, not by FFmpeg, so it names exactly the one rendition; the
full ladder's master later replaces it under the same key. Without CODECS on purpose: a remuxed
AAC may be HE-AAC, and a wrong CODECS attribute is worse than none for players.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coursecrafter_worker.messages import Rendition

from .errors import MediaError
from coursecrafter_worker.storage.keys import EARLY_DIR, EARLY_PLAYLIST, MASTER_PLAYLIST

from .ladder import plan_ladder
from .playlists import bandwidths
from .probe import MediaInfo, classify_failure, input_options, input_url, probe
from .process import find_ffmpeg, run_ffmpeg
from .transcode import PROBE_TIMEOUT, SEGMENT_SECONDS, default_timeout, parse_media_playlist

log = logging.getLogger(__name__)

#: A remux whose longest segment exceeds this (the source's keyframe spacing) is not used.
MAX_SEGMENT_SECONDS = 10.0
FAST_PRESET = "ultrafast"
FAST_CRF = 26
FAST_AUDIO_BITRATE = 96_000
MIN_SECONDS = 1.0

BROWSER_PIX_FMTS = ("yuv420p", "yuvj420p")
BROWSER_PROFILES = {66: "baseline", 77: "main", 100: "high"}  # profile_idc
MAX_LEVEL_IDC = 52
# Demuxer names (FFmpeg's format_name is a comma list: "mov,mp4,m4a,3gp,3g2,mj2").
REMUX_CONTAINERS = ("mov", "mp4", "matroska", "mpegts")

_SPS_FIELD = re.compile(r"\b(profile_idc|level_idc)\s+[01]+\s*=\s*(\d+)")
_EMPTY_AUDIO = re.compile(r"\[af#\d+:\d+[^\]]*\] No filtered frames for output stream")


@dataclass(frozen=True)
class EarlyResult:
    kind: str  # "remux" | "fast_rung"
    rendition: Rendition  # playlist "hls/early/index.m3u8"
    duration: float  # seconds, sum of the segments
    width: int | None  # source display size, as in `completed`
    height: int | None
    master_playlist: str = MASTER_PLAYLIST


class _NotUsable(Exception):
    """Internal: this path does not fit the source (the reason is for the log)."""


def remux_refusal(info: MediaInfo, sps: dict[str, int] | None) -> str | None:
    """Why `info` cannot be remuxed for browsers as it is (None: it can). Pure."""
    if not info.has_video:
        return "no video"
    if info.video_codec != "h264":
        return f"video codec {info.video_codec}"
    if info.pix_fmt not in BROWSER_PIX_FMTS:
        return f"pixel format {info.pix_fmt}"  # 10-bit, 4:2:2, 4:4:4
    if info.interlaced:
        return "interlaced"
    if info.rotation:
        return "rotated (a segment carries no display matrix)"
    formats = (info.format_name or "").split(",")
    if not any(f in REMUX_CONTAINERS for f in formats):
        return f"container {info.format_name}"
    if info.has_audio and (info.audio_codec != "aac" or (info.audio_channels or 2) > 2):
        return f"audio {info.audio_codec} x{info.audio_channels}"
    if sps is None:
        return "no readable SPS"
    if sps.get("profile_idc") not in BROWSER_PROFILES:
        return f"H.264 profile_idc {sps.get('profile_idc')}"
    if sps.get("level_idc", 99) > MAX_LEVEL_IDC:
        return f"H.264 level_idc {sps.get('level_idc')}"
    return None


def _input_args(source: Path) -> list[str]:
    return [*[x for k, v in input_options().items() for x in (f"-{k}", v)],
            "-i", input_url(source)]


def read_sps(source: Path, info: MediaInfo, *, ffmpeg: str, timeout: float) -> dict[str, int] | None:
    """profile_idc and level_idc of the first SPS, read by FFmpeg's trace_headers on one packet."""
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "info", *_input_args(source),
            "-map", f"0:{info.video_index}", "-c", "copy", "-bsf:v", "trace_headers",
            "-frames:v", "1", "-f", "null", "-"]
    run = run_ffmpeg(argv, timeout=timeout)
    found: dict[str, int] = {}
    for name, value in _SPS_FIELD.findall(run.stderr):
        found.setdefault(name, int(value))
    return found if "profile_idc" in found and "level_idc" in found else None


def _hls_args(segment_seconds: int) -> list[str]:
    return ["-map_metadata", "-1", "-map_chapters", "-1", "-max_muxing_queue_size", "4096",
            "-f", "hls", "-hls_time", str(segment_seconds), "-hls_playlist_type", "vod",
            "-hls_flags", "independent_segments", "-hls_segment_type", "mpegts",
            "-hls_segment_filename", f"{EARLY_DIR}/seg_%05d.ts", EARLY_PLAYLIST]


def remux_command(source: Path, info: MediaInfo, *, ffmpeg: str) -> list[str]:
    maps = ["-map", f"0:{info.video_index}"]
    if info.has_audio and info.audio_index is not None:
        maps += ["-map", f"0:{info.audio_index}"]
    return [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", "pipe:1", "-nostats", *_input_args(source), *maps, "-c", "copy",
            *_hls_args(SEGMENT_SECONDS)]


def fast_rung_command(source: Path, info: MediaInfo, *, ffmpeg: str,
                      with_audio: bool = True) -> list[str]:
    rung = plan_ladder(info)[-1]  # the lowest rung: the cheapest to make
    filters = ["bwdif=mode=send_frame:deint=interlaced"] if info.interlaced else []
    filters += [f"fps={rung.fps}", f"scale={rung.width}:{rung.height}", "setsar=1",
                "format=yuv420p"]
    gop = max(1, round(rung.fps_value * SEGMENT_SECONDS))
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "warning",
            "-progress", "pipe:1", "-nostats", *_input_args(source),
            "-map", f"0:{info.video_index}", "-vf", ",".join(filters),
            "-c:v", "libx264", "-preset", FAST_PRESET, "-crf", str(FAST_CRF),
            "-maxrate", f"{rung.video_bitrate // 1000}k",
            "-bufsize", f"{rung.video_bitrate * 2 // 1000}k",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-force_key_frames", f"expr:gte(t,n_forced*{SEGMENT_SECONDS})", "-fps_mode", "cfr"]
    if with_audio and info.has_audio and info.audio_index is not None:
        argv += ["-map", f"0:{info.audio_index}", "-c:a", "aac", "-ac", "2",
                 "-b:a", f"{FAST_AUDIO_BITRATE // 1000}k"]
        if info.audio_sample_rate not in (44100, 48000):
            argv += ["-ar", "48000"]
    return argv + _hls_args(SEGMENT_SECONDS)


def _segments(out_dir: Path, info: MediaInfo, stderr: str) -> list[tuple[float, Path]]:
    """The written segments, if they are the whole source: a cut-off or lying file must not
    become playable and then fail (the ladder decides about those)."""
    if "partial file" in stderr.lower():
        raise _NotUsable("the source is cut off")
    playlist = out_dir / EARLY_PLAYLIST
    if not playlist.is_file():
        raise _NotUsable("no playlist written")
    segments, ended = parse_media_playlist(playlist.read_text(errors="replace"))
    if not ended or not segments:
        raise _NotUsable("playlist without segments or #EXT-X-ENDLIST")
    found = []
    for duration, uri in segments:
        path = playlist.parent / uri
        if not path.is_file() or path.stat().st_size == 0:
            raise _NotUsable(f"segment {uri} missing or empty")
        found.append((duration, path))
    total = sum(d for d, _ in found)
    if abs(total - info.duration) > max(1.0, 0.05 * info.duration):
        raise _NotUsable(f"{total:.2f} s written of a {info.duration:.2f} s source")
    return found


def write_master(out_dir: Path, segments: list[tuple[float, Path]],
                 width: int | None, height: int | None) -> int:
    """Write the one-rendition master playlist; return its BANDWIDTH (peak segment bit rate)."""
    peak, average = bandwidths(segments)
    attrs = f"BANDWIDTH={peak},AVERAGE-BANDWIDTH={average}"
    if width and height:
        attrs += f",RESOLUTION={width}x{height}"
    text = ("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n"
            f"#EXT-X-STREAM-INF:{attrs}\nearly/index.m3u8\n")
    (out_dir / MASTER_PLAYLIST).write_text(text)
    return peak


def _fresh(out_dir: Path) -> None:
    shutil.rmtree(out_dir / "hls", ignore_errors=True)
    (out_dir / EARLY_DIR).mkdir(parents=True)


def make_early(
    source: Path,
    out_dir: Path,
    *,
    check: Callable[[], None] | None = None,
    timeout: float | None = None,
    ffmpeg: str | None = None,
    info: MediaInfo | None = None,
) -> EarlyResult | None:
    """Write the early rendition and its master into `out_dir` (see the module doc); None when
    the source gets none. `check` is called on every FFmpeg progress line: an exception it raises
    (cancellation) stops FFmpeg and propagates. Raises MediaError/TranscodeError when neither
    path worked (the caller goes on with the ladder, which reports the real problem)."""
    source, out_dir = Path(source), Path(out_dir)
    ffmpeg = ffmpeg or find_ffmpeg()
    started = time.monotonic()
    if info is None:
        info = probe(source, ffmpeg=ffmpeg, timeout=PROBE_TIMEOUT if timeout is None
                     else min(PROBE_TIMEOUT, timeout))
    if not info.has_video or info.video_index is None or info.duration < MIN_SECONDS:
        return None
    budget = default_timeout(info.duration) if timeout is None else timeout
    deadline = started + budget

    def on_line(_line: str) -> None:
        if check is not None:
            check()

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MediaError("timeout", "The early rendition took too long.",
                             detail=f"budget {budget} s")
        return remaining

    # 1. Remux.
    sps = None
    if info.video_codec == "h264":
        sps = read_sps(source, info, ffmpeg=ffmpeg, timeout=min(30.0, left()))
    refusal = remux_refusal(info, sps)
    if refusal is None:
        _fresh(out_dir)
        run = run_ffmpeg(remux_command(source, info, ffmpeg=ffmpeg), timeout=left(),
                         cwd=out_dir, on_stdout_line=on_line)
        try:
            if run.timed_out or run.returncode != 0:
                raise _NotUsable(f"FFmpeg exit {run.returncode}: {run.stderr[-500:]}")
            segments = _segments(out_dir, info, run.stderr)
            longest = max(d for d, _ in segments)
            if longest > MAX_SEGMENT_SECONDS:
                raise _NotUsable(f"keyframes too far apart (a {longest:.1f} s segment)")
        except _NotUsable as exc:
            refusal = f"remux unusable: {exc}"
        else:
            bandwidth = write_master(out_dir, segments, info.width, info.height)
            return _result("remux", info, segments, bandwidth, started)
    log.info("early pass: no remux (%s): fast rung", refusal)

    # 2. Fast rung.
    rung = plan_ladder(info)[-1]
    _fresh(out_dir)
    run = run_ffmpeg(fast_rung_command(source, info, ffmpeg=ffmpeg), timeout=left(),
                     cwd=out_dir, on_stdout_line=on_line)
    if run.returncode == 0 and info.has_audio and _EMPTY_AUDIO.search(run.stderr):
        # A declared audio track without a packet: segments would promise AAC that never comes.
        _fresh(out_dir)
        run = run_ffmpeg(fast_rung_command(source, info, ffmpeg=ffmpeg, with_audio=False),
                         timeout=left(), cwd=out_dir, on_stdout_line=on_line)
    if run.timed_out or run.returncode != 0:
        raise classify_failure(run, source, what="transcode")
    try:
        segments = _segments(out_dir, info, run.stderr)
    except _NotUsable as exc:
        raise MediaError("early_unusable", "The early rendition is incomplete.",
                         detail=f"{exc}\n{run.stderr[-2000:]}") from None
    bandwidth = write_master(out_dir, segments, rung.width, rung.height)
    return _result("fast_rung", info, segments, bandwidth, started, rung.width, rung.height)


def _result(kind: str, info: MediaInfo, segments: list[tuple[float, Path]], bandwidth: int,
            started: float, width: int | None = None, height: int | None = None) -> EarlyResult:
    width, height = width or info.width or 0, height or info.height or 0
    duration = round(sum(d for d, _ in segments), 3)
    log.info("early pass: %s, %dx%d, %d segment(s), %.1f s of video in %.1f s", kind, width,
             height, len(segments), duration, time.monotonic() - started)
    return EarlyResult(
        kind=kind,
        rendition=Rendition(height=height, width=width, bitrate=bandwidth,
                            playlist=EARLY_PLAYLIST),
        duration=duration, width=info.width, height=info.height,
    )

"""What is in a source file: `probe()` -> `MediaInfo`.

Two ways to ask, same answer:

1. `ffprobe -print_format json -show_format -show_streams` when an `ffprobe` binary sits next to
   the FFmpeg binary (same build, so same demuxers and decoders).
2. Otherwise (the imageio-ffmpeg wheel ships FFmpeg only) `ffmpeg -hide_banner -i FILE` with no
   output: FFmpeg prints the input description to stderr and exits 1 with "At least one output
   file must be specified". We parse that banner:

   - `Input #0, <demuxer names>, from '...':` -> format
   - `Duration: HH:MM:SS.ss, start: S, bitrate: N kb/s` (or `N/A`) -> duration, bitrate
   - `Stream #0:I[0x..](lang): Video: CODEC (...), PIXFMT(range, ..., field order), WxH [SAR a:b
     DAR c:d], N kb/s, F fps, R tbr, T tbn (default)` -> split at top-level commas (parentheses
     and brackets nest), each field recognized by its shape, not its position
   - `Stream #0:I: Audio: CODEC, RATE Hz, LAYOUT, FMT, N kb/s`
   - the stream's `Side data:` block (`Display Matrix: rotation of -90.00 degrees`, FFmpeg 7+
     spelling, or the older `displaymatrix: rotation of ...`) and a `rotate : 90` metadata tag
   - `(attached pic)` streams (cover art of an .m4a/.mp3) are not video; `Video: none` /
     `Audio: none` (no decoder for the codec) are not usable.

   The banner format is not a stable interface, so the parser is deliberately tolerant: an
   unrecognized field is ignored, and what matters (dimensions, duration) is cross-checked
   later by the transcode itself (the result's duration is what was produced).

When the container has no duration (browser MediaRecorder WebM, raw .h264, some MPEG-TS), or a
non-positive or absurd one (> 24 h), a demux pass (`-c copy -f null -`, cheap: nothing is decoded)
gives the real one from the packets' timestamps, and when the packets carry none (raw .h264), a
decoding pass of one stream does. A duration that lies without being absurd (an MP4 whose index
promises more data than the file holds) is not caught here: the transcode produces what can be
decoded and `TranscodeResult.duration` is what was produced.

Security: sources are user uploads. Inputs are opened as `file:` paths with
`-protocol_whitelist file` and a `-format_whitelist` of ordinary audio/video demuxers
(`ALLOWED_DEMUXERS`), so a "video" that is really an HLS playlist, a concat script or an image
sequence pattern cannot make FFmpeg read other local files or fetch URLs.

Modules: `probe_parsing.py` reads the banner and ffprobe's JSON, `probe_failures.py` says why a
read failed; this one runs FFmpeg and decides the answer.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import NOT_MEDIA_MESSAGE, TRUNCATED_MESSAGE, MediaError, TranscodeError
from .probe_failures import classify_failure, mp4_box_overruns
from .probe_parsing import ParsedMedia, parse_banner, parse_ffprobe_json
from .process import FFmpegRun, find_ffmpeg, find_ffprobe, run_ffmpeg

MAX_DIMENSION = 8192
# 8K DCI (8192x4320): every real camera and screen recording fits; beyond it one frame costs
# more than a lecture's worth of decoding (8192x8192 decodes at ~1/28 realtime on 2 cores).
MAX_PIXELS = 8192 * 4320
MAX_PLAUSIBLE_DURATION = 24 * 3600.0
# Under this, the container's word is checked against the packets (cheap on a short file): a
# sub-second video gets padded to 1 s, which must not happen to a longer one that lies.
MIN_TRUSTED_DURATION = 1.0

# Demuxer names FFmpeg may pick for an upload (one name of a multi-name demuxer is enough:
# "mov" admits "mov,mp4,m4a,3gp,3g2,mj2", "matroska" admits "matroska,webm").
ALLOWED_DEMUXERS = (
    "mov,matroska,avi,flv,asf,mpegts,mpeg,mpegvideo,m4v,h264,hevc,mxf,dv,nut,ogg,mp3,aac,wav,"
    "w64,flac,aiff,caf,amr,wv,ape,ivf,obu,rm,yuv4mpegpipe,loas,ac3,eac3,dts,truehd,mlp,gxf,wtv,tta"
)


def input_options() -> dict[str, str]:
    """Options every FFmpeg/ffprobe invocation puts before `-i` for a user-supplied file."""
    return {"format_whitelist": ALLOWED_DEMUXERS, "protocol_whitelist": "file"}


def input_url(path: Path) -> str:
    """`file:` + absolute path: a name like `a:b.mp4` is not taken for a protocol."""
    return "file:" + str(Path(path).resolve())


@dataclass(frozen=True)
class MediaInfo:
    duration: float  # seconds; 0.0 when nothing could tell
    width: int | None  # display width: rotation and sample aspect ratio applied
    height: int | None
    fps: float | None  # average frame rate (tbr when no average is given)
    has_video: bool
    has_audio: bool
    video_codec: str | None = None
    audio_codec: str | None = None
    audio_streams: int = 0
    video_streams: int = 0  # not counting cover art
    nominal_fps: float | None = None  # FFmpeg's guess of the base rate (tbr / r_frame_rate)
    video_index: int | None = None  # absolute stream index of the chosen video stream
    audio_index: int | None = None  # ... of the chosen audio stream (default one, else first)
    coded_width: int | None = None
    coded_height: int | None = None
    rotation: int = 0  # 0, 90, 180 or 270 (display matrix, counter-clockwise as FFmpeg prints)
    sar: tuple[int, int] | None = None
    pix_fmt: str | None = None
    interlaced: bool = False
    audio_sample_rate: int | None = None
    audio_channels: int | None = None
    audio_profile: str | None = None  # "LC" for plain AAC; None when not stated
    audio_bitrate: int | None = None  # bits/s of the chosen audio stream, when stated
    format_name: str | None = None
    bitrate: int | None = None  # bits/s of the whole file, as the container says
    start_time: float = 0.0
    duration_source: str = "container"  # "container" | "demux" | "decode" | "unknown"
    prober: str = "ffmpeg"  # "ffmpeg" (banner) | "ffprobe"

    @property
    def is_portrait(self) -> bool:
        return bool(self.width and self.height and self.height > self.width)


# probe()


def _input_args() -> list[str]:
    args: list[str] = []
    for key, value in input_options().items():
        args += [f"-{key}", value]
    return args


def _packet_duration(path: Path, ffmpeg: str, parsed: ParsedMedia, timeout: float) -> tuple[float | None, str]:
    """The duration the streams' timestamps give, when the container states none.

    First a demux pass (`-c copy -f null -`: nothing decoded, cheap; enough for a browser
    MediaRecorder WebM). Streams without timestamps (raw .h264) report N/A there, so then a
    decoding pass of one stream (the audio if any: cheaper to decode than the video).
    """
    usable = [s for s in parsed.streams or []
              if s.kind in ("video", "audio") and not s.attached_pic and s.codec != "none"]
    if not usable:
        return None, "unknown"
    started = time.monotonic()
    copy_maps = [x for s in usable for x in ("-map", f"0:{s.index}")]
    seconds = _null_pass(path, ffmpeg, [*copy_maps, "-c", "copy"], timeout)
    if seconds:
        return seconds, "demux"
    one = next((s for s in usable if s.kind == "audio"), usable[0])
    left = max(0.001, timeout - (time.monotonic() - started))
    seconds = _null_pass(path, ffmpeg, ["-map", f"0:{one.index}"], left)
    if seconds:
        return seconds, "decode"
    return None, "unknown"


def _null_pass(path: Path, ffmpeg: str, args: list[str], timeout: float) -> float | None:
    last_us: list[int] = []

    def on_line(line: str) -> None:
        if line.startswith("out_time_us="):
            value = line.split("=", 1)[1]
            if value.lstrip("-").isdigit():
                last_us.append(int(value))

    argv = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", *_input_args(),
            "-i", input_url(path), *args, "-f", "null", "-", "-progress", "pipe:1", "-nostats"]
    run = run_ffmpeg(argv, timeout=timeout, on_stdout_line=on_line)
    if run.timed_out:
        raise classify_failure(run, path)
    if run.returncode != 0 or not last_us:
        return None
    seconds = max(last_us) / 1e6
    return seconds if seconds > 0 else None


def probe(path: Path, *, ffmpeg: str | None = None, timeout: float = 60) -> MediaInfo:
    """Describe `path`; raise MediaError when it is not usable media."""
    path = Path(path)
    if not path.is_file():
        raise TranscodeError("source_missing", "The uploaded file is missing on the worker; the job will be retried.",
                             detail=str(path))
    if path.stat().st_size == 0:
        raise MediaError("empty", "The file is empty.")
    ffmpeg = ffmpeg or find_ffmpeg()
    deadline_budget = timeout
    ffprobe = find_ffprobe(ffmpeg)
    parsed: ParsedMedia | None
    if ffprobe:
        argv = [ffprobe, "-v", "error", *_input_args(), "-print_format", "json",
                "-show_format", "-show_streams", input_url(path)]
        out: list[str] = []
        run = run_ffmpeg(argv, timeout=deadline_budget, on_stdout_line=out.append)
        if run.timed_out or run.returncode != 0:
            raise classify_failure(run, path)
        try:
            parsed = parse_ffprobe_json(json.loads("\n".join(out)))
        except ValueError:
            raise MediaError("not_media", NOT_MEDIA_MESSAGE, detail=run.stderr[-2000:]) from None
        prober = "ffprobe"
    else:
        argv = [ffmpeg, "-nostdin", "-hide_banner", *_input_args(), "-i", input_url(path)]
        run = run_ffmpeg(argv, timeout=deadline_budget)
        parsed = None if run.timed_out or run.returncode < 0 else parse_banner(run.stderr)
        if parsed is None:
            raise classify_failure(run, path)
        prober = "ffmpeg"
    return _to_media_info(parsed, path, ffmpeg, prober, run, timeout)


def _to_media_info(parsed: ParsedMedia, path: Path, ffmpeg: str, prober: str, run: FFmpegRun,
                   timeout: float) -> MediaInfo:
    streams = parsed.streams or []
    videos = [s for s in streams if s.kind == "video" and not s.attached_pic]
    audios = [s for s in streams if s.kind == "audio"]
    usable_videos = [s for s in videos if s.codec != "none" and s.width and s.height]
    usable_audios = [s for s in audios if s.codec != "none"]
    if not usable_videos and not usable_audios:
        if videos or audios:
            codecs = ", ".join(sorted({s.codec for s in videos + audios}))
            raise MediaError("unsupported_codec",
                             f"The file's audio/video uses a codec FFmpeg cannot decode ({codecs}).",
                             detail=run.stderr[-2000:])
        if mp4_box_overruns(path):
            raise MediaError("truncated", TRUNCATED_MESSAGE, detail=run.stderr[-2000:])
        raise MediaError("no_streams", "The file contains no video or audio track.",
                         detail=run.stderr[-2000:])
    video = next((s for s in usable_videos if s.default), usable_videos[0] if usable_videos else None)
    audio = next((s for s in usable_audios if s.default), usable_audios[0] if usable_audios else None)

    width = height = None
    if video is not None:
        assert video.width and video.height
        if max(video.width, video.height) > MAX_DIMENSION:
            raise MediaError(
                "too_large",
                f"The video is {video.width}x{video.height}; the largest supported size is "
                f"{MAX_DIMENSION} pixels on a side.",
            )
        if video.width * video.height > MAX_PIXELS:
            raise MediaError(
                "too_large",
                f"The video is {video.width}x{video.height} "
                f"({video.width * video.height / 1e6:.0f} megapixels); the largest supported "
                f"frame is 8192x4320 ({MAX_PIXELS / 1e6:.0f} megapixels).",
            )
        width, height = video.width, video.height
        if video.sar and video.sar[0] != video.sar[1]:
            # Anamorphic: display width = stored width x SAR.
            width = max(2, int(round(width * video.sar[0] / video.sar[1])))
            if width > MAX_DIMENSION:
                raise MediaError("too_large", f"The video displays {width} pixels wide; the largest "
                                 f"supported size is {MAX_DIMENSION} pixels on a side.")
        if video.rotation in (90, 270):
            width, height = height, width

    fps = None
    if video is not None:
        for candidate in (video.fps, video.tbr):
            if candidate and 0 < candidate <= 1000:
                fps = candidate
                break

    duration = parsed.duration
    duration_source = "container"
    if (duration is None or math.isnan(duration) or duration < MIN_TRUSTED_DURATION
            or duration > MAX_PLAUSIBLE_DURATION):
        measured, how = _packet_duration(path, ffmpeg, parsed, timeout)
        if measured is not None:
            duration, duration_source = measured, how
        elif duration is None or duration <= 0 or math.isnan(duration):
            duration, duration_source = 0.0, "unknown"

    return MediaInfo(
        duration=float(duration),
        width=width,
        height=height,
        fps=fps,
        has_video=video is not None,
        has_audio=audio is not None,
        nominal_fps=video.tbr if video and video.tbr and video.tbr <= 1000 else None,
        video_codec=video.codec if video else None,
        audio_codec=audio.codec if audio else None,
        audio_streams=len(usable_audios),
        video_streams=len(usable_videos),
        video_index=video.index if video else None,
        audio_index=audio.index if audio else None,
        coded_width=video.width if video else None,
        coded_height=video.height if video else None,
        rotation=video.rotation if video else 0,
        sar=video.sar if video else None,
        pix_fmt=video.pix_fmt if video else None,
        interlaced=video.interlaced if video else False,
        audio_sample_rate=audio.sample_rate if audio else None,
        audio_channels=audio.channels if audio else None,
        audio_profile=audio.profile if audio else None,
        audio_bitrate=audio.bitrate if audio else None,
        format_name=parsed.format_name,
        bitrate=parsed.bitrate,
        start_time=parsed.start_time,
        duration_source=duration_source,
        prober=prober,
    )


__all__ = ["MediaInfo", "probe", "parse_banner", "parse_ffprobe_json", "classify_failure",
           "input_options", "input_url", "ALLOWED_DEMUXERS", "MAX_DIMENSION", "MAX_PIXELS"]

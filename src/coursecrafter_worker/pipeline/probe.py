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
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import NOT_MEDIA_MESSAGE, TRUNCATED_MESSAGE, MediaError, TranscodeError
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
    format_name: str | None = None
    bitrate: int | None = None  # bits/s of the whole file, as the container says
    start_time: float = 0.0
    duration_source: str = "container"  # "container" | "demux" | "decode" | "unknown"
    prober: str = "ffmpeg"  # "ffmpeg" (banner) | "ffprobe"

    @property
    def is_portrait(self) -> bool:
        return bool(self.width and self.height and self.height > self.width)


# --------------------------------------------------------------------------------------------
# Banner parsing (`ffmpeg -i FILE`)

_STREAM_RE = re.compile(
    r"^\s*Stream #(\d+):(\d+)(?:\[[^\]]*\])?(?:\([^)]*\))?:\s*(Video|Audio|Subtitle|Data|Attachment):\s*(.*)$"
)
_DURATION_RE = re.compile(
    r"^\s*Duration:\s*(?:(\d+):(\d{1,2}):(\d{1,2}(?:\.\d+)?)|N/A)"
    r"(?:,\s*start:\s*(-?[\d.]+))?(?:,\s*bitrate:\s*(?:(\d+)\s*kb/s|N/A))?"
)
_INPUT_RE = re.compile(r"^Input #0,\s*(.*?),\s*from\s")
_DIMS_RE = re.compile(r"^([1-9]\d*)x([1-9]\d*)(?:\s*\[SAR\s*(\d+):(\d+)\s*DAR\s*(\d+):(\d+)\])?")
_RATE_RE = re.compile(r"^(\d+(?:\.\d+)?)(k?)\s+(fps|tbr|tbn|tbc)$")
_ROTATION_RE = re.compile(r"rotation of\s*(-?\d+(?:\.\d+)?)\s*degrees", re.IGNORECASE)
_ROTATE_TAG_RE = re.compile(r"^\s*rotate\s*:\s*(-?\d+(?:\.\d+)?)\s*$")
_INTERLACED_WORDS = ("top first", "bottom first", "top coded first", "bottom coded first")


def split_top_level(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside (), [] and {}: 'a(b, c), d' -> ['a(b, c)', 'd']."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current).strip())
    return [p for p in parts if p]


def _rate(value: str, suffix: str) -> float:
    return float(value) * (1000 if suffix == "k" else 1)


def _normalize_rotation(degrees: float) -> int:
    return int(round(degrees / 90.0)) * 90 % 360


@dataclass
class _Stream:
    index: int
    kind: str  # "video" | "audio" | other
    codec: str
    attached_pic: bool = False
    default: bool = False
    width: int | None = None
    height: int | None = None
    sar: tuple[int, int] | None = None
    fps: float | None = None
    tbr: float | None = None
    pix_fmt: str | None = None
    interlaced: bool = False
    rotation: int = 0
    sample_rate: int | None = None
    channels: int | None = None


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6,
                    "6.1": 7, "7.1": 8, "downmix": 2}


def _parse_stream_fields(stream: _Stream, body: str) -> None:
    stream.attached_pic = "(attached pic)" in body
    stream.default = "(default)" in body
    fields = split_top_level(body)
    if not fields:
        return
    stream.codec = fields[0].split()[0].lower() if fields[0].split() else "none"
    for field in fields[1:]:
        field_clean = re.sub(r"(\s*\((?:default|attached pic|forced|dub|original|comment|"
                             r"lyrics|karaoke|hearing impaired|visual impaired|clean effects|"
                             r"captions|descriptions|metadata|dependent|still image|"
                             r"non diegetic|multilayer)\))+$", "", field).strip()
        if stream.kind == "video":
            dims = _DIMS_RE.match(field_clean)
            if dims and stream.width is None:
                stream.width, stream.height = int(dims.group(1)), int(dims.group(2))
                if dims.group(3) and int(dims.group(3)) > 0 and int(dims.group(4)) > 0:
                    stream.sar = (int(dims.group(3)), int(dims.group(4)))
                continue
            container_sar = re.match(r"^SAR\s*(\d+):(\d+)\s*DAR\s*\d+:\d+$", field_clean)
            if container_sar:
                # A second "SAR a:b DAR c:d" field: the container's aspect ratio, which FFmpeg
                # uses over the bitstream's (printed first, inside the brackets).
                num, den = int(container_sar.group(1)), int(container_sar.group(2))
                if num > 0 and den > 0:
                    stream.sar = (num, den)
                continue
            rate = _RATE_RE.match(field_clean)
            if rate:
                value = _rate(rate.group(1), rate.group(2))
                if rate.group(3) == "fps":
                    stream.fps = value
                elif rate.group(3) == "tbr":
                    stream.tbr = value
                continue
            if stream.pix_fmt is None and re.match(r"^[a-z][a-z0-9_]*(\(.*\))?$", field_clean):
                stream.pix_fmt = field_clean.split("(")[0]
                inner = field_clean[len(stream.pix_fmt):]
                stream.interlaced = any(w in inner for w in _INTERLACED_WORDS)
        elif stream.kind == "audio":
            hz = re.match(r"^(\d+)\s*Hz$", field_clean)
            if hz:
                stream.sample_rate = int(hz.group(1))
                continue
            ch = re.match(r"^(\d+)\s*channels?", field_clean)
            if ch:
                stream.channels = int(ch.group(1))
                continue
            layout = field_clean.split("(")[0].strip()
            if stream.channels is None and layout in _LAYOUT_CHANNELS:
                stream.channels = _LAYOUT_CHANNELS[layout]


@dataclass
class _Parsed:
    format_name: str | None = None
    duration: float | None = None
    start_time: float = 0.0
    bitrate: int | None = None
    streams: list[_Stream] | None = None


def parse_banner(stderr: str) -> _Parsed | None:
    """Parse the `Input #0` section of `ffmpeg -i` stderr; None when there is none."""
    parsed = _Parsed(streams=[])
    assert parsed.streams is not None
    seen_input = False
    current: _Stream | None = None
    for line in stderr.splitlines():
        if not seen_input:
            match = _INPUT_RE.match(line)
            if match:
                seen_input = True
                parsed.format_name = match.group(1)
            continue
        if re.match(r"^(Input|Output) #\d+", line) or line.startswith("Stream mapping"):
            break  # only the first input's description
        duration = _DURATION_RE.match(line)
        if duration and parsed.duration is None and current is None:
            if duration.group(1) is not None:
                parsed.duration = (
                    int(duration.group(1)) * 3600
                    + int(duration.group(2)) * 60
                    + float(duration.group(3))
                )
            if duration.group(4):
                parsed.start_time = float(duration.group(4))
            if duration.group(5):
                parsed.bitrate = int(duration.group(5)) * 1000
            continue
        stream_match = _STREAM_RE.match(line)
        if stream_match:
            if stream_match.group(1) != "0":
                current = None
                continue
            kind = stream_match.group(3).lower()
            current = _Stream(index=int(stream_match.group(2)), kind=kind, codec="none")
            _parse_stream_fields(current, stream_match.group(4))
            parsed.streams.append(current)
            continue
        if re.match(r"^\s*Stream group #", line):
            current = None
            continue
        if current is not None and current.kind == "video":
            rotation = _ROTATION_RE.search(line)
            if rotation:
                current.rotation = _normalize_rotation(float(rotation.group(1)))
                continue
            tag = _ROTATE_TAG_RE.match(line)
            if tag and not current.rotation:
                current.rotation = _normalize_rotation(-float(tag.group(1)))
    return parsed if seen_input else None


# --------------------------------------------------------------------------------------------
# ffprobe JSON


def _fraction(text: str | None) -> float | None:
    if not text or text in ("0/0", "N/A"):
        return None
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den) if float(den) else None
        return float(text)
    except ValueError:
        return None


def parse_ffprobe_json(data: dict) -> _Parsed:  # type: ignore[type-arg]
    fmt = data.get("format") or {}
    parsed = _Parsed(streams=[])
    assert parsed.streams is not None
    parsed.format_name = fmt.get("format_name")
    duration = _fraction(fmt.get("duration"))
    parsed.duration = duration if duration and duration > 0 else None
    parsed.start_time = _fraction(fmt.get("start_time")) or 0.0
    bitrate = _fraction(fmt.get("bit_rate"))
    parsed.bitrate = int(bitrate) if bitrate else None
    for raw in data.get("streams") or []:
        kind = raw.get("codec_type") or "data"
        stream = _Stream(index=int(raw.get("index", 0)), kind=kind, codec=raw.get("codec_name") or "none")
        disposition = raw.get("disposition") or {}
        stream.attached_pic = bool(disposition.get("attached_pic"))
        stream.default = bool(disposition.get("default"))
        if kind == "video":
            stream.width = raw.get("width") or None
            stream.height = raw.get("height") or None
            sar = raw.get("sample_aspect_ratio")
            if sar and re.fullmatch(r"\d+:\d+", sar) and "0" not in sar.split(":"):
                stream.sar = tuple(int(x) for x in sar.split(":"))  # type: ignore[assignment]
            stream.fps = _fraction(raw.get("avg_frame_rate"))
            stream.tbr = _fraction(raw.get("r_frame_rate"))
            stream.pix_fmt = raw.get("pix_fmt")
            stream.interlaced = raw.get("field_order") in ("tt", "bb", "tb", "bt")
            for side in raw.get("side_data_list") or []:
                rotation = _fraction(str(side.get("rotation", "")))
                if rotation is not None:
                    stream.rotation = _normalize_rotation(rotation)
            tag = _fraction(str((raw.get("tags") or {}).get("rotate", "")))
            if tag is not None and not stream.rotation:
                stream.rotation = _normalize_rotation(-tag)
        elif kind == "audio":
            rate = raw.get("sample_rate")
            stream.sample_rate = int(rate) if rate and str(rate).isdigit() else None
            stream.channels = raw.get("channels") or None
        parsed.streams.append(stream)
    return parsed


# --------------------------------------------------------------------------------------------
# Errors


def _looks_like_mp4(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) >= 8 and head[4:8] in (b"ftyp", b"wide", b"mdat", b"free", b"skip")


def _mp4_box_overruns(path: Path) -> bool:
    """An MP4 whose top-level box declares more bytes than the file holds: cut off."""
    if not _looks_like_mp4(path):
        return False
    size = path.stat().st_size
    with open(path, "rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            box = int.from_bytes(head[:4], "big")
            if box == 1 and len(head) == 16:
                box = int.from_bytes(head[8:16], "big")
            if box == 0:
                return False  # extends to the end of the file
            if box < 8:
                return False
            if offset + box > size:
                return True
            offset += box
    return False


#: How FFmpeg 5.x and ffprobe say that opening the input hit the end of the file: the input URL
#: and the error on a line of their own (FFmpeg 7+: "Error opening input: End of file").
_EOF_OPENING = re.compile(r"^file:.*: End of file\s*$", re.MULTILINE)


def classify_failure(run: FFmpegRun, source: Path, *, what: str = "read") -> MediaError | TranscodeError:
    """Turn a failed FFmpeg run on `source` into the error the runner reports."""
    stderr = run.stderr
    lower = stderr.lower()
    detail = stderr[-4000:]
    if run.timed_out:
        return MediaError(
            "timeout",
            "Processing the file took too long and was stopped; the file may be damaged or "
            "unusually long.",
            detail=f"killed after {run.elapsed:.1f} s\n{detail}",
        )
    if run.returncode < 0:
        return TranscodeError(
            "ffmpeg_killed",
            "The transcoder stopped unexpectedly; the job will be retried.",
            detail=f"FFmpeg died of signal {-run.returncode}\n{detail}",
        )
    if "no space left on device" in lower or "disk quota exceeded" in lower:
        return TranscodeError("disk_full", "The worker ran out of disk space; the job will be retried.",
                              detail=detail)
    if "cannot allocate memory" in lower or "out of memory" in lower:
        return MediaError(
            "out_of_memory",
            "Processing this file needs more memory than a worker allows; the video is probably "
            "too large.",
            detail=detail,
        )
    try:
        size = source.stat().st_size
    except OSError:
        size = -1
    if size == 0:
        return MediaError("empty", "The file is empty.", detail=detail)
    if "moov atom not found" in lower and "misdetection possible" not in lower and _looks_like_mp4(source):
        return MediaError(
            "truncated",
            "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
            "Export or copy it again and re-upload it.",
            detail=detail,
        )
    if "partial file" in lower and what != "read":
        # The index was there (probe passed) but the data it points to is not: nothing decodable.
        return MediaError(
            "truncated",
            "The file is incomplete: it looks cut off (the recording or the copy did not finish). "
            "Export or copy it again and re-upload it.",
            detail=detail,
        )
    if "error opening input: end of file" in lower or _EOF_OPENING.search(stderr):
        # The demuxer ran out of bytes while still reading the file's header (an MP4 index or a
        # Matroska header cut short).
        return MediaError("truncated", TRUNCATED_MESSAGE, detail=detail)
    decoder = re.search(r"(?:Decoder|decoder) \(codec ([\w-]+)\) not found", stderr)
    if decoder:
        return MediaError("unsupported_codec",
                          f"The file uses a codec FFmpeg cannot decode ({decoder.group(1)}).",
                          detail=detail)
    if what == "read" or "error opening input" in lower:
        return MediaError("not_media", NOT_MEDIA_MESSAGE, detail=detail)
    input_side = (
        "invalid data found when processing input",
        "error while decoding",
        "corrupt",
        "partial file",
        "error opening input",
        "could not find codec parameters",
        "invalid nal unit",
        "decoding error",
        "decode error rate",
        "received no packets",
        "nothing was encoded",
    )
    if any(marker in lower for marker in input_side):
        return MediaError("decode_failed", "FFmpeg could not decode the file; it may be damaged.",
                          detail=detail)
    return TranscodeError(
        "ffmpeg_failed",
        "The transcoder failed; the job will be retried.",
        detail=f"FFmpeg exited with status {run.returncode}\n{detail}",
    )


# --------------------------------------------------------------------------------------------
# probe()


def _input_args() -> list[str]:
    args: list[str] = []
    for key, value in input_options().items():
        args += [f"-{key}", value]
    return args


def _packet_duration(path: Path, ffmpeg: str, parsed: _Parsed, timeout: float) -> tuple[float | None, str]:
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
    parsed: _Parsed | None
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


def _to_media_info(parsed: _Parsed, path: Path, ffmpeg: str, prober: str, run: FFmpegRun,
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
        if _mp4_box_overruns(path):
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
        format_name=parsed.format_name,
        bitrate=parsed.bitrate,
        start_time=parsed.start_time,
        duration_source=duration_source,
        prober=prober,
    )


__all__ = ["MediaInfo", "probe", "parse_banner", "parse_ffprobe_json", "classify_failure",
           "input_options", "input_url", "ALLOWED_DEMUXERS", "MAX_DIMENSION", "MAX_PIXELS"]

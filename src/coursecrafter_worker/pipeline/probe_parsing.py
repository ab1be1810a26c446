"""Reading what FFmpeg says about an input: the `ffmpeg -i FILE` banner (`parse_banner`) and
`ffprobe -print_format json` output (`parse_ffprobe_json`), both into a `ParsedMedia`.
`probe.py` says when each is used and what the banner looks like."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
class ParsedStream:
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
    profile: str | None = None  # audio: "LC", "HE-AAC", ... as FFmpeg names it
    bitrate: int | None = None  # audio: bits/s the stream declares


_LAYOUT_CHANNELS = {"mono": 1, "stereo": 2, "2.1": 3, "quad": 4, "4.0": 4, "5.0": 5, "5.1": 6,
                    "6.1": 7, "7.1": 8, "downmix": 2}


def _parse_stream_fields(stream: ParsedStream, body: str) -> None:
    stream.attached_pic = "(attached pic)" in body
    stream.default = "(default)" in body
    fields = split_top_level(body)
    if not fields:
        return
    stream.codec = fields[0].split()[0].lower() if fields[0].split() else "none"
    if stream.kind == "audio":
        # "aac (LC) (mp4a / 0x6134706D)": the first parenthesised word that is not a codec tag.
        profile = re.search(r"\(([^()/]+)\)", fields[0])
        stream.profile = profile.group(1).strip() if profile else None
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
            kbps = re.match(r"^(\d+)\s*kb/s$", field_clean)
            if kbps:
                stream.bitrate = int(kbps.group(1)) * 1000
                continue
            ch = re.match(r"^(\d+)\s*channels?", field_clean)
            if ch:
                stream.channels = int(ch.group(1))
                continue
            layout = field_clean.split("(")[0].strip()
            if stream.channels is None and layout in _LAYOUT_CHANNELS:
                stream.channels = _LAYOUT_CHANNELS[layout]


@dataclass
class ParsedMedia:
    format_name: str | None = None
    duration: float | None = None
    start_time: float = 0.0
    bitrate: int | None = None
    streams: list[ParsedStream] | None = None


def parse_banner(stderr: str) -> ParsedMedia | None:
    """Parse the `Input #0` section of `ffmpeg -i` stderr; None when there is none."""
    parsed = ParsedMedia(streams=[])
    assert parsed.streams is not None
    seen_input = False
    current: ParsedStream | None = None
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
            current = ParsedStream(index=int(stream_match.group(2)), kind=kind, codec="none")
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


def parse_ffprobe_json(data: dict) -> ParsedMedia:  # type: ignore[type-arg]
    fmt = data.get("format") or {}
    parsed = ParsedMedia(streams=[])
    assert parsed.streams is not None
    parsed.format_name = fmt.get("format_name")
    duration = _fraction(fmt.get("duration"))
    parsed.duration = duration if duration and duration > 0 else None
    parsed.start_time = _fraction(fmt.get("start_time")) or 0.0
    bitrate = _fraction(fmt.get("bit_rate"))
    parsed.bitrate = int(bitrate) if bitrate else None
    for raw in data.get("streams") or []:
        kind = raw.get("codec_type") or "data"
        stream = ParsedStream(index=int(raw.get("index", 0)), kind=kind, codec=raw.get("codec_name") or "none")
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
            stream.profile = raw.get("profile") or None
            bits = str(raw.get("bit_rate") or "")
            stream.bitrate = int(bits) if bits.isdigit() and int(bits) > 0 else None
        parsed.streams.append(stream)
    return parsed

"""Helpers for the pipeline tests: make clips with FFmpeg's lavfi sources, read HLS outputs back.

Everything here runs the same FFmpeg binary the pipeline uses (find_ffmpeg()), so the tests need
nothing but the imageio-ffmpeg wheel.
"""

from __future__ import annotations

import random
import re
import shutil
import struct
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
    audio: str | None = None  # the AUDIO group it names
    average: int | None = None  # AVERAGE-BANDWIDTH


def read_master(path: Path) -> list[Variant]:
    lines = path.read_text().splitlines()
    assert lines and lines[0] == "#EXTM3U", lines[:2]
    out: list[Variant] = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = line.split(":", 1)[1]
            bw = re.search(r"(?:^|,)BANDWIDTH=(\d+)", attrs)
            average = re.search(r"(?:^|,)AVERAGE-BANDWIDTH=(\d+)", attrs)
            res = re.search(r"RESOLUTION=(\d+)x(\d+)", attrs)
            codecs = re.search(r'CODECS="([^"]*)"', attrs)
            audio = re.search(r'(?:^|,)AUDIO="([^"]*)"', attrs)
            assert bw, line
            out.append(
                Variant(
                    bandwidth=int(bw.group(1)),
                    resolution=(int(res.group(1)), int(res.group(2))) if res else None,
                    codecs=codecs.group(1) if codecs else "",
                    uri=lines[i + 1].strip(),
                    audio=audio.group(1) if audio else None,
                    average=int(average.group(1)) if average else None,
                )
            )
    return out


def read_audio_media(path: Path) -> list[dict[str, str]]:
    """The attributes of every #EXT-X-MEDIA:TYPE=AUDIO line of a master playlist (quotes off)."""
    found = []
    for line in path.read_text().splitlines():
        if line.startswith("#EXT-X-MEDIA:") and "TYPE=AUDIO" in line:
            found.append({k: v.strip('"') for k, v in
                          re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1])})
    return found


def audio_playlist(master: Path, rendition_playlist: str) -> Path:
    """The playlist that carries a rung's sound: the ladder's audio rendition when the master
    declares one, else the rung's own (audio muxed in)."""
    media = read_audio_media(master)
    if media:
        return master.parent / media[0]["URI"]
    return master.parent.parent / rendition_playlist


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
# Byte-level surgery for the corpus of broken files (MP4 boxes, Matroska elements, H.264 SPS)


def mp4_boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """The boxes between `start` and `end`: [(type, offset, size)], without descending."""
    end = len(data) if end is None else end
    out: list[tuple[str, int, int]] = []
    i = start
    while i + 8 <= end:
        size = int.from_bytes(data[i : i + 4], "big")
        kind = data[i + 4 : i + 8].decode("latin-1")
        if size == 1:
            size = int.from_bytes(data[i + 8 : i + 16], "big")
        elif size == 0:
            size = end - i
        if size < 8:
            break
        out.append((kind, i, size))
        i += size
    return out


_MP4_CONTAINERS = ("moov", "trak", "mdia", "edts", "minf", "stbl")


def mp4_box_tree(data: bytes, start: int = 0, end: int | None = None,
                 parent: str = "") -> list[tuple[str, int, int]]:
    """Every box down through moov/trak/mdia/minf/stbl (and edts): [("/moov/trak/mdia/mdhd", offset, size)]."""
    out: list[tuple[str, int, int]] = []
    for kind, offset, size in mp4_boxes(data, start, end):
        path = f"{parent}/{kind}"
        out.append((path, offset, size))
        if kind in _MP4_CONTAINERS:
            out += mp4_box_tree(data, offset + 8, offset + size, path)
    return out


def mp4_scale_durations(data: bytes, factor: float) -> bytes:
    """Multiply the durations an MP4's index declares (mvhd, tkhd, mdhd, elst): a lying header.

    The sample tables (stts, stsz...) are left alone, so the media itself is unchanged."""
    out = bytearray(data)
    patched = 0
    for path, offset, _ in mp4_box_tree(data):
        kind = path.rsplit("/", 1)[1]
        if kind not in ("mvhd", "tkhd", "mdhd", "elst"):
            continue
        version = data[offset + 8]
        width = 8 if version == 1 else 4
        body = offset + 12  # after size, type, version and flags
        if kind in ("mvhd", "mdhd"):
            at = body + 2 * width + 4  # creation, modification, timescale
        elif kind == "tkhd":
            at = body + 2 * width + 8  # creation, modification, track id, reserved
        else:
            at = body + 4  # entry count, then the first entry's segment duration
        value = int.from_bytes(data[at : at + width], "big")
        out[at : at + width] = int(value * factor).to_bytes(width, "big")
        patched += 1
    assert patched >= 3, "no mvhd/tkhd/mdhd found"
    return bytes(out)


def _ebml_vint(data: bytes, i: int, *, keep_marker: bool = False) -> tuple[int, int]:
    first = data[i]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    value = first if keep_marker else first & ((0x80 >> (length - 1)) - 1)
    for k in range(1, length):
        value = (value << 8) | data[i + k]
    return value, length


def ebml_elements(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int | None]]:
    """Matroska elements between `start` and `end`: [(id, offset, payload offset, payload size)];
    size None (unknown, as a live recording writes its Segment) ends the list."""
    out: list[tuple[int, int, int, int | None]] = []
    i = start
    while i < end:
        element_id, id_len = _ebml_vint(data, i, keep_marker=True)
        size, size_len = _ebml_vint(data, i + id_len)
        unknown = size == (1 << (7 * size_len)) - 1
        out.append((element_id, i, i + id_len + size_len, None if unknown else size))
        if unknown:
            break
        i += id_len + size_len + size
    return out


MKV_SEGMENT, MKV_INFO, MKV_DURATION, MKV_CLUSTER = 0x18538067, 0x1549A966, 0x4489, 0x1F43B675
MKV_TIMESTAMP_SCALE = 0x2AD7B1


def mkv_segment_children(data: bytes) -> list[tuple[int, int, int, int | None]]:
    segment = next(e for e in ebml_elements(data, 0, len(data)) if e[0] == MKV_SEGMENT)
    end = len(data) if segment[3] is None else segment[2] + segment[3]
    return ebml_elements(data, segment[2], end)


def mkv_set_duration(data: bytes, seconds: float) -> bytes:
    """The Matroska Segment Info's Duration element rewritten to claim `seconds`."""
    info = next(e for e in mkv_segment_children(data) if e[0] == MKV_INFO)
    assert info[3] is not None
    fields = {e[0]: e for e in ebml_elements(data, info[2], info[2] + info[3])}
    scale = 1_000_000
    if MKV_TIMESTAMP_SCALE in fields:
        _, _, at, size = fields[MKV_TIMESTAMP_SCALE]
        scale = int.from_bytes(data[at : at + (size or 0)], "big")
    _, _, at, size = fields[MKV_DURATION]
    assert size in (4, 8), size
    out = bytearray(data)
    out[at : at + size] = struct.pack(">d" if size == 8 else ">f", seconds * 1e9 / scale)
    return bytes(out)


class _BitReader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = (value << 1) | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)


class _BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> None:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]

    def ue(self, value: int) -> None:
        value += 1
        self.u(value.bit_length() - 1, 0)
        self.u(value.bit_length(), value)

    def data(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


def _unescape_rbsp(data: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in data:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _escape_rbsp(data: bytes) -> bytes:
    out, zeros = bytearray(), 0
    for byte in data:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _sps_with_size(rbsp: bytes, width: int, height: int) -> bytes:
    """An SPS (RBSP, without the NAL header byte) declaring width x height (multiples of 16):
    the fields before the size copied, the size replaced, cropping and VUI dropped."""
    r, w = _BitReader(rbsp), _BitWriter()

    def copy_u(n: int) -> int:
        value = r.u(n)
        w.u(n, value)
        return value

    def copy_ue() -> int:
        value = r.ue()
        w.ue(value)
        return value

    profile = copy_u(8)
    copy_u(8)  # constraint flags
    copy_u(8)  # level
    copy_ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        if copy_ue() == 3:  # chroma_format_idc
            copy_u(1)
        copy_ue()
        copy_ue()  # bit depths
        copy_u(1)
        assert copy_u(1) == 0, "SPS scaling matrices are not handled"
    copy_ue()  # log2_max_frame_num_minus4
    poc_type = copy_ue()
    assert poc_type != 1, "pic_order_cnt_type 1 is not handled"
    if poc_type == 0:
        copy_ue()
    copy_ue()  # max_num_ref_frames
    copy_u(1)  # gaps_in_frame_num_allowed
    r.ue()
    r.ue()
    w.ue(width // 16 - 1)
    w.ue(height // 16 - 1)
    if not copy_u(1):  # frame_mbs_only_flag
        copy_u(1)
    copy_u(1)  # direct_8x8_inference
    w.u(1, 0)  # no cropping, no VUI, stop bit
    w.u(1, 0)
    w.u(1, 1)
    return w.data()


def h264_with_declared_size(annexb: bytes, width: int, height: int) -> bytes:
    """An H.264 Annex B stream whose every SPS declares width x height: the slices still code
    the original (small) picture, so the data describes a fraction of the declared frame."""
    starts: list[int] = []
    i = annexb.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = annexb.find(b"\x00\x00\x01", i + 3)
    out = bytearray()
    rewritten = 0
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(annexb)
        while n + 1 < len(starts) and end > start and annexb[end - 1] == 0:
            end -= 1  # the leading zero of a 4-byte start code
        nal = annexb[start:end]
        if nal and nal[0] & 0x1F == 7:
            nal = nal[:1] + _escape_rbsp(_sps_with_size(_unescape_rbsp(nal[1:]), width, height))
            rewritten += 1
        out += b"\x00\x00\x00\x01" + nal
    assert rewritten, "no SPS in the stream"
    return bytes(out)


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
        try:
            ffmpeg("-display_rotation", "90", "-i", self.short_landscape_480, "-c", "copy", out)
        except AssertionError as exc:
            if "display_rotation" not in str(exc):
                raise
            # FFmpeg 5.x has no -display_rotation (6.0+): its MP4 muxer turns the older `rotate`
            # tag (clockwise degrees) into the same display matrix.
            ffmpeg("-i", self.short_landscape_480, "-c", "copy", "-metadata:s:v:0", "rotate=270",
                   out)
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
    def faststart(self) -> Path:
        """320x240, 4 s with audio, index (moov) first: ftyp, moov, free, mdat."""
        out = make_clip(self._p("faststart.mp4"), size="320x240", duration=4,
                        out_args=("-movflags", "+faststart"))
        names = [name for name, _, _ in mp4_boxes(out.read_bytes())]
        assert names.index("moov") < names.index("mdat"), names
        return out

    @cached_property
    def truncated_faststart(self) -> Path:
        """An MP4 with its index first (faststart), cut at 50%: the index outlives half the data."""
        data = self.faststart.read_bytes()
        out = self._p("truncated_faststart.mp4")
        out.write_bytes(data[: len(data) // 2])
        return out

    @cached_property
    def index_only(self) -> Path:
        """A faststart MP4 cut just after its index: every sample it lists is missing."""
        data = self.faststart.read_bytes()
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

    # ----------------------------------------------------------------------------------------
    # The corpus of broken and unusual media (test_pipeline_corpus.py). Sources are tiny (at most
    # 4 s of 320x240) and most cases fail in the probe, so the whole corpus costs seconds.

    @cached_property
    def moov_at_end(self) -> Path:
        """320x240, 3 s with audio, as FFmpeg writes an MP4 by default: ftyp, free, mdat, moov."""
        out = make_clip(self._p("moov_at_end.mp4"), size="320x240", duration=3)
        names = [name for name, _, _ in mp4_boxes(out.read_bytes())]
        assert names.index("mdat") < names.index("moov"), names
        return out

    # Where `truncated_at` cuts: right after the ftyp box, 8 bytes into the next box (the moov
    # header alone in a faststart file), inside the first KiB (600 bytes), at 10% and at 90%.
    CUTS = ("after_ftyp", "next_box_header", "600_bytes", "10pct", "90pct")

    def truncated_at(self, clip: str, where: str) -> Path:
        """`clip` ("moov_at_end" or "faststart") cut at `where` (one of CUTS)."""
        out = self._p(f"cut_{clip}_{where}.mp4")
        if out.exists():
            return out
        data = getattr(self, clip).read_bytes()
        boxes = mp4_boxes(data)
        assert boxes[0][0] == "ftyp"
        offsets = {
            "after_ftyp": boxes[0][2],
            "next_box_header": boxes[1][1] + 8,
            "600_bytes": 600,
            "10pct": len(data) // 10,
            "90pct": len(data) * 9 // 10,
        }
        out.write_bytes(data[: offsets[where]])
        return out

    @cached_property
    def header_only_mp4(self) -> Path:
        """ftyp + moov (+ free) of a faststart MP4 and not one byte of the mdat box."""
        data = self.faststart.read_bytes()
        mdat = next(offset for kind, offset, _ in mp4_boxes(data) if kind == "mdat")
        out = self._p("header_only.mp4")
        out.write_bytes(data[:mdat])
        return out

    @cached_property
    def small_mkv(self) -> Path:
        """320x240, 2 s with audio, Matroska (H.264 + AAC), Duration in the Segment Info."""
        return make_clip(self._p("small.mkv"), size="320x240", duration=2)

    @cached_property
    def header_only_mkv(self) -> Path:
        """A Matroska file cut before its first Cluster: EBML header, SeekHead, Info, Tracks."""
        data = self.small_mkv.read_bytes()
        cluster = next(e[1] for e in mkv_segment_children(data) if e[0] == MKV_CLUSTER)
        out = self._p("header_only.mkv")
        out.write_bytes(data[:cluster])
        return out

    @cached_property
    def small_ts(self) -> Path:
        return make_clip(self._p("small.ts"), size="320x240", duration=2, out_args=("-f", "mpegts"))

    @cached_property
    def header_only_ts(self) -> Path:
        """An MPEG-TS with only its tables (PAT, PMT, SDT): streams declared, no PES packet."""
        data = self.small_ts.read_bytes()
        assert len(data) % 188 == 0 and data[0] == 0x47
        packets = [data[i : i + 188] for i in range(0, len(data), 188)]
        pids = [((p[1] & 0x1F) << 8) | p[2] for p in packets]
        pat = packets[pids.index(0)]
        section = 5 + pat[4]  # after the TS header and the pointer field
        length = ((pat[section + 1] & 0x0F) << 8) | pat[section + 2]
        tables = {0, 0x11}
        for i in range(section + 8, section + 3 + length - 4, 4):  # program loop, minus CRC
            tables.add(((pat[i + 2] & 0x1F) << 8) | pat[i + 3])
        kept = [p for p, pid in zip(packets, pids) if pid in tables]
        assert 3 <= len(kept) < len(packets), (len(kept), len(packets))
        out = self._p("header_only.ts")
        out.write_bytes(b"".join(kept))
        return out

    @cached_property
    def webm_as_mp4(self) -> Path:
        """A WebM (VP8 + Opus, 2 s) named .mp4."""
        out = self._p("webm_named.mp4")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2",
               "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
               "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k",
               "-c:a", "libopus", "-f", "webm", out)
        assert out.read_bytes()[:4] == b"\x1a\x45\xdf\xa3"  # EBML, not an MP4 box
        return out

    @cached_property
    def mp4_as_mov(self) -> Path:
        out = self._p("mp4_named.mov")
        shutil.copyfile(self.moov_at_end, out)
        return out

    @cached_property
    def mp4_as_avi(self) -> Path:
        out = self._p("mp4_named.avi")
        shutil.copyfile(self.moov_at_end, out)
        return out

    @cached_property
    def ts_as_mp4(self) -> Path:
        out = self._p("ts_named.mp4")
        shutil.copyfile(self.small_ts, out)
        return out

    def _empty_mp4_track(self, handler: bytes, name: str) -> Path:
        """moov_at_end with the `handler` (b"soun"/b"vide") track's sample tables emptied: the
        track is declared (codec, sample rate or size) but has zero samples."""
        data = self.moov_at_end.read_bytes()
        out = bytearray(data)
        tree = mp4_box_tree(data)
        emptied = 0
        for _, trak, trak_size in [box for box in tree if box[0] == "/moov/trak"]:
            inner = [box for box in tree if trak < box[1] < trak + trak_size]
            hdlr = next(offset for path, offset, _ in inner if path.endswith("/hdlr"))
            if data[hdlr + 16 : hdlr + 20] != handler:
                continue
            for path, offset, _ in inner:
                kind = path.rsplit("/", 1)[1]
                if kind in ("stts", "stsc", "stco", "co64", "stss", "ctts", "sdtp", "sbgp"):
                    out[offset + 12 : offset + 16] = bytes(4)  # entry count
                elif kind == "stsz":
                    out[offset + 12 : offset + 20] = bytes(8)  # sample size, sample count
            emptied += 1
        assert emptied == 1, emptied
        path = self._p(name)
        path.write_bytes(bytes(out))
        return path

    @cached_property
    def mp4_empty_audio_track(self) -> Path:
        return self._empty_mp4_track(b"soun", "empty_audio_track.mp4")

    @cached_property
    def mp4_empty_video_track(self) -> Path:
        return self._empty_mp4_track(b"vide", "empty_video_track.mp4")

    @cached_property
    def mkv_empty_audio_track(self) -> Path:
        """Matroska: real video next to an audio track (AAC, 48 kHz) that has no block at all."""
        out = self._p("empty_audio_track.mkv")
        ffmpeg("-i", self.moov_at_end, "-map", "0", "-c", "copy", "-bsf:a", "noise=drop=1", out)
        return out

    @cached_property
    def mkv_empty_video_track(self) -> Path:
        """Matroska: a video track (H.264 320x240) with no block, next to 3 s of real audio."""
        out = self._p("empty_video_track.mkv")
        ffmpeg("-i", self.moov_at_end, "-map", "0", "-c", "copy", "-bsf:v", "noise=drop=1", out)
        return out

    def mkv_claiming(self, seconds: float) -> Path:
        """small_mkv (2 s of media) whose header claims `seconds`."""
        out = self._p(f"claims_{seconds:g}s.mkv")
        if not out.exists():
            out.write_bytes(mkv_set_duration(self.small_mkv.read_bytes(), seconds))
        return out

    @cached_property
    def mp4_claiming_30min(self) -> Path:
        """moov_at_end (3 s) whose mvhd/tkhd/mdhd/elst durations claim 30 minutes."""
        out = self._p("claims_30min.mp4")
        out.write_bytes(mp4_scale_durations(self.moov_at_end.read_bytes(), 600))
        return out

    # Eight audio tracks, each a sine of its own frequency and language; the sixth is the
    # default one (and no other is), so the output's pitch says which track was taken.
    MANY_AUDIO_LANGUAGES = ("eng", "fra", "deu", "spa", "ita", "por", "nld", "jpn")
    MANY_AUDIO_FREQUENCIES = (300, 400, 500, 600, 700, 800, 900, 1000)
    MANY_AUDIO_DEFAULT = 5

    def many_audio(self, ext: str) -> Path:
        out = self._p(f"many_audio.{ext}")
        if out.exists():
            return out
        args: list[str | Path] = ["-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=2"]
        for freq in self.MANY_AUDIO_FREQUENCIES:
            args += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=48000:duration=2"]
        args += ["-map", "0"]
        for i, lang in enumerate(self.MANY_AUDIO_LANGUAGES):
            args += ["-map", str(i + 1), f"-metadata:s:a:{i}", f"language={lang}",
                     f"-disposition:a:{i}", "default" if i == self.MANY_AUDIO_DEFAULT else "0"]
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "48k"]
        ffmpeg(*args, out)
        return out

    @cached_property
    def raw_h264_10_frames(self) -> Path:
        """An elementary H.264 stream, 320x240, 10 frames at 10 fps."""
        return make_clip(self._p("raw10.h264"), size="320x240", rate=10, duration=1, audio=False,
                         out_args=("-f", "h264"))

    def h264_declaring(self, width: int, height: int) -> Path:
        """raw_h264_10_frames with its SPS rewritten to declare width x height: the slices still
        code 320x240 worth of macroblocks, the decoder conceals the rest of each frame."""
        out = self._p(f"declares_{width}x{height}.h264")
        if not out.exists():
            data = self.raw_h264_10_frames.read_bytes()
            out.write_bytes(h264_with_declared_size(data, width, height))
        return out

    def y4m_declaring(self, width: int, height: int) -> Path:
        """A YUV4MPEG2 header declaring width x height, then one FRAME of 5 KB (not 100 MB)."""
        out = self._p(f"declares_{width}x{height}.y4m")
        header = f"YUV4MPEG2 W{width} H{height} F25:1 Ip A1:1 C420jpeg\nFRAME\n".encode()
        out.write_bytes(header + b"\x80" * 5000)
        return out

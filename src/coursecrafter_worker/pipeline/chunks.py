"""Chunked transcoding: cut a long source at keyframes, transcode the pieces anywhere, join.

    split(source)  →  pieces/v0000.nut … v000N.nut (picture, cut at source keyframes, no re-encode)
                      pieces/audio.nut             (the whole audio track, decoded to FLAC)
    encode_piece(piece) on any worker → the ladder (transcode(), unchanged settings) of that piece,
                      on the source's frame grid and timeline (`transcode(window=...)`,
                      pipeline/piece_grid.py): it keeps the frames before the next piece's start
    join_playlists(...) → each rung's playlist is the pieces' segments in order; the audio is one
                      rendition (EXT-X-MEDIA) that every rung names; the master names them all

Why the audio is not cut: each AAC encode starts with 1024 priming samples (and ends padded), so
per-piece audio would put ~21 ms of silence or overlap at every seam; encoded once, it is as
continuous as the single-process ladder's. The picture is cut where the source has a keyframe,
so no frame is decoded twice or lost, and with the source's timestamps kept the joined rungs need
no EXT-X-DISCONTINUITY: a player sees one timeline. Audio encoding is cheap next to x264, so the
audio piece is one more job next to the picture pieces, not a serial step.

Storage keys of the chunked path are in `coursecrafter_worker.storage.keys` (`piece_key`,
`chunk_dir`, `chunk_segment_prefix`).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import MediaError, TranscodeError
from .probe import MediaInfo, input_options, input_url, probe
from .probe_parsing import _DURATION_RE as DURATION_LINE
from .process import find_ffmpeg, run_ffmpeg
from .ladder import CONTENT_STILL, audio_copyable, content_class
from .motion import ANALYSIS_TIMEOUT, analyze
from .playlists import AUDIO_RUNG, Audio, Variant, master_playlist, stream_inf
from .transcode import PROBE_TIMEOUT, parse_master, parse_media_playlist

#: A source shorter than this many target chunks is transcoded whole: one more piece would not
#: shorten the wait enough to pay for the split, the extra jobs and the join.
MIN_PIECES = 2
SPLIT_TIMEOUT_BASE = 120.0
#: Packets read to find where the source's pictures start (enough to cover any B-frame
#: reordering at the start).
LEAD_PACKETS = 32
_CRC_TB = re.compile(r"#tb \d+: (\d+)/(\d+)")
#: Every piece's outputs are moved this much later on the timeline (on top of the piece's
#: start): then no encoder output starts below zero, so the muxer never shifts one piece by its
#: own B-frame delay or AAC priming, and pieces and audio line up exactly.
TIMELINE_PAD = 1.0


def piece_offset(start: float) -> float:
    """The `ts_offset` to transcode a piece that starts at `start` (source seconds) with."""
    return TIMELINE_PAD + start


@dataclass(frozen=True)
class Piece:
    tag: str  # "v0000"... for a picture piece, "audio" for the audio track
    path: Path
    start: float  # seconds on the source's timeline (FFmpeg's, which starts at zero)
    end: float


def piece_tag(index: int) -> str:
    return f"v{index:04d}"


def cut_times(duration: float, chunk_seconds: float) -> list[float]:
    """Where to ask for cuts (the split moves each to the next keyframe): evenly spread so the
    pieces are about `chunk_seconds` long; [] when the source should not be chunked."""
    if chunk_seconds <= 0 or duration <= 0:
        return []
    count = round(duration / chunk_seconds)
    if count < MIN_PIECES:
        return []
    step = duration / count
    return [round(step * k, 3) for k in range(1, count)]


def split(
    source: Path,
    info: MediaInfo,
    cuts: list[float],
    out_dir: Path,
    *,
    ffmpeg: str | None = None,
    timeout: float | None = None,
    copy_audio: bool = False,
) -> list[Piece]:
    """Cut the picture at the first keyframe at or after each of `cuts` and copy the audio
    track whole, without re-encoding (one FFmpeg read of the source). Returns the picture pieces
    in order, then the audio piece when the source has audio. `copy_audio`: the source's AAC
    goes into the rungs as it is (the still ladder's `audio_copy`), so the audio piece is that
    AAC, not FLAC."""
    ffmpeg = ffmpeg or find_ffmpeg()
    out_dir.mkdir(parents=True, exist_ok=True)
    assert info.video_index is not None
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    for name, value in input_options().items():
        argv += [f"-{name}", value]
    argv += ["-i", input_url(source),
             "-map", f"0:{info.video_index}", "-c", "copy", "-map_metadata", "-1",
             "-f", "segment", "-segment_format", "nut", "-reset_timestamps", "0",
             "-segment_times", ",".join(f"{c:.3f}" for c in cuts),
             "-segment_list", "pieces.csv", "-segment_list_type", "csv",
             "v%04d.nut"]
    # The first packets' timestamps as the source has them on FFmpeg's timeline: the NUT muxer
    # moves a piece with B-frames later (its first DTS must not be negative), the audio
    # piece not; the pieces' starts are put back by the same amount (below).
    argv += ["-map", f"0:{info.video_index}", "-c", "copy", "-frames:v", str(LEAD_PACKETS),
             "-f", "framecrc", "lead.crc"]
    if info.has_audio and info.audio_index is not None and copy_audio:
        # In MP4, whose edit list keeps the encoder priming to skip (NUT would lose it and put
        # the audio a frame late); the audio job copies it into the segments as the whole
        # ladder does (no decode, no AAC encode: the chunked path costs no more CPU).
        argv += ["-map", f"0:{info.audio_index}", "-c:a", "copy", "-map_metadata", "-1",
                 "-f", "mp4", "audio.nut"]
    elif info.has_audio and info.audio_index is not None:
        # Decoded to FLAC (lossless), not copied, for the same reason.
        argv += ["-map", f"0:{info.audio_index}", "-c:a", "flac", "-map_metadata", "-1",
                 "-f", "nut", "audio.nut"]
    limit = timeout if timeout is not None else SPLIT_TIMEOUT_BASE + info.duration
    run = run_ffmpeg(argv, timeout=limit, cwd=out_dir)
    if run.timed_out or run.returncode != 0:
        raise TranscodeError("split_failed", "the source could not be cut into chunks",
                             detail=run.stderr[-4000:])
    made: list[tuple[Path, float]] = []
    with open(out_dir / "pieces.csv", newline="") as listing:
        for row in csv.reader(listing):
            if len(row) < 3:
                continue
            path = out_dir / row[0]
            if path.is_file() and path.stat().st_size > 0:
                made.append((path, float(row[2])))
    # Where each piece starts as its transcode will see it (the listing says where the cut was
    # asked; with B-frames the first picture comes a little later).
    audio = out_dir / "audio.nut"
    sound = [audio] if audio.is_file() and audio.stat().st_size > 0 else []
    starts = file_starts([path for path, _ in made] + sound, ffmpeg=ffmpeg)
    pieces = [Piece(path.stem, path, start, end)
              for (path, end), start in zip(made, starts)]
    if not pieces:
        raise TranscodeError("split_failed", "cutting the source into chunks gave no piece")
    moved = pieces[0].start - _first_pts(out_dir / "lead.crc", pieces[0].start)
    # The segment muxer names pieces by number; renumber in case one was empty and skipped.
    pieces = [Piece(piece_tag(k), p.path.rename(out_dir / f"{piece_tag(k)}.nut")
                    if p.tag != piece_tag(k) else p.path, round(p.start - moved, 6), p.end)
              for k, p in enumerate(pieces)]
    if sound:
        pieces.append(Piece(AUDIO_RUNG, audio, starts[-1], info.duration))
    return pieces


_INPUT = re.compile(r"^Input #(\d+),")
#: Files opened by one FFmpeg process to read their start times (one process per batch rather
#: than a probe per piece: a 2-hour lecture has up to a few hundred pieces).
STARTS_BATCH = 64


def file_starts(paths: list[Path], *, ffmpeg: str) -> list[float]:
    """Each file's start time as FFmpeg reports it (the `start:` of its input banner)."""
    starts: list[float] = []
    for first in range(0, len(paths), STARTS_BATCH):
        batch = paths[first:first + STARTS_BATCH]
        argv = [ffmpeg, "-hide_banner", "-nostdin"]
        for path in batch:
            for name, value in input_options().items():
                argv += [f"-{name}", value]
            argv += ["-i", input_url(path)]
        run = run_ffmpeg(argv, timeout=PROBE_TIMEOUT + len(batch))  # no output: exits 1
        found: dict[int, float] = {}
        current = None
        for line in run.stderr.splitlines():
            opened = _INPUT.match(line)
            if opened:
                current = int(opened.group(1))
                continue
            banner = DURATION_LINE.match(line)  # the line probe reads the start from
            if banner and banner.group(4) and current is not None and current not in found:
                found[current] = float(banner.group(4))
        if len(found) != len(batch):
            raise TranscodeError("split_failed", "the pieces cut from the source cannot be read",
                                 detail=run.stderr[-4000:])
        starts += [found[k] for k in range(len(batch))]
    return starts


def _first_pts(crc: Path, default: float) -> float:
    """The earliest presentation time (seconds) among the packets of a framecrc listing."""
    base, times = Fraction(1, 1), []
    for line in crc.read_text().splitlines() if crc.is_file() else []:
        found = _CRC_TB.match(line)
        if found:
            base = Fraction(int(found.group(1)), int(found.group(2)))
        elif line and not line.startswith("#"):
            fields = line.split(",")
            if len(fields) > 2:
                times.append(int(fields[2]) * base)
    return float(min(times)) if times else default


@dataclass(frozen=True)
class Plan:
    """A source cut for chunked transcoding."""

    info: MediaInfo
    content: str  # the ladder's content class, measured once on the whole source
    pieces: list[Piece]  # picture pieces in order, then the audio piece (if any)

    @property
    def pictures(self) -> list[Piece]:
        return [p for p in self.pieces if p.tag != AUDIO_RUNG]

    @property
    def audio(self) -> Piece | None:
        return next((p for p in self.pieces if p.tag == AUDIO_RUNG), None)


def plan(source: Path, out_dir: Path, chunk_seconds: float, *,
         ffmpeg: str | None = None, content: str | None = None) -> Plan | None:
    """Probe `source` and, when it is long enough to chunk, measure its content class (unless
    given) and cut it (`split`). None: transcode it whole (short, no picture, or too few
    keyframes to cut)."""
    ffmpeg = ffmpeg or find_ffmpeg()
    info = probe(source, ffmpeg=ffmpeg, timeout=PROBE_TIMEOUT)
    if not info.has_video or info.video_index is None:
        return None
    cuts = cut_times(info.duration, chunk_seconds)
    if not cuts:
        return None
    if content is None:
        content = content_class(analyze(source, info, ffmpeg=ffmpeg, timeout=ANALYSIS_TIMEOUT))
    copy_audio = content == CONTENT_STILL and audio_copyable(info)
    made = Plan(info, content, split(source, info, cuts, out_dir, ffmpeg=ffmpeg,
                                     copy_audio=copy_audio))
    return made if len(made.pictures) >= MIN_PIECES else None


# --------------------------------------------------------------------------------------------
# The join


@dataclass(frozen=True)
class ChunkOutput:
    """What one piece's transcode left, as text read back from storage."""

    master: str  # its master playlist
    playlists: dict[str, str]  # rung name ("720p", "audio") → its media playlist (URIs as stored)


@dataclass(frozen=True)
class JoinedRung:
    name: str
    width: int
    height: int
    bandwidth: int  # video + audio, as the master playlist says
    duration: float


@dataclass(frozen=True)
class Joined:
    files: dict[str, str]  # path under hls/ → text; "master.m3u8" last
    rungs: list[JoinedRung]
    duration: float


def _media_playlist(segments: list[tuple[float, str]]) -> str:
    target = max(1, math.ceil(max(d for d, _ in segments) - 1e-6))
    lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}",
             "#EXT-X-MEDIA-SEQUENCE:0", "#EXT-X-PLAYLIST-TYPE:VOD"]
    for duration, uri in segments:
        lines += [f"#EXTINF:{duration:.6f},", uri]
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def join_playlists(pictures: list[ChunkOutput], audio: ChunkOutput | None) -> Joined:
    """The ladder's playlists from the pieces' (in order): pure text work, no media touched.
    Raises TranscodeError when the pieces do not fit together (a rung missing from one)."""
    if not pictures:
        raise TranscodeError("join_failed", "no chunk to join")
    names = [v.uri.split("/")[0] for v in parse_master(pictures[0].master)]
    files: dict[str, str] = {}
    rungs: list[JoinedRung] = []
    audio_bandwidth = 0
    if audio is not None:
        (audio_variant,) = parse_master(audio.master)[:1] or [None]  # type: ignore[misc]
        audio_bandwidth = audio_variant.bandwidth if audio_variant else 0
        segments, ended = parse_media_playlist(audio.playlists.get(AUDIO_RUNG, ""))
        if not segments or not ended:
            raise TranscodeError("join_failed", "the audio chunk's playlist is incomplete")
        files[f"{AUDIO_RUNG}/index.m3u8"] = _media_playlist(segments)
    variants: list[Variant] = []
    total = 0.0
    for name in names:
        segments: list[tuple[float, str]] = []
        bandwidth = 0
        for number, chunk in enumerate(pictures):
            found, ended = parse_media_playlist(chunk.playlists.get(name, ""))
            variant = stream_inf(chunk.master).get(name)
            if not found or not ended or variant is None:
                raise TranscodeError("join_failed", f"chunk {number} has no complete {name}")
            segments += found
            bandwidth = max(bandwidth, int(variant.get("BANDWIDTH", "0")))
        first = stream_inf(pictures[0].master)[name]
        width, _, height = first.get("RESOLUTION", "0x0").partition("x")
        duration = sum(d for d, _ in segments)
        total = max(total, duration)
        files[f"{name}/index.m3u8"] = _media_playlist(segments)
        variants.append(Variant(name, bandwidth, first.get("RESOLUTION"), first.get("CODECS")))
        rungs.append(JoinedRung(name, int(width or 0), int(height or 0),
                                bandwidth + audio_bandwidth, duration))
    files["master.m3u8"] = master_playlist(
        variants, Audio(audio_bandwidth) if audio is not None else None)
    return Joined(files=files, rungs=rungs, duration=round(total, 3))


def stage_chunk(out_dir: Path, tag: str) -> list[tuple[Path, str]]:
    """A piece's transcode output (`out_dir/hls/...`, `out_dir/poster.jpg`) as (file, key under
    the video's output prefix) pairs, in upload order: segments (renamed `{tag}_seg_…` so the
    pieces' segments share each rung's directory), the first piece's poster, then the piece's
    playlists under `chunks/{tag}/` with their URIs renamed alike (the join reads those)."""
    hls = out_dir / "hls"
    segments: list[tuple[Path, str]] = []
    playlists: list[tuple[Path, str]] = []
    for rung in sorted(p for p in hls.iterdir() if p.is_dir()):
        for seg in sorted(rung.iterdir()):
            if seg.suffix == ".m3u8":
                text = seg.read_text()
                renamed = "\n".join(
                    f"{tag}_{line}" if line and not line.startswith("#") else line
                    for line in text.splitlines()) + "\n"
                staged = out_dir / f"{rung.name}.staged.m3u8"
                staged.write_text(renamed)
                playlists.append((staged, f"chunks/{tag}/{rung.name}.m3u8"))
            elif seg.is_file() and not seg.is_symlink():
                segments.append((seg, f"hls/{rung.name}/{tag}_{seg.name}"))
    master = hls / "master.m3u8"
    if not master.is_file() or not playlists:
        raise TranscodeError("chunk_incomplete", f"chunk {tag} left no playlists")
    poster = out_dir / "poster.jpg"
    extra = [(poster, "poster.jpg")] if tag == piece_tag(0) and poster.is_file() else []
    return segments + extra + playlists + [(master, f"chunks/{tag}/master.m3u8")]


__all__ = ["AUDIO_RUNG", "ChunkOutput", "Joined", "JoinedRung", "MediaError", "Piece",
           "Plan", "cut_times", "piece_offset", "plan", "join_playlists", "piece_tag", "split", "stage_chunk"]

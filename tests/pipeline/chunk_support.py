"""Chunked transcoding on one machine, and the seam facts of its output (tests and bench/).

`transcode_chunked` runs what the chunk jobs run (split, every piece's ladder, the join) in turn,
with a directory standing in for the storage; `seam_facts` reads an HLS rendition back with FFmpeg
(packet timestamps, no decoding) and `seam_ssim` compares decoded pictures with the source's.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from coursecrafter_worker.pipeline import find_ffmpeg
from coursecrafter_worker.pipeline.chunks import (
    AUDIO_RUNG,
    TIMELINE_PAD,
    ChunkOutput,
    Joined,
    join_playlists,
    piece_offset,
    plan,
    stage_chunk,
)
from coursecrafter_worker.pipeline.piece_grid import PieceWindow
from coursecrafter_worker.pipeline.transcode import parse_master, transcode


@dataclass(frozen=True)
class ChunkedRun:
    out: Path  # the video's output prefix: out/hls/master.m3u8 ...
    joined: Joined
    starts: list[float]  # each picture piece's start (source seconds)


def transcode_chunked(source: Path, work: Path, chunk_seconds: float, *,
                      content: str | None = None) -> ChunkedRun:
    shutil.rmtree(work, ignore_errors=True)
    made = plan(source, work / "pieces", chunk_seconds, content=content)
    assert made is not None, "the source was not chunked"
    store = work / "store"
    pictures = made.pictures
    for piece in made.pieces:
        out = work / f"out-{piece.tag}"
        if piece.tag == AUDIO_RUNG:
            transcode(piece.path, out, content=made.content, ts_offset=piece_offset(piece.start),
                      poster=False)
        else:
            index = pictures.index(piece)
            end = pictures[index + 1].start if index + 1 < len(pictures) else None
            transcode(piece.path, out, content=made.content, ts_offset=TIMELINE_PAD,
                      window=PieceWindow(piece.start, end, first=index == 0),
                      poster=index == 0)
        for path, key in stage_chunk(out, piece.tag):
            (store / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, store / key)

    def read(tag: str) -> ChunkOutput:
        base = store / "chunks" / tag
        master = (base / "master.m3u8").read_text()
        names = [v.uri.split("/")[0] for v in parse_master(master)]
        return ChunkOutput(master, {n: (base / f"{n}.m3u8").read_text() for n in names})

    audio = read(AUDIO_RUNG) if made.audio else None
    joined = join_playlists([read(p.tag) for p in made.pictures], audio)
    for name, text in joined.files.items():
        (store / "hls" / name).write_text(text)
    return ChunkedRun(store, joined, [p.start for p in made.pictures])


@dataclass(frozen=True)
class Packets:
    pts: list[Fraction]  # seconds, sorted
    durations: list[Fraction]


def packets(playlist: Path, stream: str, *, copyts: bool = True) -> Packets:
    """Every packet of the first `stream` ("v" or "a") of an HLS playlist: FFmpeg's framecrc
    (timestamps as the segments carry them, `-copyts`, by default: a separate audio playlist is
    compared with the picture on the timeline a player uses; no decoding). `copyts=False`: the
    stream starts at zero."""
    done = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error",
         *(["-copyts"] if copyts else []), "-i", str(playlist),
         "-map", f"0:{stream}:0", "-c", "copy", "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=300, check=True)
    base = Fraction(1, 90000)
    found = re.search(r"#tb \d+: (\d+)/(\d+)", done.stdout)
    if found:
        base = Fraction(int(found.group(1)), int(found.group(2)))
    rows = []
    for line in done.stdout.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = [f.strip() for f in line.split(",")]
        rows.append((int(fields[2]) * base, int(fields[3]) * base))
    rows.sort()
    return Packets([p for p, _ in rows], [d for _, d in rows])


@dataclass(frozen=True)
class SeamFacts:
    frames: int
    irregular_steps: int  # video steps that are not one frame (a dropped or doubled frame)
    audio_packets: int
    audio_gaps: int  # audio steps that are not one packet's duration (a gap or an overlap)
    av_start: float  # first audio pts - first video pts, seconds
    av_end: float  # audio end - video end, seconds
    video_start: float


def seam_facts(rung: Path, audio: Path | None = None) -> SeamFacts:
    video = packets(rung, "v")
    steps = [b - a for a, b in zip(video.pts, video.pts[1:])]
    frame = min(steps, key=steps.count) if steps else Fraction(0)
    common = max(set(steps), key=steps.count) if steps else frame
    irregular = sum(abs(s - common) > Fraction(1, 1000) for s in steps)
    sound = packets(audio or rung, "a") if audio is not None or _has_audio(rung) else None
    if sound is None or not sound.pts:
        return SeamFacts(len(video.pts), irregular, 0, 0, 0.0, 0.0, float(video.pts[0]))
    usual, gaps = _audio_steps(sound)
    video_end = video.pts[-1] + common
    return SeamFacts(len(video.pts), irregular, len(sound.pts), gaps,
                     float(sound.pts[0] - video.pts[0]),
                     float(sound.pts[-1] + usual - video_end), float(video.pts[0]))


def _audio_steps(sound: Packets) -> tuple[Fraction, int]:
    """(one packet's duration, how many steps between packets are not that)."""
    usual = max(set(sound.durations), key=sound.durations.count)
    gaps = sum(abs((b - a) - usual) > Fraction(1, 2000)
               for a, b in zip(sound.pts, sound.pts[1:]))
    return usual, gaps


def audio_gaps(playlist: Path) -> tuple[int, int]:
    """(audio packets, irregular steps) of an audio-only rendition."""
    sound = packets(playlist, "a")
    return len(sound.pts), _audio_steps(sound)[1]


def _has_audio(playlist: Path) -> bool:
    done = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(playlist)],
                          capture_output=True, text=True, timeout=60)
    return "Audio:" in done.stderr


def seam_ssim(source: Path, rung: Path, size: tuple[int, int],
              seams: list[float], window: float = 0.5) -> tuple[float, float]:
    """(mean SSIM of the frames within `window` s of a seam, mean SSIM of the others): each
    output frame against the source frame at the same time, scaled to the rung's size."""
    width, height = size
    done = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(rung), "-i", str(source),
         "-lavfi", f"[0:v]setpts=PTS-STARTPTS[a];[1:v]scale={width}:{height},"
                   f"setpts=PTS-STARTPTS[b];[a][b]ssim=stats_file=-", "-f", "null", "-"],
        capture_output=True, text=True, timeout=600, check=True)
    near, far = [], []
    rate = None
    for line in done.stdout.splitlines():
        found = re.match(r"n:(\d+) .*All:([0-9.]+)", line)
        if not found:
            continue
        n, value = int(found.group(1)), float(found.group(2))
        rate = rate or _rate(rung)
        t = (n - 1) / rate
        (near if any(abs(t - s) <= window for s in seams) else far).append(value)
    assert near and far, "no frame near a seam, or none away from one"
    return sum(near) / len(near), sum(far) / len(far)


def _rate(playlist: Path) -> float:
    video = packets(playlist, "v")
    steps = [b - a for a, b in zip(video.pts, video.pts[1:])]
    return float(1 / max(set(steps), key=steps.count))

"""How still the picture is: a cheap sampling pass that runs before the ladder is planned.

`analyze(source, info)` decodes a few short spans of the source (one FFmpeg process, one input
per span, each opened with a fast `-ss` seek
that starts at the keyframe before the point: `-noaccurate_seek`) and, per span, at 320x180 grey:

    scale=320:180 (fast_bilinear) -> format=gray -> tblend=difference
      -> blackframe=amount=0:threshold=12 -> metadata=print:file=spanN.txt

`tblend` turns each frame into its absolute difference from the previous one, and `blackframe`
counts the share of pixels of that difference below 12 (of 255): `pblack` = the percentage of
the picture that did NOT change. So `100 - pblack` is the changed area of one frame, in percent.
Downscaling first averages most sensor noise out (not measured on real camera footage) and makes the
filters cost nothing next to the decode. Every filter used exists in FFmpeg 5.1.

Spans: the whole source when it is at most `WHOLE_SECONDS` long; otherwise `n` spans of
`SPAN_SECONDS`, n = clamp(round(duration / 60) + 2, 3, 8), centred at (i + 0.5) / n of the
duration. A 60 s clip decodes 3 x 2 s (10 %), a 10-minute lecture 8 x 2 s (2.7 %). Measured on
the 60 s 1080p benchmark lecture: 1.25 CPU s, 1.9 % of today's ladder and 3.6 % of the still one
(bench/transcode_ladder.py, docs/benchmarks.md); the share falls with the length.

The result, `MotionStats`, is plain numbers; `ladder.content_class()` (pure) turns it into the
encoding choice. If the pass fails for any reason the caller plans today's ("motion") ladder:
the analysis can make an encode cheaper, never make one fail.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .probe import MediaInfo, input_options, input_url
from .process import run_ffmpeg

WHOLE_SECONDS = 12.0
SPAN_SECONDS = 2.0
MIN_SPANS = 3
MAX_SPANS = 8
ANALYSIS_SIZE = (320, 180)
DIFF_THRESHOLD = 12  # of 255: a pixel that changed less than this (noise, dither) is unchanged
ANALYSIS_TIMEOUT = 60.0

_PBLACK_RE = re.compile(r"lavfi\.blackframe\.pblack=(\d+)")


@dataclass(frozen=True)
class MotionStats:
    """Per-frame changed area (percent of the picture that differs from the previous frame)
    over the sampled frames, summarised."""

    frames: int  # frame differences measured
    still_share: float  # share of frames with (almost) nothing changed: changed area < 1 %
    changed_p50: float  # median changed area, percent
    changed_p90: float  # 90th percentile changed area, percent
    cut_share: float  # share of frames where >= 50 % of the picture changed (slide changes, cuts)

    @classmethod
    def from_changed(cls, changed: list[float]) -> MotionStats:
        """Summarise per-frame changed areas (percent). Pure."""
        if not changed:
            return cls(frames=0, still_share=0.0, changed_p50=100.0, changed_p90=100.0,
                       cut_share=1.0)
        ordered = sorted(changed)
        n = len(ordered)

        def pct(q: float) -> float:
            return ordered[min(n - 1, int(q * n))]

        return cls(
            frames=n,
            still_share=round(sum(1 for c in ordered if c < 1.0) / n, 4),
            changed_p50=float(pct(0.50)),
            changed_p90=float(pct(0.90)),
            cut_share=round(sum(1 for c in ordered if c >= 50.0) / n, 4),
        )


def spans(duration: float) -> list[tuple[float, float]]:
    """(start, length) of the spans to sample, in seconds from the start of the media. Pure."""
    if duration <= WHOLE_SECONDS:
        return [(0.0, max(duration, 0.0))]
    n = max(MIN_SPANS, min(MAX_SPANS, round(duration / 60) + 2))
    out = []
    for i in range(n):
        centre = (i + 0.5) / n * duration
        start = max(0.0, min(duration - SPAN_SECONDS, centre - SPAN_SECONDS / 2))
        out.append((round(start, 3), SPAN_SECONDS))
    return out


def build_analysis_command(source: Path, info: MediaInfo, *, ffmpeg: str = "ffmpeg") -> list[str]:
    """The analysis FFmpeg argv; run it in a scratch directory (it writes span{i}.txt there)."""
    assert info.video_index is not None
    argv = [ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error"]
    plan = spans(info.duration)
    for start, length in plan:
        for key, value in input_options().items():
            argv += [f"-{key}", value]
        if len(plan) > 1 or start > 0:
            # -noaccurate_seek: start at the keyframe before `start` instead of decoding from
            # there up to `start` and discarding (a 10 s GOP would cost 10 s of decode per span).
            argv += ["-noaccurate_seek", "-ss", f"{info.start_time + start:.3f}"]
        if length > 0:
            argv += ["-t", f"{length:.3f}"]
        argv += ["-an", "-sn", "-dn", "-i", input_url(source)]
    w, h = ANALYSIS_SIZE
    chains = []
    for i in range(len(plan)):
        chains.append(
            f"[{i}:{info.video_index}]scale={w}:{h}:flags=fast_bilinear,format=gray,"
            f"tblend=all_mode=difference,blackframe=amount=0:threshold={DIFF_THRESHOLD},"
            f"metadata=mode=print:key=lavfi.blackframe.pblack:file=span{i}.txt[o{i}]"
        )
    argv += ["-filter_complex", ";".join(chains)]
    for i in range(len(plan)):
        argv += ["-map", f"[o{i}]", "-f", "null", "-"]
    return argv


def parse_changed(text: str) -> list[float]:
    """Per-frame changed area (percent) from a metadata=print file. Pure."""
    return [100.0 - int(m) for m in _PBLACK_RE.findall(text)]


def analyze(source: Path, info: MediaInfo, *, ffmpeg: str = "ffmpeg",
            timeout: float | None = ANALYSIS_TIMEOUT) -> MotionStats | None:
    """Sample `source` and measure how still it is; None when it cannot tell (no video, a
    failed or timed-out pass): the caller then keeps today's settings."""
    if not info.has_video or info.video_index is None or info.duration <= 0:
        return None
    scratch = Path(tempfile.mkdtemp(prefix="cc-motion-"))
    try:
        argv = build_analysis_command(source, info, ffmpeg=ffmpeg)
        run = run_ffmpeg(argv, timeout=timeout, cwd=scratch)
        if run.timed_out or run.returncode != 0:
            return None
        changed: list[float] = []
        for path in sorted(scratch.glob("span*.txt")):
            changed += parse_changed(path.read_text(errors="replace"))
        if not changed:
            return None
        return MotionStats.from_changed(changed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

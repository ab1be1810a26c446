"""The rendition ladder: which sizes, bitrates and frame rates a source gets. Pure functions.

Rules (DESIGN.md "Transcoding", plus the choices below):

- Tiers 1080, 720, 480, 360 (`TIERS`), measured on the source's SHORT side, so a portrait phone
  video (1080x1920) gets the same four rungs as a landscape 1920x1080 one, with the sizes turned:
  1080x1920, 720x1280, 480x854 (rounded to 480x854 -> even), 360x640. A tier's directory is
  `hls/{tier}p/` for both orientations (YouTube's convention: a vertical 1080x1920 video is
  "1080p"); `Rendition.width/height` are the real pixel sizes.
- Never upscale: a tier is included when the short side is at least the tier, or within 5% below
  it (`NEAR_TIER`): a 853x479 source keeps a "480p" rung, encoded at its own size rounded down to
  even (852x478) rather than dropping to 360p only. Sources above 1080 (1440p, 2160p) top out at
  the 1080 tier.
- Always at least one rung: a source smaller than 95% of 360 gets one rung at its own size
  (rounded down to even), named after that size ("240p").
- The long side follows the display aspect ratio (rotation and SAR applied by probe), rounded to
  the nearest even number and never above the source's own long side.
- Video bitrate per tier (`VIDEO_BITRATES`) is the VBV cap (`-maxrate`, `-bufsize` 2x) of a
  capped-CRF encode: a lecture that is mostly still slides costs far less than the cap, motion
  never exceeds it. A sub-360 rung's cap scales with its pixel count from 800k (at least 150k).
- Audio: AAC stereo 128k (96k on a sub-360 rung), encoded once into its own "audio" rendition
  when there are several rungs (transcode.py `separate_audio`), muxed into the one rung's
  segments otherwise; an audio-only source gets one 128k "audio" rendition. The still ladder
  copies browser-ready source AAC into every rung instead (below).
- Frame rate: constant per rung. Source rate = the probed average fps, or the nominal rate
  (tbr) when that is a standard rate above the average (a variable-frame-rate phone video
  averaging 29.6 fps becomes 30), snapped to the nearest standard rate within 2%; then halved
  until <= 60 on the 720/1080 tiers and <= 30 below (60 -> 30, 50 -> 25: halving keeps the frame
  cadence even). Unknown -> 30.

Lecture-aware encoding (`content_class()`, `plan_ladder(info, content)`):

A lecture is mostly still slides with a little motion (a pointer, a talking-head inset).
`motion.analyze()` samples a few 2 s spans of the source at 320x180 grey and measures, per
frame, the share of the picture that changed since the previous frame (pixels whose difference
is >= 12/255). The rule, on those per-frame shares:

    still  <=>  >= 20 frames measured  and  p90(changed area) <= 5 %  and  cuts <= 2 % of frames
                (a "cut" is a frame where >= 50 % of the picture changed: a slide change)
    motion  otherwise, and whenever the analysis fails (today's settings, unchanged)

Measured: the benchmark lecture (slides, a 384x216 inset under camera noise, a pointer) has
p90 = 1 %, no cuts in the samples; a Mandelbrot zoom + scrolling panel p50 18 %, p90 59 %,
20 % cuts; testsrc2 with noise (the tests' motion clip) >= 50 %; a slow pan over flat colour
bars 8-10 % (motion: 10-15 fps would judder a pan).

The table (per rung; sizes and bitrate caps are the same for both classes):

    setting              motion (today)            still
    frame rate           source rate (<= 60/30)    every k-th frame, k the smallest whole
                                                   number giving <= 12.5 fps: 30 -> 10,
                                                   25 -> 25/2, 60 -> 12, 24 -> 12, 30000/1001
                                                   -> 10000/1001; kept when <= 15.5 (15, 12);
                                                   one rate on every rung (from the top
                                                   rung's); GOP = 4 s of frames, so keyframes
                                                   stay aligned in seconds across rungs
    fps filter           per branch                once, before the split (all rungs share it)
    scaling              every rung from source    1080/720 from source; 480/360 from the
                                                   720p picture (cascade, bicubic)
    x264 preset          caller's (veryfast)       the faster of the caller's and veryfast
    -x264-params         none                      me=dia:subme=1:rc-lookahead=5:aq-mode=0
    x264 threads         x264 default (auto)       1 per rung (4 encoders + decode already
                                                   fill 2 cores; frame threads only add sync)
    VBV cap / CRF        per tier / 23             same (still slides stay far under the caps)
    audio                AAC stereo 128k, encoded  the source's audio copied into every rung
                         once (its own rendition   when AAC-LC, 1-2 channels, 44.1/48 kHz,
                         with several rungs)       <= 192 kb/s (`audio_copyable()`); else as
                                                   motion. No decode, no encoder.

Why these (bench/transcode_ladder.py, bench/time_to_playable.py, docs/benchmarks.md
"Lecture-aware ladder"): profiled on 30 s of the 1080p30 benchmark lecture (FFmpeg CPU s):
decoding 3.9, + fps and the cascaded scalers 5.8, four AAC encodes 3.2, the whole 15 fps still
ladder 17.6 (x264 ~8.8). Copying the audio took it to 14.4, 10 fps to 12.0 (5.0x realtime on
2 free cores; the 4x goal allows 15) at SSIM 0.989/0.994/0.994/0.995 against the source scaled to
each rung (rungs repeated to 30 fps for the comparison; 15 fps gave 0.991 on 1080p). 10 fps
costs ~20 % more bytes on the 1080p rung than 15 fps (x264's rate control gives each of the
fewer frames more bits), still a quarter of its cap. Measured and not adopted (no CPU gain):
`partitions=none:8x8dct=0:weightp=0:bframes=2`, scaling 360p from the 480p picture instead of
the 720p one. Rejected earlier: superfast/ultrafast (no mb-tree: the noisy inset
is re-coded at full quality every frame, 2-5x the bytes for little CPU); fast_bilinear or
bilinear scaling for the low rungs (SSIM -0.005 on text, no CPU gain); `-tune stillimage`
(no CPU gain, SSIM -0.001); dropping duplicate frames (mpdecimate, VFR): a still slide would get no frame
at the 4 s keyframe instants, so segments would stretch and stop lining up across rungs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction

from .motion import MotionStats
from .probe import MediaInfo

TIERS = (1080, 720, 480, 360)
NEAR_TIER = 0.95
VIDEO_BITRATES = {1080: 5_000_000, 720: 2_800_000, 480: 1_400_000, 360: 800_000}
AUDIO_BITRATE = 128_000
SMALL_AUDIO_BITRATE = 96_000
MIN_VIDEO_BITRATE = 150_000
DEFAULT_FPS = 30.0

# Content classes (module doc, "Lecture-aware encoding").
CONTENT_MOTION = "motion"
CONTENT_STILL = "still"
STILL_MIN_FRAMES = 20  # fewer measured frame differences: not enough to tell -> motion
STILL_MAX_CHANGED_P90 = 5.0  # percent of the picture changed between frames, 90th percentile
STILL_MAX_CUT_SHARE = 0.02  # frames where half the picture changed (slide changes, cuts)
STILL_KEEP_FPS = 15.5  # a source at or under this rate keeps it on the still ladder
STILL_FPS_CAP = 12.5  # above it, divided by the smallest whole number that gets under this
# Source audio a still ladder copies into every rung instead of encoding it once per rung
# (AAC-LC, as browsers play it in HLS; a bitrate a 360p rung can afford).
COPY_AUDIO_CODECS = ("aac",)
COPY_AUDIO_PROFILES = ("LC",)
COPY_AUDIO_RATES = (44100, 48000)
COPY_AUDIO_MAX_CHANNELS = 2
COPY_AUDIO_MAX_BITRATE = 192_000
STILL_PRESET = "veryfast"
STILL_X264_PARAMS = "me=dia:subme=1:rc-lookahead=5:aq-mode=0"
STILL_THREADS = 1
STILL_CASCADE_FROM = 720
STANDARD_RATES: tuple[tuple[float, str], ...] = (
    (10.0, "10"), (12.0, "12"), (12.5, "12.5"), (15.0, "15"),
    (24000 / 1001, "24000/1001"), (24.0, "24"), (25.0, "25"),
    (30000 / 1001, "30000/1001"), (30.0, "30"), (48.0, "48"), (50.0, "50"),
    (60000 / 1001, "60000/1001"), (60.0, "60"), (100.0, "100"), (120.0, "120"),
)


@dataclass(frozen=True)
class Rung:
    name: str  # directory under hls/: "720p", or "audio"
    width: int  # output pixels (0 for audio)
    height: int
    video_bitrate: int  # bits/s: the VBV cap (0 for audio)
    audio_bitrate: int  # bits/s (0 when the source has no audio)
    fps: str | None  # constant output rate for the fps filter ("30", "30000/1001"); None for audio
    tier: int  # 1080/720/480/360, the own short side for a small source, 0 for audio
    content: str = "motion"  # CONTENT_MOTION (today's settings) or CONTENT_STILL (see module doc)
    preset: str | None = None  # x264 preset; None: the caller's (transcode(preset=...))
    x264_params: str | None = None  # extra -x264-params for this rung
    scale_from: str | None = None  # name of the larger rung whose scaled picture this one scales
    threads: int | None = None  # x264 threads for this rung; None: x264's default
    audio_copy: bool = False  # the source's AAC is copied, not encoded (`audio_copyable()`)

    @property
    def is_audio_only(self) -> bool:
        return self.width == 0

    @property
    def fps_value(self) -> float:
        return float(Fraction(self.fps)) if self.fps else 0.0


def even_floor(value: float) -> int:
    return max(2, int(value) // 2 * 2)


def even_round(value: float) -> int:
    return max(2, int(round(value / 2.0)) * 2)


def _snap_rate(fps: float) -> tuple[float, str]:
    value, text = min(STANDARD_RATES, key=lambda rate: abs(fps - rate[0]))
    if abs(fps - value) / value <= 0.02:
        return value, text
    value = round(fps, 3)
    return value, f"{value:g}"


def source_rate(info: MediaInfo) -> float:
    """The frame rate the ladder starts from (see module doc)."""
    fps = info.fps if info.fps and info.fps > 0 else None
    nominal = info.nominal_fps if info.nominal_fps and 0 < info.nominal_fps <= 120 else None
    if nominal and (fps is None or nominal > fps * 1.02):
        snapped, _ = _snap_rate(nominal)
        if abs(snapped - nominal) / nominal <= 0.02 and any(snapped == v for v, _ in STANDARD_RATES):
            return snapped
    return fps or nominal or DEFAULT_FPS


def _fraction_text(frac: Fraction) -> str:
    return str(frac.numerator) if frac.denominator == 1 else f"{frac.numerator}/{frac.denominator}"


def rung_rate(source_fps: float, tier: int) -> str:
    """The constant output rate of a rung, as an fps filter argument ("30", "30000/1001")."""
    _, text = _snap_rate(max(source_fps, 1.0))
    frac = Fraction(text).limit_denominator(100000)
    cap = 60.5 if tier >= 720 else 30.5
    while float(frac) > cap:
        frac /= 2
    return _fraction_text(frac)


def content_class(stats: MotionStats | None) -> str:
    """CONTENT_STILL when the sampled picture is a slide lecture (see module doc), else
    CONTENT_MOTION (today's settings; also when nothing was measured). Pure."""
    if stats is None or stats.frames < STILL_MIN_FRAMES:
        return CONTENT_MOTION
    if stats.changed_p90 <= STILL_MAX_CHANGED_P90 and stats.cut_share <= STILL_MAX_CUT_SHARE:
        return CONTENT_STILL
    return CONTENT_MOTION


def still_rate(rate: str) -> str:
    """The rate for still content: `rate` divided by the smallest whole number that brings it
    to STILL_FPS_CAP or under (30 -> 10, 25 -> 12.5, 60 -> 12, 24 -> 12, 30000/1001 ->
    10000/1001): every k-th frame, so the cadence stays even. A rate at or under
    STILL_KEEP_FPS (15, 12, 10) is kept."""
    frac = Fraction(rate)
    if float(frac) <= STILL_KEEP_FPS:
        return _fraction_text(frac)
    return _fraction_text(frac / math.ceil(frac / Fraction(STILL_FPS_CAP)))


def audio_copyable(info: MediaInfo) -> bool:
    """Whether the source's audio can go into the rungs as it is (see the module doc). Pure."""
    return bool(
        info.has_audio
        and info.audio_codec in COPY_AUDIO_CODECS
        and info.audio_profile in COPY_AUDIO_PROFILES
        and info.audio_sample_rate in COPY_AUDIO_RATES
        and info.audio_channels is not None and 1 <= info.audio_channels <= COPY_AUDIO_MAX_CHANNELS
        and info.audio_bitrate is not None and 0 < info.audio_bitrate <= COPY_AUDIO_MAX_BITRATE
    )


def plan_ladder(info: MediaInfo, content: str = CONTENT_MOTION) -> list[Rung]:
    """The rungs for `info`, top (largest) first, for `content` (`content_class()`). Pure."""
    if content not in (CONTENT_MOTION, CONTENT_STILL):
        raise ValueError(f"unknown content class {content!r}")
    if not info.has_video:
        if not info.has_audio:
            raise ValueError("nothing to transcode: no video and no audio")
        if content == CONTENT_STILL and audio_copyable(info):
            # The audio piece of a chunked still lecture: copied, as every still rung copies it.
            return [Rung("audio", 0, 0, 0, info.audio_bitrate or AUDIO_BITRATE, None, 0,
                         content=CONTENT_STILL, audio_copy=True)]
        return [Rung("audio", 0, 0, 0, AUDIO_BITRATE, None, 0)]
    if not info.width or not info.height:
        raise ValueError("video without dimensions")
    portrait = info.height > info.width
    short, long_ = (info.width, info.height) if portrait else (info.height, info.width)
    aspect = long_ / short
    fps = source_rate(info)

    sizes: list[tuple[int, int]] = []  # (tier, short side)
    for tier in TIERS:
        if short >= tier * NEAR_TIER:
            size = min(tier, even_floor(short))
            if sizes and sizes[-1][1] <= size:
                continue  # a 1060p source: the 1080 tier is 1060, and so would be nothing else
            sizes.append((tier, size))
    if not sizes:
        own = even_floor(short)
        sizes.append((own, own))

    rungs: list[Rung] = []
    for tier, s in sizes:
        l = min(even_round(s * aspect), even_floor(long_) if long_ >= 2 else 2)
        width, height = (s, l) if portrait else (l, s)
        if tier in VIDEO_BITRATES:
            vbr = VIDEO_BITRATES[tier]
            abr = AUDIO_BITRATE
        else:
            vbr = max(MIN_VIDEO_BITRATE, int(VIDEO_BITRATES[360] * (width * height) / (640 * 360)))
            abr = SMALL_AUDIO_BITRATE
        rungs.append(
            Rung(
                name=f"{tier}p",
                width=width,
                height=height,
                video_bitrate=vbr,
                audio_bitrate=abr if info.has_audio else 0,
                fps=rung_rate(fps, tier),
                tier=tier,
            )
        )
    if content == CONTENT_STILL:
        rungs = _still(rungs, info)
    return rungs


def _still(rungs: list[Rung], info: MediaInfo) -> list[Rung]:
    """Today's rungs with the still-content settings of the module doc's table."""
    mid = next((r for r in rungs if r.tier == STILL_CASCADE_FROM), None)
    # One rate for every rung, from the top rung's (the highest): decimated once before the split.
    rate = still_rate(rungs[0].fps) if rungs[0].fps else None
    copy = audio_copyable(info)
    out = []
    for r in rungs:
        out.append(dataclasses.replace(
            r,
            content=CONTENT_STILL,
            fps=rate,
            audio_copy=copy,
            audio_bitrate=info.audio_bitrate if copy and info.audio_bitrate else r.audio_bitrate,
            preset=STILL_PRESET,
            x264_params=STILL_X264_PARAMS,
            threads=STILL_THREADS,
            scale_from=mid.name if mid is not None and r.tier < mid.tier and r.tier in VIDEO_BITRATES else None,
        ))
    return out

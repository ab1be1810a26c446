"""plan_ladder(): pure, so these build MediaInfo by hand."""

from __future__ import annotations

import pytest

from coursecrafter_worker.pipeline import MediaInfo, plan_ladder
from coursecrafter_worker.pipeline.ladder import (
    CONTENT_MOTION,
    CONTENT_STILL,
    audio_copyable,
    content_class,
    still_rate,
)
from coursecrafter_worker.pipeline.motion import MotionStats, parse_changed, spans


def video(width: int, height: int, *, fps: float | None = 30.0, audio: bool = True,
          nominal: float | None = None) -> MediaInfo:
    return MediaInfo(duration=10.0, width=width, height=height, fps=fps, has_video=True,
                     has_audio=audio, video_index=0, audio_index=1 if audio else None,
                     nominal_fps=nominal if nominal is not None else fps)


def sizes(info: MediaInfo) -> list[tuple[str, int, int]]:
    return [(r.name, r.width, r.height) for r in plan_ladder(info)]


def test_1080p_gets_four_rungs_with_the_bitrate_table() -> None:
    rungs = plan_ladder(video(1920, 1080))
    assert [(r.name, r.width, r.height) for r in rungs] == [
        ("1080p", 1920, 1080), ("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)]
    assert [r.video_bitrate for r in rungs] == [5_000_000, 2_800_000, 1_400_000, 800_000]
    assert all(r.audio_bitrate == 128_000 for r in rungs)


@pytest.mark.parametrize("width,height", [(3840, 2160), (2560, 1440)])
def test_sources_above_1080_top_out_at_1080(width: int, height: int) -> None:
    assert sizes(video(width, height))[0] == ("1080p", 1920, 1080)
    assert len(plan_ladder(video(width, height))) == 4


def test_480p_source_gets_480_and_360_never_upscaled() -> None:
    assert sizes(video(854, 480)) == [("480p", 854, 480), ("360p", 640, 360)]


def test_odd_dimensions_round_to_even_and_keep_a_near_tier() -> None:
    # 479 is within 5% of 480: keep a "480p" rung at the source's own (even) size.
    assert sizes(video(853, 479)) == [("480p", 852, 478), ("360p", 642, 360)]


def test_small_source_gets_one_rung_at_its_own_size() -> None:
    rungs = plan_ladder(video(320, 240))
    assert [(r.name, r.width, r.height) for r in rungs] == [("240p", 320, 240)]
    # Bitrate scaled down from 360p's by pixel count, audio smaller too.
    assert 150_000 <= rungs[0].video_bitrate < 800_000
    assert rungs[0].audio_bitrate == 96_000


def test_tiny_odd_source_still_gets_an_even_rung() -> None:
    assert sizes(video(161, 91)) == [("90p", 160, 90)]


def test_portrait_rungs_go_by_the_short_side() -> None:
    assert sizes(video(1080, 1920)) == [
        ("1080p", 1080, 1920), ("720p", 720, 1280), ("480p", 480, 854), ("360p", 360, 640)]
    assert sizes(video(480, 854)) == [("480p", 480, 854), ("360p", 360, 640)]


def test_every_size_is_even_and_never_above_the_source() -> None:
    for w, h in [(1921, 1081), (1279, 719), (999, 333), (2048, 858), (1440, 1080), (721, 1281)]:
        for rung in plan_ladder(video(w, h)):
            assert rung.width % 2 == 0 and rung.height % 2 == 0, (w, h, rung)
            assert rung.width <= w and rung.height <= h, (w, h, rung)


def test_no_audio_means_no_audio_bitrate() -> None:
    assert all(r.audio_bitrate == 0 for r in plan_ladder(video(1280, 720, audio=False)))


def test_audio_only_gets_one_audio_rung() -> None:
    info = MediaInfo(duration=5.0, width=None, height=None, fps=None, has_video=False,
                     has_audio=True, audio_index=0)
    (rung,) = plan_ladder(info)
    assert (rung.name, rung.width, rung.height, rung.audio_bitrate) == ("audio", 0, 0, 128_000)
    assert rung.is_audio_only


def test_nothing_to_transcode_is_an_error() -> None:
    with pytest.raises(ValueError):
        plan_ladder(MediaInfo(duration=1, width=None, height=None, fps=None, has_video=False,
                              has_audio=False))


@pytest.mark.parametrize(
    "fps,top,low",
    [(30, "30", "30"), (29.97, "30000/1001", "30000/1001"), (60, "60", "30"),
     (59.94, "60000/1001", "30000/1001"), (50, "50", "25"), (120, "60", "30"), (25, "25", "25"),
     (None, "30", "30")],
)
def test_frame_rate_per_rung(fps: float | None, top: str, low: str) -> None:
    rungs = plan_ladder(video(1280, 720, fps=fps))
    assert rungs[0].fps == top
    assert rungs[-1].fps == low


def test_variable_frame_rate_uses_the_nominal_rate() -> None:
    # A phone VFR video: 12.8 fps on average, 30 fps nominal -> 30 fps CFR.
    assert plan_ladder(video(640, 360, fps=12.8, nominal=30.0))[0].fps == "30"


# --------------------------------------------------------------------------------------------
# Lecture-aware encoding: motion statistics -> content class -> rung settings (all pure)


def stats(p90: float, *, cut: float = 0.0, frames: int = 180, p50: float | None = None) -> MotionStats:
    return MotionStats(frames=frames, still_share=0.0, changed_p50=p50 if p50 is not None else p90,
                       changed_p90=p90, cut_share=cut)


@pytest.mark.parametrize(
    "s,expected",
    [
        (stats(1.0), CONTENT_STILL),  # slides with a pointer and a small inset
        (stats(0.0), CONTENT_STILL),  # a frozen picture
        (stats(5.0), CONTENT_STILL),  # the limit is inclusive
        (stats(5.5), CONTENT_MOTION),  # a bigger talking head, a scrolling screen
        (stats(60.0, p50=18.0), CONTENT_MOTION),  # camera footage
        (stats(1.0, cut=0.02), CONTENT_STILL),  # one slide change every 50 frames at most
        (stats(1.0, cut=0.05), CONTENT_MOTION),  # flashing cuts: not a lecture
        (stats(1.0, frames=19), CONTENT_MOTION),  # too little measured to tell
        (None, CONTENT_MOTION),  # the analysis failed: today's settings
    ],
)
def test_content_class_rule(s: MotionStats | None, expected: str) -> None:
    assert content_class(s) == expected


def test_motion_stats_summary() -> None:
    # 100 frame differences: 80 with 1 % changed, 18 with 8 %, 2 slide changes (100 %).
    s = MotionStats.from_changed([1.0] * 80 + [8.0] * 18 + [100.0] * 2)
    assert (s.frames, s.changed_p50, s.changed_p90, s.cut_share) == (100, 1.0, 8.0, 0.02)
    assert s.still_share == 0.0
    assert MotionStats.from_changed([0.0] * 9 + [3.0]).still_share == 0.9
    assert content_class(MotionStats.from_changed([])) == CONTENT_MOTION


def test_parse_changed_reads_blackframe_metadata() -> None:
    text = ("frame:0    pts:1      pts_time:0.0333\nlavfi.blackframe.pblack=97\n"
            "frame:1    pts:2      pts_time:0.0667\nlavfi.blackframe.pblack=100\n")
    assert parse_changed(text) == [3.0, 0.0]


@pytest.mark.parametrize("duration,count", [(5, 1), (12, 1), (60, 3), (300, 7), (600, 8), (7200, 8)])
def test_analysis_spans_are_few_and_inside_the_media(duration: float, count: int) -> None:
    plan = spans(duration)
    assert len(plan) == count
    assert all(0 <= start and start + length <= duration + 1e-9 for start, length in plan)
    assert sum(length for _, length in plan) <= max(12, 0.11 * duration)


@pytest.mark.parametrize(
    "rate,still", [("30", "10"), ("60", "12"), ("25", "25/2"), ("50", "25/2"),
                   ("30000/1001", "10000/1001"), ("24", "12"), ("24000/1001", "12000/1001"),
                   ("48", "12"), ("20", "10"), ("15", "15"), ("12", "12"), ("10", "10")]
)
def test_still_rate_takes_every_kth_frame_down_to_12_5(rate: str, still: str) -> None:
    assert still_rate(rate) == still


def test_still_ladder_keeps_sizes_and_caps_and_lowers_the_rate() -> None:
    info = video(1920, 1080, fps=30.0)
    today = plan_ladder(info)
    still = plan_ladder(info, CONTENT_STILL)
    assert [(r.name, r.width, r.height, r.video_bitrate, r.audio_bitrate) for r in still] == [
        (r.name, r.width, r.height, r.video_bitrate, r.audio_bitrate) for r in today]
    assert {r.fps for r in today} == {"30"} and {r.content for r in today} == {CONTENT_MOTION}
    assert {r.fps for r in still} == {"10"} and {r.content for r in still} == {CONTENT_STILL}
    # Keyframes stay aligned in seconds: one segment is fps * 4 frames on every rung.
    assert {round(r.fps_value * 4) for r in still} == {40}
    # The rungs under 720p scale the 720p picture (a cascade), the top two the source.
    assert [r.scale_from for r in still] == [None, None, "720p", "720p"]
    assert all(r.preset is None and r.x264_params is None and r.scale_from is None
               and r.threads is None for r in today)
    assert all(r.x264_params and r.threads == 1 for r in still)


def test_a_60_fps_still_ladder_has_one_rate_on_every_rung() -> None:
    # Today: 60 on 1080/720, 30 below; still: 12 everywhere (every 5th frame), one fps filter.
    assert [r.fps for r in plan_ladder(video(1920, 1080, fps=60.0))] == ["60", "60", "30", "30"]
    assert {r.fps for r in plan_ladder(video(1920, 1080, fps=60.0), CONTENT_STILL)} == {"12"}


def aac(**changes: object) -> MediaInfo:
    base = dict(duration=60, width=1920, height=1080, fps=30.0, has_video=True, has_audio=True,
                video_index=0, audio_index=1, audio_codec="aac", audio_profile="LC",
                audio_sample_rate=48000, audio_channels=2, audio_bitrate=128_000)
    return MediaInfo(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes,copied",
    [
        ({}, True),  # a screen recorder's AAC: copied into every rung
        ({"audio_channels": 1, "audio_sample_rate": 44100, "audio_bitrate": 64_000}, True),
        ({"audio_codec": "opus"}, False),  # a WebM: browsers' HLS wants AAC
        ({"audio_profile": "HE-AAC"}, False),
        ({"audio_profile": None}, False),  # not stated: encode, as today
        ({"audio_channels": 6}, False),  # 5.1 is downmixed to stereo by the encoder
        ({"audio_sample_rate": 22050}, False),
        ({"audio_bitrate": 320_000}, False),  # too many bytes for the 360p rung
        ({"audio_bitrate": None}, False),
    ],
)
def test_still_ladder_copies_browser_ready_aac(changes: dict, copied: bool) -> None:  # type: ignore[type-arg]
    info = aac(**changes)
    assert audio_copyable(info) is copied
    still = plan_ladder(info, CONTENT_STILL)
    assert {r.audio_copy for r in still} == {copied}
    if copied:
        assert {r.audio_bitrate for r in still} == {info.audio_bitrate}
    # Today's ladder (and so high-motion material) always encodes.
    assert not any(r.audio_copy for r in plan_ladder(info))


def test_still_ladder_of_a_small_source_has_no_cascade() -> None:
    still = plan_ladder(video(854, 480, fps=25.0), CONTENT_STILL)
    assert [(r.name, r.fps, r.scale_from) for r in still] == [("480p", "25/2", None),
                                                               ("360p", "25/2", None)]


def test_audio_only_ignores_the_content_class() -> None:
    info = MediaInfo(duration=10, width=None, height=None, fps=None, has_video=False,
                     has_audio=True, audio_index=0)
    assert plan_ladder(info, CONTENT_STILL) == plan_ladder(info)


def test_unknown_content_class_is_an_error() -> None:
    with pytest.raises(ValueError):
        plan_ladder(video(1280, 720), "cartoon")

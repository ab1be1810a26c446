"""plan_ladder(): pure, so these build MediaInfo by hand."""

from __future__ import annotations

import pytest

from coursecrafter_worker.pipeline import MediaInfo, plan_ladder


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

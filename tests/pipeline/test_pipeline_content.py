"""Lecture-aware encoding end to end: a still-slides clip gets the still ladder (10 fps on every
rung, aligned 4 s segments, the source's AAC copied into every rung), a high-motion clip keeps
today's (source rate, AAC encoded once into the ladder's audio rendition). Tiny clips."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from pipeline_support import audio_playlist, decode, ffmpeg, read_master, read_playlist

from coursecrafter_worker.pipeline import TranscodeResult, find_ffmpeg, probe, transcode
from coursecrafter_worker.pipeline.ladder import CONTENT_MOTION, CONTENT_STILL, content_class
from coursecrafter_worker.pipeline.motion import analyze

PRESET = "ultrafast"
SECONDS = 6


def make_slides(path: Path) -> Path:
    """1280x720 30 fps: two 'slides' (text-like bars on a plain background, changing at 3 s),
    a small pointer moving all the time, a tone."""
    bars = ",".join(
        f"drawbox=x=80:y={120 + 60 * i}:w={300 + 97 * (i % 5)}:h=30:color=0x303030:t=fill"
        for i in range(8)
    )
    graph = (
        f"[0:v]{bars},drawbox=x=0:y=0:w=iw:h=ih:color=0x1d2b3a:t=fill:enable='gte(t,3)'[bg];"
        "[bg][1:v]overlay=x='300+200*sin(2*t)':y='300+100*cos(3*t)'[v]"
    )
    ffmpeg("-f", "lavfi", "-i", f"color=c=0xf4f1ea:s=1280x720:r=30:d={SECONDS}",
           "-f", "lavfi", "-i", f"color=c=red:s=20x20:r=30:d={SECONDS}",
           "-f", "lavfi", "-i", f"sine=frequency=220:sample_rate=48000:duration={SECONDS}",
           "-filter_complex", graph, "-map", "[v]", "-map", "2:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
           "-c:a", "aac", "-b:a", "64k", "-t", str(SECONDS), path)
    return path


def make_motion(path: Path) -> Path:
    """854x480 30 fps: testsrc2 under strong per-frame noise (every pixel changes)."""
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=854x480:r=30:d={SECONDS}",
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={SECONDS}",
           "-vf", "noise=alls=40:allf=t", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-t", str(SECONDS), path)
    return path


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TranscodeResult, Path]:
    root = tmp_path_factory.mktemp("slides")
    source = make_slides(root / "slides.mp4")
    return source, transcode(source, root / "out", preset=PRESET), root / "out"


@pytest.fixture(scope="module")
def motion(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TranscodeResult, Path]:
    root = tmp_path_factory.mktemp("motion")
    source = make_motion(root / "motion.mp4")
    return source, transcode(source, root / "out", preset=PRESET), root / "out"


def check_ladder(result: TranscodeResult, out: Path, names: list[str], fps: float) -> None:
    """Every rung: in the master, complete, SECONDS long, at `fps`; segments aligned (4 + 2 s)."""
    variants = read_master(out / result.master_playlist)
    assert [v.uri for v in variants] == [f"{n}/index.m3u8" for n in names]
    durations = []
    for rendition in result.renditions:
        playlist = read_playlist(out / rendition.playlist)
        assert playlist.ended and playlist.target_duration <= 4
        assert playlist.total == pytest.approx(SECONDS, abs=0.1)
        durations.append(playlist.durations)
        first = (out / rendition.playlist).parent / playlist.segments[0]
        assert probe(first, ffmpeg=find_ffmpeg()).fps == pytest.approx(fps, abs=0.01)
        decoded = decode(out / rendition.playlist)
        assert decoded.has_video
        assert abs(decoded.frames - fps * SECONDS) <= 2
        assert decode(audio_playlist(out / result.master_playlist, rendition.playlist)).has_audio
    # Keyframes aligned on the 4 s grid: every rung cuts its segments at the same instants.
    assert all(d == pytest.approx([4.0, 2.0], abs=0.05) for d in durations)


def test_still_slides_are_measured_still(slides: tuple[Path, TranscodeResult, Path]) -> None:
    source = slides[0]
    stats = analyze(source, probe(source, ffmpeg=find_ffmpeg()), ffmpeg=find_ffmpeg())
    assert stats is not None and stats.frames >= SECONDS * 30 - 2
    assert stats.changed_p90 <= 1.0  # a 20x20 pointer on 1280x720
    assert content_class(stats) == CONTENT_STILL


def test_still_slides_get_10_fps_on_every_rung(slides: tuple[Path, TranscodeResult, Path]) -> None:
    _, result, out = slides
    assert result.content == CONTENT_STILL
    check_ladder(result, out, ["720p", "480p", "360p"], 10.0)


def first_segment(out: Path, rendition_playlist: str) -> Path:
    playlist = out / rendition_playlist
    return playlist.parent / read_playlist(playlist).segments[0]


def test_still_slides_carry_the_source_audio_as_it_is(
        slides: tuple[Path, TranscodeResult, Path]) -> None:
    # The source's mono 64k AAC is copied (today's ladder encodes stereo 128k per rung).
    _, result, out = slides
    for rendition in result.renditions:
        seg = probe(first_segment(out, rendition.playlist), ffmpeg=find_ffmpeg())
        assert (seg.audio_codec, seg.audio_channels) == ("aac", 1)


def test_high_motion_keeps_todays_rate(motion: tuple[Path, TranscodeResult, Path]) -> None:
    source, result, out = motion
    stats = analyze(source, probe(source, ffmpeg=find_ffmpeg()), ffmpeg=find_ffmpeg())
    assert stats is not None and stats.changed_p50 >= 50
    assert result.content == CONTENT_MOTION
    check_ladder(result, out, ["480p", "360p"], 30.0)
    # Encoded (stereo), once: the ladder's audio rendition.
    seg = probe(first_segment(out, "hls/audio/index.m3u8"), ffmpeg=find_ffmpeg())
    assert (seg.audio_codec, seg.audio_channels) == ("aac", 2)


def test_content_can_be_forced(slides: tuple[Path, TranscodeResult, Path], tmp_path: Path) -> None:
    result = transcode(slides[0], tmp_path / "out", preset=PRESET, content=CONTENT_MOTION)
    assert result.content == CONTENT_MOTION
    check_ladder(result, tmp_path / "out", ["720p", "480p", "360p"], 30.0)


def test_still_command_shape() -> None:
    """Pure: the still ladder's FFmpeg command drops frames once, cascades the low rungs and sets
    per-rung x264 options; the motion one has none of that."""
    from coursecrafter_worker.pipeline import MediaInfo, build_command, plan_ladder

    info = MediaInfo(duration=60, width=1920, height=1080, fps=30.0, has_video=True,
                     has_audio=True, video_index=0, audio_index=1, nominal_fps=30.0)
    still = build_command(Path("/s.mp4"), info, plan_ladder(info, CONTENT_STILL))
    graph = still[still.index("-filter_complex") + 1]
    assert graph.count("fps=fps=") == 1
    # The source splits into the poster's branch (every source frame) and one fps=10 for all rungs.
    assert re.match(r"\[0:0\]split=2\[(\w+)\]\[(\w+)\];\[\1\]fps=fps=10\[", graph)
    # The source goes to 1080p, 720p and the poster; the 720p picture fans out to 480p and 360p.
    assert graph.count("scale=854:480") == 1
    assert re.search(r"scale=1280:720\[(\w+)\];\[\1\]split=3", graph)
    for i in range(4):
        assert still[still.index(f"-threads:v:{i}") + 1] == "1"
        assert still[still.index(f"-g:v:{i}") + 1] == "40"  # 4 s at 10 fps
        assert "aq-mode=0" in still[still.index(f"-x264-params:v:{i}") + 1]
    assert still[still.index("-c:a") + 1] == "aac"  # the codec/profile/rate were not stated
    copied = dataclasses.replace(info, audio_codec="aac", audio_profile="LC",
                                 audio_sample_rate=48000, audio_channels=2, audio_bitrate=128_000)
    argv = build_command(Path("/s.mp4"), copied, plan_ladder(copied, CONTENT_STILL))
    assert argv[argv.index("-c:a") + 1] == "copy"
    assert not any(a.startswith(("-b:a", "-ac", "-ar")) for a in argv)
    motion = build_command(Path("/s.mp4"), copied, plan_ladder(copied, CONTENT_MOTION))
    assert motion[motion.index("-c:a") + 1] == "aac" and "-b:a:0" in motion
    assert "-b:a:1" not in motion  # one AAC encode for the four rungs
    motion = build_command(Path("/s.mp4"), info, plan_ladder(info, CONTENT_MOTION))
    graph = motion[motion.index("-filter_complex") + 1]
    assert graph.count("fps=fps=30") == 4
    assert not any(a.startswith(("-threads", "-x264-params", "-preset:")) for a in motion)
    assert motion[motion.index("-g:v:0") + 1] == "120"

"""transcode(): real FFmpeg runs on tiny lavfi clips, outputs read back and decoded again."""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pipeline_support import (
    Clips,
    decode,
    frame_at,
    jpeg_size,
    output_files,
    psnr,
    read_master,
    read_playlist,
)

from coursecrafter_worker.messages import Rendition
from coursecrafter_worker.pipeline import MediaError, TranscodeResult, transcode

PRESET = "ultrafast"


@dataclass
class Done:
    result: TranscodeResult
    out: Path
    events: list[tuple[str, int]] = field(default_factory=list)


def run(source: Path, out: Path, **kwargs: object) -> Done:
    events: list[tuple[str, int]] = []
    result = transcode(source, out, on_progress=lambda phase, pct: events.append((phase, pct)),
                       preset=PRESET, **kwargs)  # type: ignore[arg-type]
    return Done(result, out, events)


def check_hls(done: Done, duration: float, *, tolerance: float = 0.5) -> None:
    """The master lists every rendition with RESOLUTION/BANDWIDTH as returned; every rendition
    playlist is complete, sums to `duration`, and decodes back to it; segments are aligned."""
    out, result = done.out, done.result
    assert result.master_playlist == "hls/master.m3u8"
    variants = read_master(out / result.master_playlist)
    assert [f"hls/{v.uri}" for v in variants] == [r.playlist for r in result.renditions]
    playlists = []
    for variant, rendition in zip(variants, result.renditions):
        assert variant.bandwidth == rendition.bitrate > 0
        if rendition.height:
            assert variant.resolution == (rendition.width, rendition.height)
        playlist = read_playlist(out / rendition.playlist)
        assert playlist.ended and playlist.segments
        assert playlist.total == pytest.approx(duration, abs=tolerance)
        for seg in playlist.segments:
            assert (out / rendition.playlist).parent.joinpath(seg).stat().st_size > 0
        playlists.append(playlist)
    # Keyframes aligned on the segment grid: every rung cuts at the same instants.
    for other in playlists[1:]:
        assert len(other.durations) == len(playlists[0].durations)
        assert other.durations == pytest.approx(playlists[0].durations, abs=0.05)
    assert result.duration == pytest.approx(duration, abs=tolerance)
    # No temporary directory left behind.
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------------
# The normal case, transcoded once for several tests


@pytest.fixture(scope="session")
def normal(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> Done:
    return run(clips.normal, tmp_path_factory.mktemp("normal") / "out")


def test_normal_result(normal: Done) -> None:
    r = normal.result
    assert (r.width, r.height, r.has_video, r.has_audio) == (854, 480, True, True)
    assert [(x.width, x.height, x.playlist) for x in r.renditions] == [
        (854, 480, "hls/480p/index.m3u8"), (640, 360, "hls/360p/index.m3u8")]
    assert all(isinstance(x, Rendition) for x in r.renditions)
    assert r.poster == "poster.jpg"


def test_normal_hls(normal: Done) -> None:
    check_hls(normal, 6.0)
    variants = read_master(normal.out / "hls/master.m3u8")
    assert all("avc1" in v.codecs and "mp4a" in v.codecs for v in variants)
    # 6 s on a 4 s grid: 4 + 2 in every rung.
    playlist = read_playlist(normal.out / "hls/480p/index.m3u8")
    assert playlist.durations == pytest.approx([4.0, 2.0], abs=0.05)
    assert playlist.target_duration == 4


def test_normal_decodes_back(normal: Done) -> None:
    for rendition in normal.result.renditions:
        decoded = decode(normal.out / rendition.playlist)
        assert decoded.has_video
        assert decoded.seconds == pytest.approx(6.0, abs=0.5)
        assert decoded.frames == pytest.approx(180, abs=3)  # 30 fps constant
    # The sound: encoded once, the ladder's audio rendition (test_pipeline_audio.py).
    decoded = decode(normal.out / "hls/audio/index.m3u8")
    assert decoded.has_audio and not decoded.has_video
    assert decoded.seconds == pytest.approx(6.0, abs=0.5)


def test_normal_poster(normal: Done, clips: Clips, tmp_path: Path) -> None:
    poster = normal.out / "poster.jpg"
    assert jpeg_size(poster) == (854, 480)
    # The frame at 10% of the duration (0.6 s), not the first one.
    at_10pct = psnr(poster, frame_at(clips.normal, 0.6, tmp_path / "t.png"))
    first = psnr(poster, frame_at(clips.normal, 0.0, tmp_path / "0.png"))
    assert at_10pct > first + 5, (at_10pct, first)


def test_poster_falls_back_to_the_first_frame(clips: Clips, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """When the video ends before the poster time (a duration that lied), the first frame."""
    # (the package's `transcode` attribute is the function; the module is in sys.modules)
    module = importlib.import_module("coursecrafter_worker.pipeline.transcode")
    monkeypatch.setattr(module, "poster_time", lambda info: 9999.0)
    done = run(clips.short, tmp_path / "out")
    assert done.result.poster == "poster.jpg"
    poster = tmp_path / "out/poster.jpg"
    assert jpeg_size(poster) == (320, 180)
    assert psnr(poster, frame_at(clips.short, 0.0, tmp_path / "0.png")) > 30


def test_normal_progress(normal: Done) -> None:
    events = normal.events
    assert events[0] == ("probing", 0)
    transcoding = [pct for phase, pct in events if phase == "transcoding"]
    assert transcoding[-1] == 100 and transcoding[0] == 0
    assert transcoding == sorted(set(transcoding)), "strictly increasing, no repeats"
    assert [phase for phase, _ in events].count("probing") == 1


def test_normal_files(normal: Done) -> None:
    files = output_files(normal.out)
    assert files == sorted([
        "hls/master.m3u8", "poster.jpg",
        "hls/480p/index.m3u8", "hls/480p/seg_00000.ts", "hls/480p/seg_00001.ts",
        "hls/360p/index.m3u8", "hls/360p/seg_00000.ts", "hls/360p/seg_00001.ts",
        "hls/audio/index.m3u8", "hls/audio/seg_00000.ts", "hls/audio/seg_00001.ts",
    ])


# --------------------------------------------------------------------------------------------
# Source shapes


def test_no_audio(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.no_audio, tmp_path / "out")
    assert not done.result.has_audio
    assert [(r.width, r.height) for r in done.result.renditions] == [(640, 360)]
    check_hls(done, 2.0)
    assert all("mp4a" not in v.codecs for v in read_master(tmp_path / "out/hls/master.m3u8"))
    decoded = decode(tmp_path / "out/hls/360p/index.m3u8")
    assert decoded.has_video and not decoded.has_audio


def test_audio_only(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.audio_only, tmp_path / "out")
    r = done.result
    assert (r.has_video, r.has_audio, r.width, r.height, r.poster) == (False, True, None, None, None)
    assert r.renditions == [Rendition(height=0, width=0, bitrate=r.renditions[0].bitrate,
                                      playlist="hls/audio/index.m3u8")]
    check_hls(done, 2.0)
    assert not (tmp_path / "out/poster.jpg").exists()
    decoded = decode(tmp_path / "out/hls/audio/index.m3u8")
    assert decoded.has_audio and not decoded.has_video
    assert decoded.seconds == pytest.approx(2.0, abs=0.3)


def test_audio_with_cover_art_is_audio_only(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.audio_with_cover, tmp_path / "out")
    assert not done.result.has_video and done.result.poster is None
    assert [r.playlist for r in done.result.renditions] == ["hls/audio/index.m3u8"]


def test_one_frame_video_becomes_a_one_second_still(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.one_frame, tmp_path / "out")
    assert [(r.width, r.height) for r in done.result.renditions] == [(320, 240)]
    check_hls(done, 1.0, tolerance=0.1)
    assert jpeg_size(tmp_path / "out/poster.jpg") == (320, 240)
    assert decode(tmp_path / "out/hls/240p/index.m3u8").frames >= 1


def test_odd_dimensions(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.odd, tmp_path / "out")
    assert (done.result.width, done.result.height) == (853, 479)
    assert [(r.width, r.height) for r in done.result.renditions] == [(852, 478), (642, 360)]
    check_hls(done, 1.0)
    assert jpeg_size(tmp_path / "out/poster.jpg") == (852, 478)


def test_portrait(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.portrait, tmp_path / "out")
    assert [(r.width, r.height, r.playlist) for r in done.result.renditions] == [
        (480, 854, "hls/480p/index.m3u8"), (360, 640, "hls/360p/index.m3u8")]
    check_hls(done, 1.0)


def test_rotated_phone_video(clips: Clips, tmp_path: Path) -> None:
    """Stored landscape with a 90-degree display matrix: output is upright portrait."""
    done = run(clips.rotated, tmp_path / "out")
    assert (done.result.width, done.result.height) == (480, 854)
    assert [(r.width, r.height) for r in done.result.renditions] == [(480, 854), (360, 640)]
    check_hls(done, 1.0)
    assert jpeg_size(tmp_path / "out/poster.jpg") == (480, 854)


def test_anamorphic_gets_square_pixels(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.anamorphic, tmp_path / "out")
    assert [(r.width, r.height) for r in done.result.renditions] == [(852, 480), (640, 360)]
    assert read_master(tmp_path / "out/hls/master.m3u8")[0].resolution == (852, 480)


def test_variable_frame_rate_becomes_constant(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.vfr, tmp_path / "out")
    check_hls(done, 3.0)
    decoded = decode(tmp_path / "out/hls/240p/index.m3u8")
    # 3 s at a constant 30 fps (the source has only 45 frames, 12.8 fps on average).
    assert decoded.frames == pytest.approx(90, abs=3)


@pytest.mark.slow
def test_1440p_is_capped_at_1080(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.hd1440, tmp_path / "out")
    assert [(r.width, r.height) for r in done.result.renditions] == [
        (1920, 1080), (1280, 720), (854, 480), (640, 360)]
    check_hls(done, 1.0, tolerance=0.1)
    variants = read_master(tmp_path / "out/hls/master.m3u8")
    assert [v.resolution for v in variants] == [(1920, 1080), (1280, 720), (854, 480), (640, 360)]
    assert jpeg_size(tmp_path / "out/poster.jpg") == (1920, 1080)


def test_interlaced_is_deinterlaced(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.interlaced, tmp_path / "out")
    check_hls(done, 1.0)
    decoded = decode(tmp_path / "out/hls/240p/index.m3u8")
    assert decoded.frames == pytest.approx(25, abs=1)  # one frame per frame, not per field
    assert "progressive" in decoded.stderr or "top first" not in decoded.stderr


def test_missing_container_duration(clips: Clips, tmp_path: Path) -> None:
    done = run(clips.raw_h264, tmp_path / "out")
    check_hls(done, 2.0)
    assert done.events[-1] == ("transcoding", 100)


# --------------------------------------------------------------------------------------------
# Bad sources


@pytest.mark.parametrize(
    "clip,code",
    [("text_file", "not_media"), ("random_bytes", "not_media"), ("empty", "empty"),
     ("truncated", "truncated"), ("index_only", "truncated"), ("too_large", "too_large"),
     ("playlist_disguised", "not_media")],
)
def test_bad_sources_fail_cleanly(clips: Clips, tmp_path: Path, clip: str, code: str) -> None:
    events: list[tuple[str, int]] = []
    with pytest.raises(MediaError) as exc:
        transcode(getattr(clips, clip), tmp_path / "out", preset=PRESET,
                  on_progress=lambda p, x: events.append((p, x)))
    assert exc.value.code == code
    assert not exc.value.retryable
    assert events[0] == ("probing", 0)
    if clip != "index_only":  # that one only fails once FFmpeg reads the missing samples
        assert events == [("probing", 0)]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_truncated_with_index_first_keeps_what_is_there(clips: Clips, tmp_path: Path) -> None:
    """Decision: an MP4 cut after its index (faststart) is READY with the part that decodes; its
    duration is what was produced (about half of the 4 s the index promises)."""
    done = run(clips.truncated_faststart, tmp_path / "out")
    assert 0.5 < done.result.duration < 3.5
    check_hls(done, done.result.duration, tolerance=0.3)
    decoded = decode(tmp_path / "out" / done.result.renditions[0].playlist)
    assert decoded.seconds == pytest.approx(done.result.duration, abs=0.5)


# --------------------------------------------------------------------------------------------
# Timeout, cancellation, re-runs


def _processes_in(directory: Path) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(directory)):
                pids.append(int(entry))
    return pids


@pytest.mark.slow
def test_timeout_is_a_media_error_and_kills_ffmpeg(clips: Clips, tmp_path: Path) -> None:
    source = clips.long_gray
    out = tmp_path / "out"
    events: list[tuple[str, int]] = []
    started = time.monotonic()
    with pytest.raises(MediaError) as exc:
        transcode(source, out, timeout=1.0, preset="veryfast",
                  on_progress=lambda p, x: events.append((p, x)))
    elapsed = time.monotonic() - started
    assert exc.value.code == "timeout"
    assert "too long" in exc.value.message
    assert elapsed < 5, elapsed
    assert ("probing", 0) in events
    assert ("transcoding", 0) in events  # killed in the transcode, not in the probe
    assert _processes_in(tmp_path) == []
    assert not out.exists() or output_files(out) == []


def test_progress_callback_exception_cancels(clips: Clips, tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def on_progress(phase: str, pct: int) -> None:
        if phase == "transcoding":
            raise Cancelled

    with pytest.raises(Cancelled):
        transcode(clips.normal, tmp_path / "out", on_progress=on_progress, preset=PRESET)
    assert _processes_in(tmp_path) == []
    assert output_files(tmp_path / "out") == []


def test_rerun_into_the_same_dir_replaces_cleanly(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first = run(clips.normal, out)  # 2 segments per rung, 480p + 360p
    assert (out / "hls/480p/seg_00001.ts").exists()
    first_files = output_files(out)
    second = run(clips.short, out)  # 1 segment, one 180p rung
    assert [r.playlist for r in second.result.renditions] == ["hls/180p/index.m3u8"]
    assert output_files(out) == ["hls/180p/index.m3u8", "hls/180p/seg_00000.ts",
                                 "hls/master.m3u8", "poster.jpg"]
    check_hls(second, 1.0)
    # And the same source twice gives the same file set.
    third = run(clips.normal, out)
    assert output_files(out) == first_files
    assert [r.playlist for r in third.result.renditions] == [r.playlist for r in first.result.renditions]
    # Audio-only into a video's dir: no stale poster.
    run(clips.audio_only, out)
    assert output_files(out) == ["hls/audio/index.m3u8", "hls/audio/seg_00000.ts", "hls/master.m3u8"]

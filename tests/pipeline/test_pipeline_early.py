"""make_early(): the early rendition on tiny lavfi clips, read back and decoded as a player would.

Which path a source takes (remux without re-encoding, or one fast rung) is checked by what a
player gets: the remux's decoded frames are bit-identical to the source's; the fast rung's are
8-bit 4:2:0 H.264 at the lowest rung's size."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from pipeline_support import FFMPEG, Clips, decode, ffmpeg, make_clip, read_master, read_playlist

from coursecrafter_worker.pipeline import early as early_module
from coursecrafter_worker.pipeline import MediaError, probe
from coursecrafter_worker.pipeline.early import (
    EARLY_PLAYLIST,
    MASTER_PLAYLIST,
    MAX_SEGMENT_SECONDS,
    make_early,
    remux_refusal,
)


def frame_hashes(path: Path) -> list[str]:
    """MD5 of every decoded video frame (what a player shows), in order."""
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-i",
                           str(path), "-map", "0:v:0", "-f", "framemd5", "-"],
                          capture_output=True, text=True, timeout=60, check=True)
    return [line.rsplit(",", 1)[1].strip() for line in proc.stdout.splitlines()
            if line and not line.startswith("#")]


def video_stream(path: Path) -> str:
    """The `Video:` line of FFmpeg's banner for `path` (codec, profile, pixel format, size)."""
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", str(path)],
                          capture_output=True, text=True, timeout=30)
    lines = [line for line in proc.stderr.splitlines() if "Video:" in line]
    assert lines, proc.stderr
    return lines[0]


def check_output(out: Path, duration: float) -> Path:
    """Master names only the early playlist; every segment is there; as long as the source."""
    (variant,) = read_master(out / MASTER_PLAYLIST)
    assert variant.uri == "early/index.m3u8" and variant.bandwidth > 0
    playlist = out / EARLY_PLAYLIST
    media = read_playlist(playlist)
    assert media.ended and media.segments
    assert all((playlist.parent / s).stat().st_size > 0 for s in media.segments)
    assert max(media.durations) <= MAX_SEGMENT_SECONDS
    assert media.total == pytest.approx(duration, abs=0.25)
    assert decode(out / MASTER_PLAYLIST).seconds == pytest.approx(duration, abs=0.3)
    return playlist


def test_browser_ready_h264_aac_is_remuxed_bit_for_bit(clips: Clips, tmp_path: Path) -> None:
    result = make_early(clips.normal, tmp_path)
    assert result is not None and result.kind == "remux"
    playlist = check_output(tmp_path, 6.0)
    assert frame_hashes(playlist) == frame_hashes(clips.normal)  # copied, not re-encoded
    assert decode(playlist).has_audio
    (variant,) = read_master(tmp_path / MASTER_PLAYLIST)
    assert variant.resolution == (854, 480) and result.rendition.height == 480
    assert result.rendition.playlist == "hls/early/index.m3u8"


def test_mkv_without_audio_is_remuxed_picture_only(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "silent.mkv", size="320x240", duration=3, audio=False)
    out = tmp_path / "out"
    result = make_early(source, out)
    assert result is not None and result.kind == "remux"
    playlist = check_output(out, 3.0)
    assert frame_hashes(playlist) == frame_hashes(source)
    assert not decode(playlist).has_audio


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p"])
def test_10_bit_or_4_4_4_h264_is_never_remuxed(tmp_path: Path, pix_fmt: str) -> None:
    source = make_clip(tmp_path / f"{pix_fmt}.mp4", size="320x240", duration=2,
                       pix_fmt=pix_fmt)
    assert pix_fmt in video_stream(source)
    out = tmp_path / "out"
    result = make_early(source, out)
    assert result is not None and result.kind == "fast_rung"
    playlist = check_output(out, 2.0)
    line = video_stream(playlist)
    assert "h264" in line and re.search(r"yuv420p[,(]", line) and "320x240" in line, line
    assert decode(playlist).has_audio


def test_keyframes_30_s_apart_take_the_fast_rung(tmp_path: Path) -> None:
    source = make_clip(tmp_path / "gop30.mp4", size="160x120", rate=10, duration=32,
                       audio=False, out_args=("-g", "300", "-keyint_min", "300",
                                              "-sc_threshold", "0"))
    out = tmp_path / "out"
    result = make_early(source, out)
    assert result is not None and result.kind == "fast_rung"
    playlist = check_output(out, 32.0)
    assert max(read_playlist(playlist).durations) <= 4.5  # the ladder's own 4 s grid


def test_variable_frame_rate_h264_is_remuxed_with_its_timing(clips: Clips, tmp_path: Path) -> None:
    result = make_early(clips.vfr, tmp_path)
    assert result is not None and result.kind == "remux"
    playlist = check_output(tmp_path, 3.0)
    assert frame_hashes(playlist) == frame_hashes(clips.vfr)


def test_webm_vp9_opus_takes_the_fast_rung_with_aac(tmp_path: Path) -> None:
    source = tmp_path / "talk.webm"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=320x240:r=30:d=3", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000:duration=3", "-c:v", "libvpx-vp9",
           "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", source)
    out = tmp_path / "out"
    result = make_early(source, out)
    assert result is not None and result.kind == "fast_rung"
    playlist = check_output(out, 3.0)
    assert "h264" in video_stream(playlist)
    proc = subprocess.run([FFMPEG, "-hide_banner", "-i", str(playlist)], capture_output=True,
                          text=True, timeout=30)
    assert re.search(r"Audio: aac", proc.stderr), proc.stderr


def test_audio_only_gets_no_early_rendition(clips: Clips, tmp_path: Path) -> None:
    assert make_early(clips.audio_only, tmp_path) is None
    assert not (tmp_path / "hls").exists()


def test_h264_that_fails_to_remux_takes_the_fast_rung(
    clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Claims H.264 and passes every check, but the copy fails (as a broken bitstream would).
    real = early_module.remux_command
    monkeypatch.setattr(early_module, "remux_command",
                        lambda *a, **k: [*real(*a, **k)[:-1], "-no_such_option", "1",
                                         EARLY_PLAYLIST])
    result = make_early(clips.normal, tmp_path)
    assert result is not None and result.kind == "fast_rung"
    check_output(tmp_path, 6.0)


def test_remux_refusal_reasons(clips: Clips) -> None:
    info = probe(clips.normal)
    assert info.pix_fmt == "yuv420p" and info.video_codec == "h264"
    high_41 = {"profile_idc": 100, "level_idc": 41}
    assert remux_refusal(info, high_41) is None
    assert remux_refusal(replace(info, pix_fmt="yuvj420p"), high_41) is None
    assert remux_refusal(info, {"profile_idc": 66, "level_idc": 52}) is None
    refused = {
        "profile": remux_refusal(info, {"profile_idc": 110, "level_idc": 41}),  # High 10
        "4:4:4 profile": remux_refusal(info, {"profile_idc": 244, "level_idc": 41}),
        "level 6.0": remux_refusal(info, {"profile_idc": 100, "level_idc": 60}),
        "no SPS": remux_refusal(info, None),
        "10-bit": remux_refusal(replace(info, pix_fmt="yuv420p10le"), high_41),
        "HEVC": remux_refusal(replace(info, video_codec="hevc"), high_41),
        "AVI": remux_refusal(replace(info, format_name="avi"), high_41),
        "Opus": remux_refusal(replace(info, audio_codec="opus"), high_41),
        "5.1 AAC": remux_refusal(replace(info, audio_channels=6), high_41),
        "rotated": remux_refusal(replace(info, rotation=90), high_41),
        "interlaced": remux_refusal(replace(info, interlaced=True), high_41),
    }
    assert all(refused.values()), refused


def test_cancel_stops_the_early_pass(clips: Clips, tmp_path: Path) -> None:
    class Stop(Exception):
        pass

    def check() -> None:
        raise Stop()

    with pytest.raises(Stop):
        make_early(clips.normal, tmp_path, check=check)
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in ps  # no FFmpeg left writing there


def test_a_cut_off_source_gets_no_early_rendition(tmp_path: Path) -> None:
    # Index first, then cut at 60%: the index promises 6 s that the file does not hold. The
    # early pass must not make it playable (the ladder reports it as cut off).
    whole = make_clip(tmp_path / "whole.mp4", size="320x240", duration=6,
                      out_args=("-movflags", "+faststart"))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.raises(MediaError):
        make_early(cut, tmp_path / "out")

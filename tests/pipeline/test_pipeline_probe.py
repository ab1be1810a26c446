"""probe(): real files (through ffprobe when the FFmpeg under test has one, else the `ffmpeg -i`
banner parser), plus canned banners and ffprobe JSON."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import FFMPEG, Clips

from coursecrafter_worker.pipeline import MediaError, TranscodeError, probe
from coursecrafter_worker.pipeline.errors import NOT_MEDIA_MESSAGE
from coursecrafter_worker.pipeline.probe import parse_banner, parse_ffprobe_json
from coursecrafter_worker.pipeline.process import find_ffprobe


def test_probe_normal_clip(clips: Clips) -> None:
    info = probe(clips.normal)
    assert (info.width, info.height) == (854, 480)
    assert info.duration == pytest.approx(6.0, abs=0.1)
    assert info.fps == pytest.approx(30)
    assert info.has_video and info.has_audio
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.audio_profile == "LC" and 32_000 <= (info.audio_bitrate or 0) <= 96_000  # 64k
    assert info.audio_streams == 1
    assert (info.video_index, info.audio_index) == (0, 1)
    # ffprobe when the FFmpeg under test has one next to it (Debian's package), else the banner.
    assert info.prober == ("ffprobe" if find_ffprobe(FFMPEG) else "ffmpeg")
    assert info.duration_source == "container"


def test_probe_audio_only(clips: Clips) -> None:
    info = probe(clips.audio_only)
    assert not info.has_video and info.has_audio
    assert info.width is None and info.height is None
    assert info.duration == pytest.approx(2.0, abs=0.1)


def test_cover_art_is_not_video(clips: Clips) -> None:
    info = probe(clips.audio_with_cover)
    assert not info.has_video and info.has_audio


def test_rotation_gives_display_dimensions(clips: Clips) -> None:
    info = probe(clips.rotated)
    assert (info.coded_width, info.coded_height) == (854, 480)
    assert info.rotation in (90, 270)
    assert (info.width, info.height) == (480, 854)
    assert info.is_portrait


def test_anamorphic_display_width(clips: Clips) -> None:
    info = probe(clips.anamorphic)
    assert info.sar == (32, 27)
    assert (info.width, info.height) == (853, 480)


def test_two_audio_streams_picks_the_default(clips: Clips) -> None:
    info = probe(clips.two_audio)
    assert info.audio_streams == 2
    assert info.audio_index == 2  # stream 0 video, 1 first audio, 2 the default audio


def test_missing_duration_falls_back_to_the_packets(clips: Clips) -> None:
    info = probe(clips.raw_h264)
    assert info.duration_source in ("demux", "decode")
    assert info.duration == pytest.approx(2.0, abs=0.15)


def test_live_matroska_without_duration(clips: Clips) -> None:
    info = probe(clips.live_mkv)
    assert info.duration_source == "demux"
    assert info.duration == pytest.approx(2.0, abs=0.15)


def test_interlaced_is_detected(clips: Clips) -> None:
    assert probe(clips.interlaced).interlaced
    assert not probe(clips.short).interlaced


def test_too_large(clips: Clips) -> None:
    with pytest.raises(MediaError) as exc:
        probe(clips.too_large)
    assert exc.value.code == "too_large"
    assert "8192" in exc.value.message


@pytest.mark.parametrize(
    "clip,code",
    [("text_file", "not_media"), ("random_bytes", "not_media"), ("empty", "empty"),
     ("truncated", "truncated"), ("playlist_disguised", "not_media")],
)
def test_bad_sources(clips: Clips, clip: str, code: str) -> None:
    with pytest.raises(MediaError) as exc:
        probe(getattr(clips, clip))
    assert exc.value.code == code
    assert exc.value.message and exc.value.message[0].isupper()
    if code == "not_media":
        assert exc.value.message == NOT_MEDIA_MESSAGE


def test_missing_source_is_retryable(tmp_path: Path) -> None:
    with pytest.raises(TranscodeError) as exc:
        probe(tmp_path / "nope.mp4")
    assert exc.value.code == "source_missing"


def test_probe_timeout_is_a_media_error(clips: Clips) -> None:
    with pytest.raises(MediaError) as exc:
        probe(clips.normal, timeout=0.0001)
    assert exc.value.code == "timeout"


# --------------------------------------------------------------------------------------------
# The banner parser on canned FFmpeg output (older and newer spellings)

BANNER_OLD_ROTATE = """\
Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'phone.mov':
  Metadata:
    creation_time   : 2021-03-01T10:00:00.000000Z
  Duration: 00:01:02.53, start: 0.000000, bitrate: 17044 kb/s
    Stream #0:0(und): Video: hevc (Main) (hvc1 / 0x31637668), yuv420p(tv, bt709), 1920x1080, 16894 kb/s, 29.98 fps, 30 tbr, 600 tbn, 600 tbc (default)
    Metadata:
      rotate          : 90
      creation_time   : 2021-03-01T10:00:00.000000Z
    Side data:
      displaymatrix: rotation of -90.00 degrees
    Stream #0:1(und): Audio: aac (LC) (mp4a / 0x6134706D), 44100 Hz, stereo, fltp, 128 kb/s (default)
    Stream #0:2(und): Data: none (mebx / 0x7862656D), 0 kb/s (default)
At least one output file must be specified
"""

BANNER_TS = """\
Input #0, mpegts, from 'lecture.ts':
  Duration: N/A, start: 1.400000, bitrate: N/A
  Program 1
    Metadata:
      service_name    : Service01
  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(tv, bt709, top first), 1440x1080 [SAR 4:3 DAR 16:9], 25 fps, 50 tbr, 90k tbn
  Stream #0:1[0x101](eng): Audio: mp2 ([3][0][0][0] / 0x0003), 48000 Hz, 5.1(side), fltp, 384 kb/s
"""


def test_banner_old_rotate_spelling() -> None:
    parsed = parse_banner(BANNER_OLD_ROTATE)
    assert parsed is not None and parsed.streams is not None
    assert parsed.duration == pytest.approx(62.53)
    assert parsed.bitrate == 17_044_000
    video, audio, data = parsed.streams
    assert (video.kind, video.codec, video.width, video.height) == ("video", "hevc", 1920, 1080)
    assert video.rotation == 270 and video.fps == pytest.approx(29.98) and video.tbr == 30
    assert video.pix_fmt == "yuv420p" and not video.interlaced
    assert (audio.codec, audio.sample_rate, audio.channels) == ("aac", 44100, 2)
    assert (audio.profile, audio.bitrate) == ("LC", 128_000)  # what decides copying (ladder.py)
    assert data.kind == "data"


def test_banner_mpegts_interlaced_no_duration() -> None:
    parsed = parse_banner(BANNER_TS)
    assert parsed is not None and parsed.streams is not None
    assert parsed.duration is None and parsed.start_time == pytest.approx(1.4)
    video, audio = parsed.streams
    assert (video.width, video.height, video.sar) == (1440, 1080, (4, 3))
    assert video.interlaced and video.fps == 25 and video.tbr == 50
    assert (audio.codec, audio.channels) == ("mp2", 6)
    assert (audio.profile, audio.bitrate) == (None, 384_000)  # "([3][0][0][0] / 0x0003)" is a tag


def test_banner_container_aspect_ratio_wins() -> None:
    banner = (
        "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mp4':\n"
        "  Duration: 00:00:01.00, start: 0.000000, bitrate: 3968 kb/s\n"
        "  Stream #0:0[0x1](und): Video: h264 (High 4:4:4 Predictive) (avc1 / 0x31637661), "
        "yuv444p(progressive), 720x480 [SAR 1:1 DAR 3:2], 3964 kb/s, SAR 32:27 DAR 16:9, "
        "29.97 fps, 29.97 tbr, 30k tbn (default)\n"
    )
    parsed = parse_banner(banner)
    assert parsed is not None and parsed.streams
    assert parsed.streams[0].sar == (32, 27)
    assert parsed.streams[0].fps == pytest.approx(29.97)


def test_banner_without_input_section() -> None:
    assert parse_banner("Error opening input file x.mp4.\n") is None


FFPROBE_JSON = {
    "streams": [
        {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
         "sample_aspect_ratio": "1:1", "avg_frame_rate": "30000/1001", "r_frame_rate": "30000/1001",
         "pix_fmt": "yuv420p", "field_order": "progressive", "disposition": {"default": 1},
         "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
        {"index": 1, "codec_type": "audio", "codec_name": "aac", "sample_rate": "48000",
         "channels": 2, "profile": "LC", "bit_rate": "96000", "disposition": {"default": 1}},
        {"index": 2, "codec_type": "video", "codec_name": "mjpeg", "width": 300, "height": 300,
         "disposition": {"attached_pic": 1}},
    ],
    "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "12.5", "bit_rate": "5000000"},
}


def test_ffprobe_json() -> None:
    parsed = parse_ffprobe_json(FFPROBE_JSON)
    assert parsed.duration == 12.5 and parsed.bitrate == 5_000_000
    assert parsed.streams is not None
    video, audio, cover = parsed.streams
    assert video.rotation == 270 and video.fps == pytest.approx(29.97, abs=0.01)
    assert audio.sample_rate == 48000 and audio.channels == 2
    assert (audio.profile, audio.bitrate) == ("LC", 96_000)
    assert cover.attached_pic

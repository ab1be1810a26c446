"""The ladder's audio encoded once (issue 9): when the sound must be encoded to AAC (a WebM
lecture's Opus, or a motion ladder) and there are several rungs, it is ONE rendition `hls/audio/`
that every rung names, the chunked path's layout; browser-ready AAC on a still ladder is still
copied into every rung, and one rung keeps its sound muxed in."""

from __future__ import annotations

import dataclasses
import importlib
from fractions import Fraction
from pathlib import Path

import pytest
from chunk_support import packets
from pipeline_support import decode, ffmpeg, read_audio_media, read_master, read_playlist

from coursecrafter_worker.pipeline import MediaInfo, build_command, find_ffmpeg, plan_ladder, probe
from coursecrafter_worker.pipeline.chunks import ChunkOutput, join_playlists
from coursecrafter_worker.pipeline.ladder import CONTENT_MOTION, CONTENT_STILL
from coursecrafter_worker.pipeline.playlists import bandwidths
from coursecrafter_worker.pipeline.transcode import parse_media_playlist, transcode

PRESET = "ultrafast"
SECONDS = 6
FPS = 30
transcode_module = importlib.import_module("coursecrafter_worker.pipeline.transcode")

HD = MediaInfo(duration=60, width=1920, height=1080, fps=30.0, has_video=True, has_audio=True,
               video_index=0, audio_index=1, nominal_fps=30.0, audio_codec="opus",
               audio_sample_rate=48000, audio_channels=2)
BROWSER_AAC = dataclasses.replace(HD, audio_codec="aac", audio_profile="LC",
                                  audio_bitrate=128_000)


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def audio_encoders(argv: list[str]) -> list[str]:
    """The per-output audio options of the command: one `-b:a:N` per AAC encoder."""
    return [a for a in argv if a.startswith("-b:a")]


# --------------------------------------------------------------------------------------------
# The command (pure)


def test_encoded_audio_is_one_encoder_for_every_rung() -> None:
    argv = build_command(Path("/talk.webm"), HD, plan_ladder(HD, CONTENT_MOTION))
    assert option(argv, "-c:a") == "aac" and audio_encoders(argv) == ["-b:a:0"]
    assert option(argv, "-b:a:0") == "128k"
    # The source's audio stream is mapped into the outputs once.
    maps = [argv[i + 1] for i, a in enumerate(argv) if a == "-map"]
    assert maps.count("0:1") == 1
    assert option(argv, "-var_stream_map") == (
        "a:0,agroup:audio,name:audio v:0,agroup:audio,name:1080p v:1,agroup:audio,name:720p "
        "v:2,agroup:audio,name:480p v:3,agroup:audio,name:360p")
    # A still ladder whose audio is not browser-ready AAC: encoded once as well.
    still = build_command(Path("/talk.webm"), HD, plan_ladder(HD, CONTENT_STILL))
    assert audio_encoders(still) == ["-b:a:0"] and "agroup:audio" in option(still, "-var_stream_map")


def test_copied_aac_one_rung_and_audio_only_keep_their_shape() -> None:
    copied = build_command(Path("/s.mp4"), BROWSER_AAC, plan_ladder(BROWSER_AAC, CONTENT_STILL))
    assert option(copied, "-c:a") == "copy" and audio_encoders(copied) == []
    assert option(copied, "-var_stream_map") == (
        "v:0,a:0,name:1080p v:1,a:1,name:720p v:2,a:2,name:480p v:3,a:3,name:360p")
    small = dataclasses.replace(HD, width=640, height=360)
    one = build_command(Path("/s.webm"), small, plan_ladder(small))
    assert option(one, "-var_stream_map") == "v:0,a:0,name:360p"
    assert audio_encoders(one) == ["-b:a:0"]
    sound = dataclasses.replace(HD, has_video=False, video_index=None, width=None, height=None)
    only = build_command(Path("/s.opus"), sound, plan_ladder(sound))
    assert option(only, "-var_stream_map") == "a:0,name:audio"
    # A source under 1 s (its picture padded to 1 s): the sound stays in the rungs.
    brief = dataclasses.replace(HD, duration=0.5)
    assert "agroup" not in option(build_command(Path("/s.webm"), brief, plan_ladder(brief)),
                                  "-var_stream_map")


# --------------------------------------------------------------------------------------------
# A WebM lecture (VP9 + Opus), 854x480: two rungs


@dataclasses.dataclass(frozen=True)
class Ladder:
    out: Path
    result: object


@pytest.fixture(scope="module")
def webm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("webm") / "talk.webm"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s=854x480:r={FPS}:d={SECONDS}", "-f", "lavfi", "-i",
           f"sine=frequency=440:sample_rate=48000:duration={SECONDS}", "-c:v", "libvpx-vp9",
           "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", "-ac", "2", source)
    return source


@pytest.fixture(scope="module")
def once(webm: Path) -> Ladder:
    out = webm.parent / "once"
    return Ladder(out, transcode(webm, out, preset=PRESET, content=CONTENT_MOTION))


@pytest.fixture(scope="module")
def muxed(webm: Path) -> Ladder:
    """The same source in the earlier layout (AAC muxed into every rung): the reference."""
    out = webm.parent / "muxed"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transcode_module, "separate_audio", lambda info, rungs: False)
        return Ladder(out, transcode(webm, out, preset=PRESET, content=CONTENT_MOTION))


def segments(playlist: Path) -> list[tuple[float, Path]]:
    found, _ = parse_media_playlist(playlist.read_text())
    return [(d, playlist.parent / uri) for d, uri in found]


def test_the_master_names_one_audio_rendition_in_every_rung(once: Ladder) -> None:
    master = once.out / "hls/master.m3u8"
    assert read_audio_media(master) == [{
        "TYPE": "AUDIO", "GROUP-ID": "audio", "NAME": "audio", "DEFAULT": "YES",
        "AUTOSELECT": "YES", "URI": "audio/index.m3u8"}]
    variants = read_master(master)
    # The rungs only: the audio is no quality of its own.
    assert [v.uri for v in variants] == ["480p/index.m3u8", "360p/index.m3u8"]
    audio_peak, audio_average = bandwidths(segments(once.out / "hls/audio/index.m3u8"))
    assert 100_000 < audio_peak < 200_000  # 128k AAC with its MPEG-TS overhead
    renditions = once.result.renditions  # type: ignore[attr-defined]
    assert [r.playlist for r in renditions] == ["hls/480p/index.m3u8", "hls/360p/index.m3u8"]
    for variant, rendition in zip(variants, renditions):
        assert variant.audio == "audio"
        codecs = variant.codecs.split(",")
        assert len(codecs) == 2 and codecs[0].startswith("avc1.") and codecs[1] == "mp4a.40.2"
        # BANDWIDTH: the rung's picture and the audio it plays with, both measured.
        peak, average = bandwidths(segments(once.out / "hls" / variant.uri))
        assert variant.bandwidth == peak + audio_peak == rendition.bitrate
        assert variant.average == average + audio_average
        assert variant.resolution == (rendition.width, rendition.height)


def test_the_layout_is_the_chunked_paths(once: Ladder) -> None:
    """Players see one layout: the EXT-X-MEDIA line is the chunk join's, to the character."""
    piece = ChunkOutput("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS=\"avc1.64001e\"\n"
                        "360p/index.m3u8\n",
                        {"360p": "#EXTM3U\n#EXTINF:4.0,\na.ts\n#EXT-X-ENDLIST\n"})
    sound = ChunkOutput("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\naudio/index.m3u8\n",
                        {"audio": "#EXTM3U\n#EXTINF:4.0,\nb.ts\n#EXT-X-ENDLIST\n"})
    joined = join_playlists([piece], sound).files["master.m3u8"].splitlines()
    ours = (once.out / "hls/master.m3u8").read_text().splitlines()
    assert [x for x in ours if x.startswith("#EXT-X-MEDIA")] == \
        [x for x in joined if x.startswith("#EXT-X-MEDIA")]
    assert ours[:3] == joined[:3]  # #EXTM3U, version, independent segments


def test_rungs_carry_pictures_and_the_audio_rendition_the_sound(once: Ladder) -> None:
    ffmpeg_path = find_ffmpeg()
    for name in ("480p", "360p"):
        playlist = once.out / "hls" / name / "index.m3u8"
        first = probe(segments(playlist)[0][1], ffmpeg=ffmpeg_path)
        assert first.has_video and not first.has_audio
        assert decode(playlist).frames == pytest.approx(SECONDS * FPS, abs=2)
    audio = once.out / "hls/audio/index.m3u8"
    first = probe(segments(audio)[0][1], ffmpeg=ffmpeg_path)
    assert (first.has_video, first.audio_codec, first.audio_channels) == (False, "aac", 2)
    # Cut on the rungs' 4 s grid.
    assert read_playlist(audio).durations == pytest.approx([4.0, 2.0], abs=0.05)
    assert decode(audio).seconds == pytest.approx(SECONDS, abs=0.1)


def av_facts(rung: Path, audio: Path) -> tuple[Fraction, Fraction, Fraction]:
    """(audio start - video start, audio end - video end, audio span - video span), seconds, on
    the segments' own timeline (packet timestamps, as a player reads them)."""
    video, sound = packets(rung, "v", copyts=True), packets(audio, "a", copyts=True)
    video_end = video.pts[-1] + video.durations[-1]
    sound_end = sound.pts[-1] + sound.durations[-1]
    return (sound.pts[0] - video.pts[0], sound_end - video_end,
            (sound_end - sound.pts[0]) - (video_end - video.pts[0]))


def test_audio_and_video_line_up_as_before(once: Ladder, muxed: Ladder) -> None:
    frame = Fraction(1, FPS)
    reference = muxed.out / "hls/480p/index.m3u8"
    assert "#EXT-X-MEDIA" not in (muxed.out / "hls/master.m3u8").read_text()
    before = av_facts(reference, reference)
    audio = once.out / "hls/audio/index.m3u8"
    for name in ("480p", "360p"):
        rung = once.out / "hls" / name / "index.m3u8"
        # The durations players read (the playlists') agree within a frame, and so do the ends.
        assert abs(read_playlist(audio).total - read_playlist(rung).total) <= 1 / FPS
        start, end, span = av_facts(rung, audio)
        assert abs(end) <= frame
        # The A/V offsets are those of the sound muxed into the rung, to a millisecond (the
        # sound spans a little more than the picture: AAC's priming before, padding after).
        for now, then in zip((start, end, span), before):
            assert abs(now - then) < Fraction(1, 1000), (float(now), float(then))


def test_an_empty_audio_track_leaves_no_audio_rendition(tmp_path: Path) -> None:
    """A declared audio track without a packet, on a two-rung source: the picture alone."""
    clip = tmp_path / "clip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=854x480:r=30:d=2", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000:duration=2", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", clip)
    source = tmp_path / "empty_audio.mkv"
    ffmpeg("-i", clip, "-map", "0", "-c", "copy", "-bsf:a", "noise=drop=1", source)
    result = transcode(source, tmp_path / "out", preset=PRESET)
    assert not result.has_audio and len(result.renditions) == 2
    master = tmp_path / "out/hls/master.m3u8"
    assert read_audio_media(master) == []
    assert all("mp4a" not in v.codecs and v.audio is None for v in read_master(master))
    assert not (tmp_path / "out/hls/audio").exists()


def test_a_sound_shorter_than_half_a_second_is_still_a_valid_rendition(tmp_path: Path) -> None:
    """0.3 s of sound next to 3 s of picture: FFmpeg writes the audio playlist with
    TARGETDURATION:0 (players reject it); the ladder gives it 1 and keeps the sound."""
    source = tmp_path / "blip.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=854x480:r=30:d=3", "-f", "lavfi", "-i",
           "sine=frequency=440:sample_rate=48000:duration=0.3", "-c:v", "libx264", "-preset",
           "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", source)
    result = transcode(source, tmp_path / "out", preset=PRESET, content=CONTENT_MOTION)
    assert result.has_audio and result.duration == pytest.approx(3.0, abs=0.05)
    audio = read_playlist(tmp_path / "out/hls/audio/index.m3u8")
    assert audio.ended and audio.target_duration == 1 and audio.total == pytest.approx(0.3, abs=0.1)
    assert decode(tmp_path / "out/hls/audio/index.m3u8").has_audio

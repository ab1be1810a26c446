"""Chunked transcoding, media side: a source cut at keyframes, every piece through the ladder, the
playlists joined, must be the single-process ladder again at every seam: the same frames (none
dropped or doubled, timestamps one frame apart across each seam), the same audio (continuous, as
many packets, in sync at start and end), and pictures as good at the seams as elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from chunk_support import audio_gaps, seam_facts, seam_ssim, transcode_chunked
from pipeline_support import make_clip

from coursecrafter_worker.pipeline.chunks import cut_times, join_playlists, ChunkOutput
from coursecrafter_worker.pipeline.probe import probe
from coursecrafter_worker.pipeline.transcode import transcode

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("chunks")
    # Keyframes every 25 frames (1 s) and 12 s: cut for 4 s pieces at 4 and 8 s.
    source = make_clip(work / "lecture.mp4", size="320x240", rate=25, duration=12,
                       out_args=("-g", "25", "-bf", "2"))
    whole = work / "whole"
    transcode(source, whole, content="motion")
    # Today's audio-only rendition of the same sound: what the chunked audio rendition is.
    sound = make_clip(work / "sound.m4a", duration=12, video=False)
    transcode(sound, work / "sound")
    chunked = transcode_chunked(source, work / "chunked", 4.0, content="motion")
    return source, whole, chunked


def test_the_source_is_cut_at_keyframes_into_pieces(runs):
    _, _, chunked = runs
    # At the keyframes of 4 and 8 s (on FFmpeg's timeline, which the B-frame delay moves).
    assert len(chunked.starts) == 3
    assert [round(b - a, 3) for a, b in zip(chunked.starts[1:], chunked.starts[2:])] == [4.0]
    master = (chunked.out / "hls" / "master.m3u8").read_text()
    # One audio rendition that every rung names; no discontinuity: one timeline.
    assert '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio"' in master and 'AUDIO="audio"' in master
    rung = (chunked.out / "hls" / "240p" / "index.m3u8").read_text()
    assert "DISCONTINUITY" not in rung
    assert [line for line in rung.splitlines() if line.endswith(".ts")][:1] == [
        "v0000_seg_00000.ts"]


def test_seams_drop_or_double_no_frame_and_keep_audio_continuous_and_in_sync(runs):
    _, whole, chunked = runs
    reference = seam_facts(whole / "hls" / "240p" / "index.m3u8")
    # Read back from an audio-only MPEG-TS rendition, the first PES's frames show one doubled
    # timestamp and a step of two frames (FFmpeg's parser, the same for today's audio-only
    # lectures): the chunked audio must show exactly that, nothing more.
    sound_packets, sound_gaps = audio_gaps(whole.parent / "sound" / "hls" / "audio" /
                                           "index.m3u8")
    joined = seam_facts(chunked.out / "hls" / "240p" / "index.m3u8",
                        chunked.out / "hls" / "audio" / "index.m3u8")
    assert joined.frames == reference.frames == 300
    assert joined.irregular_steps == 0
    assert joined.audio_packets == reference.audio_packets
    assert (joined.audio_packets, joined.audio_gaps) == (sound_packets, sound_gaps)
    # A/V offsets as the single-process ladder has them, to a millisecond.
    assert abs(joined.av_start - reference.av_start) < 0.001
    assert abs(joined.av_end - reference.av_end) < 0.001
    assert abs(chunked.joined.duration - 12.0) < 0.05


def test_pictures_at_the_seams_are_as_good_as_elsewhere(runs):
    source, _, chunked = runs
    near, far = seam_ssim(source, chunked.out / "hls" / "240p" / "index.m3u8", (320, 240),
                          seams=chunked.starts[1:])
    assert near >= far - 0.01, (near, far)


@pytest.fixture(scope="module")
def off_grid(tmp_path_factory):
    """A still lecture at 30 fps with a keyframe every 31 frames: the cuts (4.133 s, 8.267 s) fall
    between the still ladder's 10 fps frames, so each piece must be put on the source's grid."""
    work = tmp_path_factory.mktemp("off-grid")
    source = make_clip(work / "slides.mp4", size="320x240", rate=30, duration=12,
                       out_args=("-g", "31", "-keyint_min", "31", "-sc_threshold", "0",
                                 "-bf", "2"))
    whole = work / "whole"
    transcode(source, whole, content="still")
    chunked = transcode_chunked(source, work / "chunked", 4.0, content="still")
    return source, whole, chunked


def test_cuts_off_the_frame_grid_still_give_the_whole_ladders_frames_and_sync(off_grid):
    source, whole, chunked = off_grid
    # Where the source has its keyframes (frames 124 and 248), not where B-frames put them in
    # the pieces' files, and off the 10 fps grid.
    assert chunked.starts == pytest.approx([0.0, 124 / 30, 248 / 30], abs=1e-5)
    reference = seam_facts(whole / "hls" / "240p" / "index.m3u8")
    joined = seam_facts(chunked.out / "hls" / "240p" / "index.m3u8",
                        chunked.out / "hls" / "audio" / "index.m3u8")
    assert joined.frames == reference.frames == 120  # 12 s at 10 fps: none doubled or lost
    assert joined.irregular_steps == reference.irregular_steps == 0
    # The segments' own timestamps: the picture where the single-process ladder puts it
    # against the sound, at the start and at the end, to a millisecond.
    assert abs(joined.av_start - reference.av_start) < 0.001
    assert abs(joined.av_end - reference.av_end) < 0.001
    near, far = seam_ssim(source, chunked.out / "hls" / "240p" / "index.m3u8", (320, 240),
                          seams=chunked.starts[1:])
    assert near >= far - 0.01, (near, far)


def test_a_still_lectures_aac_is_copied_into_its_audio_rendition_not_encoded(off_grid):
    """As the whole still ladder copies it: the chunked path costs no AAC encode, and the sound
    is the source's own (64 kb/s here, not the 128 kb/s an encode would give)."""
    _, _, chunked = off_grid
    segments = sorted((chunked.out / "hls" / "audio").glob("*.ts"))
    assert probe(segments[0]).audio_codec == "aac"
    kbps = sum(p.stat().st_size for p in segments) * 8 / 12 / 1000
    assert 55 < kbps < 100, kbps  # 64 kb/s and MPEG-TS overhead; an encode would be ~128+


def test_short_sources_are_not_cut():
    assert cut_times(150.0, 120.0) == []  # one piece and a bit: transcoded whole
    assert cut_times(600.0, 0) == []  # 0: never
    assert cut_times(600.0, 120.0) == [120.0, 240.0, 360.0, 480.0]
    assert cut_times(500.0, 120.0) == [125.0, 250.0, 375.0]  # even pieces, about the target


def test_a_join_refuses_pieces_that_do_not_fit():
    master = ("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100,RESOLUTION=320x240\n240p/index.m3u8\n")
    playlist = "#EXTM3U\n#EXTINF:4.0,\nv0000_seg_00000.ts\n#EXT-X-ENDLIST\n"
    complete = ChunkOutput(master, {"240p": playlist})
    cut_off = ChunkOutput(master, {"240p": playlist.replace("#EXT-X-ENDLIST\n", "")})
    from coursecrafter_worker.transcoding import TranscodeError

    with pytest.raises(TranscodeError):
        join_playlists([complete, cut_off], None)
    joined = join_playlists([complete, complete], None)
    assert joined.duration == 8.0 and list(joined.files) == ["240p/index.m3u8", "master.m3u8"]


def test_pieces_start_where_the_source_has_keyframes(tmp_path: Path):
    # Keyframes every 2 s: a cut asked for at 3 s moves to 4 s.
    source = make_clip(tmp_path / "sparse.mp4", size="160x120", rate=25, duration=8,
                       out_args=("-g", "50", "-keyint_min", "50", "-sc_threshold", "0"))
    from coursecrafter_worker.pipeline.chunks import split
    from coursecrafter_worker.pipeline.probe import probe

    pieces = split(source, probe(source), [3.0], tmp_path / "pieces")
    assert [(p.tag, p.start) for p in pieces] == [("v0000", 0.0), ("v0001", 4.0),
                                                  ("audio", 0.0)]

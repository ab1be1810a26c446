"""A corpus of broken and unusual media, each through `transcode()` under a small timeout.

Every case must end with a clear outcome well within the time budget (never the budget itself):
either READY with outputs that match what the source really holds (EXTINF sums, decoding the
output back, segment counts, the chosen audio track's pitch), or a non-retryable `MediaError`
with a specific code. The sources are made by `Clips` (pipeline_support.py) from tiny lavfi
clips by byte surgery: truncation, header-only files, lying durations, emptied tracks,
rewritten H.264 SPS, Y4M headers.

Cases the product does not handle as it should are marked `xfail(strict=True)` with the reason:
they start passing (and so fail as XPASS) once the product is fixed.
"""

from __future__ import annotations

import array
import itertools
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import pytest
from pipeline_support import (
    FFMPEG,
    Clips,
    decode,
    jpeg_size,
    mp4_boxes,
    read_master,
    read_playlist,
)

from coursecrafter_worker.pipeline import MediaError, TranscodeResult, probe, transcode
from coursecrafter_worker.pipeline.ladder import still_rate
from coursecrafter_worker.pipeline.process import MEMORY_LIMIT_ENV

PRESET = "ultrafast"
TIMEOUT = 30.0  # the budget of each transcode() call: no case may need it
BOUND = 15.0  # what a case may take at most (the slowest, an 8208x8208 probe, takes ~2 s)
TIGHT_MEMORY = "1G"  # RLIMIT_AS for the huge-dimension cases: they must not need gigabytes

READY = "ready"


@dataclass(frozen=True)
class Case:
    make: Callable[[Clips], Path]
    expect: tuple[str, ...]  # READY, or the acceptable MediaError codes (the first is ideal)
    tight_memory: bool = False


def _cut(clip: str, where: str) -> Callable[[Clips], Path]:
    return lambda clips: clips.truncated_at(clip, where)


CASES: dict[str, Case] = {
    # Truncated at several offsets. Index (moov) last: any cut loses the index.
    **{f"moov_at_end_cut_{where}": Case(_cut("moov_at_end", where), ("truncated",))
       for where in Clips.CUTS},
    # Index first: a cut inside or right after the index loses everything, a late cut keeps
    # the part that decodes.
    "faststart_cut_after_ftyp": Case(_cut("faststart", "after_ftyp"), ("truncated",)),
    "faststart_cut_next_box_header": Case(_cut("faststart", "next_box_header"), ("truncated",)),
    "faststart_cut_600_bytes": Case(_cut("faststart", "600_bytes"), ("truncated",)),
    "faststart_cut_10pct": Case(_cut("faststart", "10pct"), ("truncated",)),
    "faststart_cut_90pct": Case(_cut("faststart", "90pct"), (READY,)),
    # Header only.
    "header_only_mp4": Case(lambda c: c.header_only_mp4, ("truncated",)),
    "header_only_mkv": Case(lambda c: c.header_only_mkv, ("truncated",)),
    "header_only_ts": Case(lambda c: c.header_only_ts, ("decode_failed", "truncated")),
    # Wrong extension: the content decides, not the name.
    "webm_named_mp4": Case(lambda c: c.webm_as_mp4, (READY,)),
    "mp4_named_mov": Case(lambda c: c.mp4_as_mov, (READY,)),
    "mp4_named_avi": Case(lambda c: c.mp4_as_avi, (READY,)),
    "mpegts_named_mp4": Case(lambda c: c.ts_as_mp4, (READY,)),
    # Zero-length streams. Decision: an empty audio track next to real video is READY (video,
    # without that track); an empty video track is a clear error (the upload is a "video" with
    # no picture: saying it is damaged beats silently publishing an audio-only lecture).
    "mp4_empty_audio_track": Case(lambda c: c.mp4_empty_audio_track, (READY,)),
    "mkv_empty_audio_track": Case(lambda c: c.mkv_empty_audio_track, (READY,)),
    "mp4_empty_video_track": Case(lambda c: c.mp4_empty_video_track, ("decode_failed",)),
    "mkv_empty_video_track": Case(lambda c: c.mkv_empty_video_track, ("decode_failed",)),
    # Durations that lie (the media is 2 s, or 3 s for the MP4).
    "mkv_claims_1h": Case(lambda c: c.mkv_claiming(3600), (READY,)),
    "mkv_claims_200h": Case(lambda c: c.mkv_claiming(200 * 3600), (READY,)),
    "mkv_claims_half_a_second": Case(lambda c: c.mkv_claiming(0.5), (READY,)),
    "mp4_claims_30min": Case(lambda c: c.mp4_claiming_30min, (READY,)),
    # Index at the end, explicitly.
    "moov_at_end": Case(lambda c: c.moov_at_end, (READY,)),
    # Many audio tracks.
    "mkv_8_audio_tracks": Case(lambda c: c.many_audio("mkv"), (READY,)),
    "mp4_8_audio_tracks": Case(lambda c: c.many_audio("mp4"), (READY,)),
    # Huge declared dimensions, a few KB of real data behind them.
    "h264_sps_8208x8208": Case(lambda c: c.h264_declaring(8208, 8208), ("too_large",),
                               tight_memory=True),
    # FFmpeg itself rejects an SPS this large (over its own image size check), so the stream has
    # no size at all and the probe can only say it cannot use it.
    "h264_sps_16384x16384": Case(lambda c: c.h264_declaring(16384, 16384),
                                 ("too_large", "unsupported_codec", "not_media"), tight_memory=True),
    "y4m_8208x8208": Case(lambda c: c.y4m_declaring(8208, 8208), ("too_large",), tight_memory=True),
    "y4m_16384x16384": Case(lambda c: c.y4m_declaring(16384, 16384), ("too_large", "not_media"),
                            tight_memory=True),
    # Each side at the limit, 67 megapixels in all (and 5 KB where one frame needs 100 MB).
    "y4m_8192x8192_partial_frame": Case(lambda c: c.y4m_declaring(8192, 8192), ("too_large",),
                                        tight_memory=True),
}

# Cases still handled wrongly or imprecisely (name -> xfail mark); fixed ones leave the lists.
KNOWN_WRONG: dict[str, pytest.MarkDecorator] = {}
KNOWN_IMPRECISE: dict[str, pytest.MarkDecorator] = {}


@dataclass
class Outcome:
    source: Path
    out: Path
    elapsed: float
    events: list[tuple[str, int]] = field(default_factory=list)
    result: TranscodeResult | None = None
    error: Exception | None = None

    @property
    def ready(self) -> TranscodeResult:
        if self.error is not None:
            raise AssertionError(f"expected READY, got {self.error!r}") from self.error
        assert self.result is not None
        return self.result


@pytest.fixture(scope="session")
def outcome_of(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Outcome]:
    """Each case transcoded once per session (several tests look at the same outcome)."""
    done: dict[str, Outcome] = {}
    root = tmp_path_factory.mktemp("corpus")

    def get(name: str) -> Outcome:
        if name not in done:
            case = CASES[name]
            source = case.make(clips)
            events: list[tuple[str, int]] = []
            outcome = Outcome(source, root / name, 0.0, events)
            saved = os.environ.get(MEMORY_LIMIT_ENV)
            if case.tight_memory:
                os.environ[MEMORY_LIMIT_ENV] = TIGHT_MEMORY
            started = time.monotonic()
            try:
                outcome.result = transcode(source, outcome.out, timeout=TIMEOUT, preset=PRESET,
                                           on_progress=lambda p, x: events.append((p, x)))
            except Exception as exc:  # noqa: BLE001 - judged by the tests
                outcome.error = exc
            finally:
                outcome.elapsed = time.monotonic() - started
                if case.tight_memory:
                    if saved is None:
                        os.environ.pop(MEMORY_LIMIT_ENV, None)
                    else:
                        os.environ[MEMORY_LIMIT_ENV] = saved
            done[name] = outcome
        return done[name]

    return get


# --------------------------------------------------------------------------------------------
# Reading outputs


def segment_streams(segment: Path) -> list[str]:
    """The `Stream #0:N ...` lines FFmpeg prints for one output segment."""
    proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", str(segment)],
                          check=False, capture_output=True, text=True, timeout=30)
    return [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("Stream #0:")]


def first_segment(out: Path, result: TranscodeResult) -> Path:
    playlist = out / result.renditions[0].playlist
    return playlist.parent / read_playlist(playlist).segments[0]


def pitch(playlist: Path) -> float:
    """The frequency (Hz) of a pure tone in the audio of `playlist`, from its zero crossings."""
    proc = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(playlist),
         "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-"],
        check=False, capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr[-1000:]
    samples = array.array("h", proc.stdout)
    samples = samples[4800:-4800]  # skip the encoder's ramp-up and tail
    assert len(samples) > 24000, len(samples)
    rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)
    return rising / (len(samples) / 48000)


def check_ready(outcome: Outcome) -> TranscodeResult:
    """READY and self-consistent: playlists complete, duration = EXTINF sum = what decodes back,
    progress 0..100 strictly increasing, poster a JPEG when there is video."""
    result = outcome.ready
    out = outcome.out
    variants = read_master(out / result.master_playlist)
    assert [f"hls/{v.uri}" for v in variants] == [r.playlist for r in result.renditions]
    totals = []
    for rendition in result.renditions:
        playlist = read_playlist(out / rendition.playlist)
        assert playlist.ended and playlist.segments
        assert playlist.target_duration >= 1
        for segment in playlist.segments:
            assert (out / rendition.playlist).parent.joinpath(segment).stat().st_size > 0
        totals.append(playlist.total)
    assert result.duration == pytest.approx(totals[0], abs=0.05)
    assert totals == pytest.approx([totals[0]] * len(totals), abs=0.05)
    decoded = decode(out / result.renditions[0].playlist)
    assert decoded.seconds == pytest.approx(result.duration, abs=0.3)
    assert decoded.has_video == result.has_video
    transcoding = [pct for phase, pct in outcome.events if phase == "transcoding"]
    assert transcoding[0] == 0 and transcoding[-1] == 100, outcome.events
    assert transcoding == sorted(set(transcoding))
    if result.has_video:
        assert result.poster == "poster.jpg"
        rendition = result.renditions[0]
        assert jpeg_size(out / "poster.jpg") == (rendition.width, rendition.height)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    return result


# --------------------------------------------------------------------------------------------
# Every case: a clear outcome, in bounded time


def _params(names: list[str], marks: dict[str, pytest.MarkDecorator]) -> list[object]:
    return [pytest.param(name, marks=marks[name]) if name in marks else name for name in names]


@pytest.mark.parametrize("name", _params(list(CASES), KNOWN_WRONG))
def test_ends_cleanly_in_bounded_time(outcome_of: Callable[[str], Outcome], name: str) -> None:
    outcome = outcome_of(name)
    assert outcome.elapsed < BOUND, f"{name} took {outcome.elapsed:.1f} s"
    assert outcome.events[:1] == [("probing", 0)]
    if outcome.error is None:
        check_ready(outcome)
        return
    error = outcome.error
    assert isinstance(error, MediaError), f"{name}: {error!r}\n{getattr(error, 'detail', '')[-1500:]}"
    assert not error.retryable
    assert error.code != "timeout", error.detail[-1500:]
    assert error.message and error.message[0].isupper()
    # Nothing published, no temporary directory left behind.
    assert not outcome.out.exists() or not list(outcome.out.iterdir())


@pytest.mark.parametrize("name", _params(list(CASES), {**KNOWN_WRONG, **KNOWN_IMPRECISE}))
def test_outcome_is_the_expected_one(outcome_of: Callable[[str], Outcome], name: str) -> None:
    outcome = outcome_of(name)
    expected = CASES[name].expect
    if expected == (READY,):
        outcome.ready  # noqa: B018 - raises with the error when it is not
        return
    assert outcome.error is not None, f"{name}: READY, expected {expected}"
    assert isinstance(outcome.error, MediaError), repr(outcome.error)
    assert outcome.error.code in expected, (outcome.error.code, outcome.error.detail[-1500:])


# --------------------------------------------------------------------------------------------
# Truncation


def test_faststart_cut_late_keeps_what_decodes(outcome_of: Callable[[str], Outcome]) -> None:
    """90% of a 4 s faststart MP4: READY, and as long as what FFmpeg decodes from the cut file."""
    outcome = outcome_of("faststart_cut_90pct")
    result = check_ready(outcome)
    assert 3.0 < result.duration < 4.0
    assert result.has_video and result.has_audio
    what_decodes = decode(outcome.source)
    assert result.duration == pytest.approx(what_decodes.seconds, abs=0.3)
    segments = read_playlist(outcome.out / result.renditions[0].playlist).segments
    assert len(segments) == 1  # under 4 s: one segment


def test_truncation_points_are_where_they_claim(clips: Clips) -> None:
    """The cut files are what their names say (guards the corpus itself)."""
    for clip in ("moov_at_end", "faststart"):
        full = getattr(clips, clip).read_bytes()
        boxes = mp4_boxes(full)
        sizes = {where: clips.truncated_at(clip, where).stat().st_size for where in Clips.CUTS}
        assert sizes["after_ftyp"] == boxes[0][2] and boxes[0][0] == "ftyp"
        assert sizes["600_bytes"] == 600
        assert sizes["10pct"] == len(full) // 10
        assert sizes["90pct"] == len(full) * 9 // 10
        moov = next((offset, size) for kind, offset, size in boxes if kind == "moov")
        if clip == "faststart":  # 600 bytes and 10% fall in and right after the index
            assert sizes["600_bytes"] < moov[0] + moov[1] < sizes["10pct"]
        else:  # every cut loses the index
            assert max(sizes.values()) < moov[0]


# --------------------------------------------------------------------------------------------
# Wrong extensions, index at the end


def _rate(result: TranscodeResult) -> float:
    """The rungs' frame rate for these 30 fps sources: the still ladder's (10) when it is that."""
    return float(Fraction(still_rate("30"))) if result.content == "still" else 30.0


@pytest.mark.parametrize("name,seconds", [("webm_named_mp4", 2.0), ("mp4_named_mov", 3.0),
                                          ("mp4_named_avi", 3.0), ("mpegts_named_mp4", 2.0)])
def test_wrong_extension_transcodes(outcome_of: Callable[[str], Outcome], name: str,
                                    seconds: float) -> None:
    outcome = outcome_of(name)
    result = check_ready(outcome)
    assert (result.width, result.height, result.has_video, result.has_audio) == (320, 240, True, True)
    assert result.duration == pytest.approx(seconds, abs=0.1)
    decoded = decode(outcome.out / result.renditions[0].playlist)
    assert decoded.has_audio
    # A testsrc2 clip is mostly still: the lecture-aware ladder may lower its rate (ladder.py).
    assert decoded.frames == pytest.approx(seconds * _rate(result), abs=3)


def test_moov_at_the_end_transcodes(outcome_of: Callable[[str], Outcome]) -> None:
    outcome = outcome_of("moov_at_end")
    names = [kind for kind, _, _ in mp4_boxes(outcome.source.read_bytes())]
    assert names.index("mdat") < names.index("moov")
    result = check_ready(outcome)
    assert (result.width, result.height, result.has_audio) == (320, 240, True)
    assert result.duration == pytest.approx(3.0, abs=0.05)
    decoded = decode(outcome.out / result.renditions[0].playlist)
    assert decoded.has_audio and decoded.frames == pytest.approx(90, abs=2)


# --------------------------------------------------------------------------------------------
# Zero-length streams


@pytest.mark.parametrize("name", ["mp4_empty_audio_track", "mkv_empty_audio_track"])
def test_empty_audio_track_keeps_the_video(outcome_of: Callable[[str], Outcome], name: str) -> None:
    outcome = outcome_of(name)
    # The source does declare the audio track (the probe sees it).
    assert probe(outcome.source).audio_streams == 1
    result = check_ready(outcome)
    assert result.has_video and result.duration == pytest.approx(3.0, abs=0.05)
    assert decode(outcome.out / result.renditions[0].playlist).frames == pytest.approx(90, abs=2)


@pytest.mark.parametrize("name", ["mp4_empty_audio_track", "mkv_empty_audio_track"])
def test_empty_audio_track_is_left_out(outcome_of: Callable[[str], Outcome], name: str) -> None:
    outcome = outcome_of(name)
    result = outcome.ready
    assert not result.has_audio
    assert all("mp4a" not in v.codecs for v in read_master(outcome.out / result.master_playlist))
    streams = segment_streams(first_segment(outcome.out, result))
    assert not [s for s in streams if "Audio:" in s], streams


# --------------------------------------------------------------------------------------------
# Durations that lie


@pytest.mark.parametrize("name,real", [
    ("mkv_claims_1h", 2.0),
    ("mkv_claims_200h", 2.0),
    ("mkv_claims_half_a_second", 2.0),
    ("mp4_claims_30min", 3.0),
])
def test_lying_duration_gives_the_real_one(outcome_of: Callable[[str], Outcome], name: str,
                                           real: float) -> None:
    outcome = outcome_of(name)
    result = check_ready(outcome)  # includes: progress reaches 100, EXTINF sum = decoded length
    assert result.duration == pytest.approx(real, abs=0.05)
    playlist = read_playlist(outcome.out / result.renditions[0].playlist)
    assert playlist.total == pytest.approx(real, abs=0.05)
    assert len(playlist.segments) == 1 and playlist.target_duration <= 4
    decoded = decode(outcome.out / result.renditions[0].playlist)
    assert decoded.frames == pytest.approx(real * _rate(result), abs=2)


def test_lying_duration_sources_really_lie(clips: Clips) -> None:
    """What the headers claim (the banner), against the 2 s / 3 s the media holds."""
    def claimed(path: Path) -> float:
        proc = subprocess.run([FFMPEG, "-hide_banner", "-nostdin", "-i", str(path)],
                              check=False, capture_output=True, text=True, timeout=30)
        match = re.search(r"Duration: (\d+):(\d+):([\d.]+)", proc.stderr)
        assert match, proc.stderr[-1000:]
        h, m, s = match.groups()
        return int(h) * 3600 + int(m) * 60 + float(s)

    assert claimed(clips.mkv_claiming(3600)) == pytest.approx(3600)
    assert claimed(clips.mkv_claiming(200 * 3600)) == pytest.approx(200 * 3600)
    assert claimed(clips.mkv_claiming(0.5)) == pytest.approx(0.5)
    # The probe re-measures an absurd (> 24 h) claim from the packets.
    info = probe(clips.mkv_claiming(200 * 3600))
    assert info.duration_source == "demux" and info.duration == pytest.approx(2.0, abs=0.1)
    # FFmpeg's MP4 demuxer takes durations from the sample tables, not mvhd/mdhd: the lie in
    # the header boxes is there, but never reaches the pipeline.
    data = clips.mp4_claiming_30min.read_bytes()
    mvhd = data.find(b"mvhd") - 4
    timescale = int.from_bytes(data[mvhd + 20 : mvhd + 24], "big")
    duration = int.from_bytes(data[mvhd + 24 : mvhd + 28], "big")
    assert duration / timescale == pytest.approx(1800, rel=0.01)


# --------------------------------------------------------------------------------------------
# Many audio tracks


@pytest.mark.parametrize("name,ext", [("mkv_8_audio_tracks", "mkv"), ("mp4_8_audio_tracks", "mp4")])
def test_many_audio_tracks_keep_only_the_default(outcome_of: Callable[[str], Outcome], clips: Clips,
                                                 name: str, ext: str) -> None:
    outcome = outcome_of(name)
    info = probe(outcome.source)
    assert info.audio_streams == 8
    assert info.audio_index == 1 + Clips.MANY_AUDIO_DEFAULT  # stream 0 is the video
    result = check_ready(outcome)
    assert result.has_audio and result.duration == pytest.approx(2.0, abs=0.05)
    assert len(result.renditions) == 1
    streams = segment_streams(first_segment(outcome.out, result))
    assert len([s for s in streams if "Audio:" in s]) == 1, streams
    assert len([s for s in streams if "Video:" in s]) == 1, streams
    expected = Clips.MANY_AUDIO_FREQUENCIES[Clips.MANY_AUDIO_DEFAULT]
    assert pitch(outcome.out / result.renditions[0].playlist) == pytest.approx(expected, rel=0.03)


# --------------------------------------------------------------------------------------------
# Huge declared dimensions


@pytest.mark.parametrize("name", ["h264_sps_8208x8208", "y4m_8208x8208"])
def test_huge_declared_size_is_too_large_quickly(outcome_of: Callable[[str], Outcome],
                                                 name: str) -> None:
    """Refused by the probe, before any transcode, under a 1 GiB address-space limit."""
    outcome = outcome_of(name)
    assert isinstance(outcome.error, MediaError), repr(outcome.error)
    assert outcome.error.code == "too_large"
    assert "8208x8208" in outcome.error.message and "8192" in outcome.error.message
    assert outcome.events == [("probing", 0)]
    assert outcome.elapsed < 10
    assert outcome.source.stat().st_size < 300_000  # one 8208x8208 frame alone is 100 MB


def test_huge_pixel_count_within_the_side_limit_is_refused(clips: Clips, tmp_path: Path) -> None:
    """Each side within the limit, 67 megapixels in all: refused at the probe, not decoded
    into concealment garbage (which would end in another error or a timeout, not `too_large`
    after the probing event alone). The timeout is generous: a busy machine must not turn a
    slow probe into a failure."""
    source = clips.h264_declaring(8192, 8192)
    events: list[tuple[str, int]] = []
    with pytest.raises(MediaError) as exc:
        transcode(source, tmp_path / "out", timeout=60, preset=PRESET,
                  on_progress=lambda p, x: events.append((p, x)))
    assert exc.value.code == "too_large", exc.value.code
    assert "megapixels" in exc.value.message
    assert events == [("probing", 0)]

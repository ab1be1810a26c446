"""`transcode()`: one FFmpeg process, decode once, encode every rung, HLS out.

The command (built with ffmpeg-python, see `build_command`) for a 1280x720 source with audio:

    ffmpeg -hide_banner -nostdin -y -loglevel warning -progress pipe:1 -nostats
      -format_whitelist ... -protocol_whitelist file -i file:/abs/source
      -filter_complex "[0:0]split=3[s0][s1][s2];
                       [s0]fps=30[..];[..]scale=1280:720[..];[..]setsar=1[..];[..]format=yuv420p[v720];
                       [s1]fps=30, scale=854:480, setsar=1, format=yuv420p [v480]  (same shape)
                       [s2]select=(frame 0 and first frame at T),scale=1280:720,setsar=1[poster]"
      -map [v720] -map [v480] -map 0:1
      -c:v libx264 -preset veryfast -crf 23 -profile:v high -sc_threshold 0
      -force_key_frames expr:gte(t,n_forced*4) -fps_mode cfr
      -maxrate:v:0 2800k -bufsize:v:0 5600k -g:v:0 120 -keyint_min:v:0 120   (per rung)
      -c:a aac -ac 2 -b:a:0 128k
      -f hls -hls_time 4 -hls_playlist_type vod -hls_flags independent_segments
      -hls_segment_type mpegts -hls_segment_filename hls/%v/seg_%05d.ts
      -master_pl_name master.m3u8
      -var_stream_map "a:0,agroup:audio,name:audio v:0,agroup:audio,name:720p v:1,agroup:audio,name:480p"
      -map_metadata -1 -map_chapters -1 hls/%v/index.m3u8
      -map [poster] -f image2 -fps_mode passthrough -update 1 -q:v 3 poster.jpg

That is the "motion" ladder (today's settings). Before planning, `transcode()` samples the
source (`motion.analyze`) and a lecture of still slides gets the "still" ladder instead
(ladder.py, "Lecture-aware encoding"): one `fps=10` (for 30 fps) before the split, the sub-720
rungs scaled from the 720p picture, per-rung `-preset:v:N` / `-x264-params:v:N` /
`-threads:v:N`, and `-c:a copy` when the source's audio is browser-ready AAC.

Choices:
- Keyframes: forced at every multiple of the segment duration by time (`-force_key_frames
  expr:...`), plus `-g`/`-keyint_min` = one segment of frames and `-sc_threshold 0` so x264 adds
  no scene-cut keyframes of its own: every rung cuts its segments at the same instants, so the
  rung playlists have the same number of segments with the same durations.
- Rate control: capped CRF (see ladder.py); BANDWIDTH in the master playlist is what FFmpeg
  measured and wrote, and that is what the returned renditions carry.
- Constant frame rate per rung by an `fps` filter in the graph (variable-frame-rate phone video
  included); `-fps_mode cfr` then keeps the muxer from dropping/duplicating anything else.
- A video shorter than 1 s (a 1-frame "video", a still image in a video container) is held on
  its last frame up to 1 s (`tpad`), so it becomes a valid 1 s stream rather than a failure.
- Interlaced sources get `bwdif` (one frame per frame) before the split.
- Audio: the source's default (else first) audio track, AAC stereo. Encoded (a motion ladder,
  or audio that is not browser-ready AAC) for more than one rung: encoded ONCE into its own
  rendition `hls/audio/` (`separate_audio`), declared by an EXT-X-MEDIA of group "audio" that
  every rung names, the layout of the chunked path (pipeline/chunks.py); FFmpeg's master is
  replaced by one written here (playlists.py: FFmpeg names the group "group_audio" and lists
  the audio as a variant of its own). Saved: three of four AAC encodes and the audio muxing of
  three rungs, ~1.5 CPU s on a 25 s 1080p VP9/Opus lecture (docs/benchmarks.md). A still ladder
  copies browser-ready AAC into every rung instead (`ladder.audio_copyable`: no encoder at all),
  and a single rung (or a source under 1 s) keeps its audio muxed in: those keep their shape.
- Poster: written by the same process, from one more branch of the split: the first frame at or
  after 10% of the probed duration (the first frame for clips under 1 s, or when the video ends
  before that point), at the top rung's size, JPEG. Cost: a `select` on every frame and at most
  two JPEG encodes. Only if that file is somehow missing, one cheap extra FFmpeg call takes the
  first frame (and if even that fails the result has `poster=None` rather than failing a
  playable video).
- Metadata (GPS position of phone videos, encoder tags) is not copied to the outputs.

Output is built in a temporary directory inside `out_dir`, verified (master and every rendition
playlist, the audio one too, exist and end with #EXT-X-ENDLIST, every listed segment exists and
is non-empty), and only then moved over `out_dir/hls` and `out_dir/poster.jpg`: a re-run
replaces a previous run's output cleanly, and a failed run leaves the previous output untouched.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import ffmpeg as ffmpeg_python

from coursecrafter_worker.messages import Rendition

from .errors import TRUNCATED_MESSAGE, MediaError, TranscodeError
from .ladder import CONTENT_MOTION, CONTENT_STILL, Rung, content_class, plan_ladder
from .playlists import (
    AUDIO_GROUP,
    AUDIO_RUNG,
    Audio,
    Variant,
    bandwidths,
    master_playlist,
    stream_inf,
)
from .motion import ANALYSIS_TIMEOUT, analyze
from .piece_grid import GridPlan, PieceWindow, grid_plan
from coursecrafter_worker.storage.keys import MASTER_PLAYLIST, POSTER
from coursecrafter_worker.transcoding import TranscodeResult

from .probe import MediaInfo, classify_failure, input_options, input_url, probe
from .process import FFmpegRun, find_ffmpeg, run_ffmpeg

SEGMENT_SECONDS = 4
MIN_VIDEO_SECONDS = 1.0
CRF = 23
PROBE_TIMEOUT = 60.0
# Without an explicit timeout: generous against the measured ~1-2x realtime of a full 1080p ladder
# at `veryfast` on 2 cores, so only a source that makes FFmpeg spin hits it.
DEFAULT_TIMEOUT_BASE = 600.0
DEFAULT_TIMEOUT_PER_SECOND = 10.0

_TMP_PREFIX = ".transcode-"


def default_timeout(duration: float) -> float:
    return DEFAULT_TIMEOUT_BASE + DEFAULT_TIMEOUT_PER_SECOND * max(duration, 0.0)


def _kbps(bits: int) -> str:
    return f"{bits // 1000}k"


def poster_time(info: MediaInfo) -> float:
    if info.duration < 1.0:
        return 0.0
    return round(info.start_time + info.duration * 0.10, 3)


X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                "slower", "veryslow", "placebo")


def faster_preset(a: str, b: str | None) -> str:
    """The faster of two x264 presets (an unknown name counts as slowest; None is ignored)."""
    if b is None:
        return a
    rank = {name: i for i, name in enumerate(X264_PRESETS)}
    return a if rank.get(a, len(rank)) <= rank.get(b, len(rank)) else b


def _shared_still_rate(rungs: list[Rung]) -> str | None:
    """The one output rate of an all-still ladder whose rungs share it, else None."""
    rates = {Fraction(r.fps) for r in rungs if r.fps}
    if rungs and all(r.content == CONTENT_STILL for r in rungs) and len(rates) == 1:
        return rungs[0].fps
    return None


def separate_audio(info: MediaInfo, rungs: list[Rung]) -> bool:
    """Whether the ladder's audio is its own rendition (`hls/audio/`, encoded once) rather than
    muxed into every rung: audio to encode (not copied) and more than one video rung. Not for a
    source under MIN_VIDEO_SECONDS (its picture is padded to 1 s): its sound stays with it."""
    video_rungs = [r for r in rungs if not r.is_audio_only]
    return (info.has_audio and info.audio_index is not None and len(video_rungs) > 1
            and not all(r.audio_copy for r in video_rungs)
            and info.duration >= MIN_VIDEO_SECONDS)


def build_command(
    source: Path,
    info: MediaInfo,
    rungs: list[Rung],
    *,
    ffmpeg: str = "ffmpeg",
    preset: str = "veryfast",
    poster: bool = True,
    progress: bool = True,
    ts_offset: float = 0.0,
    grid: GridPlan | None = None,
) -> list[str]:
    """The one FFmpeg command for `rungs`; output paths are relative: run it in the output dir.

    `ts_offset` (seconds) shifts the HLS output's timestamps: a chunk of a longer source keeps
    its place on the source's timeline, so joined chunks need no discontinuity (pipeline/chunks.py).
    `grid`: a chunk's pictures go on the source's frame grid and keep only their share of it
    (pipeline/piece_grid.py); its `origin` is added to `ts_offset`."""
    inp = ffmpeg_python.input(input_url(source), **input_options())
    streams: list = []  # type: ignore[type-arg]
    out: dict[str, object] = {}
    var_map: list[str] = []
    video_rungs = [r for r in rungs if not r.is_audio_only]
    audio = inp[str(info.audio_index)] if info.has_audio and info.audio_index is not None else None
    poster_stream = None
    # The source's AAC as it is in every rung (still ladders, `ladder.audio_copyable`): no
    # decode, no encoder per rung.
    copy_audio = audio is not None and bool(video_rungs) and all(r.audio_copy for r in video_rungs)
    # Audio to encode for several rungs: encoded once, into its own rendition (`hls/audio/`)
    # that every rung names (`separate_audio`), as the chunked path publishes it.
    one_audio = separate_audio(info, rungs)

    if video_rungs:
        assert info.video_index is not None
        video = inp[str(info.video_index)]
        if info.interlaced:
            video = video.filter("bwdif", mode="send_frame", deint="interlaced")
        if info.duration < MIN_VIDEO_SECONDS:
            # A 1-frame (or sub-second) video: hold the last frame so the rungs last 1 s. A
            # single 0.04 s segment makes FFmpeg write TARGETDURATION:0 and leave the variant
            # out of the master playlist ("Bandwidth info not available").
            video = video.filter(
                "tpad", stop_mode="clone", stop_duration=f"{MIN_VIDEO_SECONDS - info.duration:.3f}"
            )
        if grid is not None:
            if grid.shift:
                video = video.filter("setpts", f"PTS+{grid.shift:.9f}/TB")
            if grid.pad:
                # The last picture held past the piece's end: the fps filter then fills every
                # slot before the next piece's first (trimmed below), whatever its rounding.
                video = video.filter("tpad", stop_mode="clone", stop_duration=f"{grid.pad:.6f}")
        rate_once = _shared_still_rate(video_rungs)
        poster_source = None
        if rate_once is not None:
            if poster:
                # The poster picks its frame from the source's frames, not the decimated ones
                # (fps=10 turns 30 fps frames 1-3 into its first frame, not frame 0).
                pre = video.filter_multi_output("split", 2)
                video, poster_source = pre.stream(0), pre.stream(1)
            # Still content, one rate for all: drop frames once, before the split.
            video = video.filter("fps", fps=rate_once)
        names = {r.name for r in video_rungs}
        roots = [r for r in video_rungs if r.scale_from not in names]
        branches = len(roots) + (1 if poster and poster_source is None else 0)
        split = video.filter_multi_output("split", branches) if branches > 1 else None
        pictures: dict[str, object] = {}

        def scaled(rung: Rung, source: object) -> None:
            if rate_once is None and rung.scale_from is None:
                source = source.filter("fps", fps=rung.fps)  # type: ignore[attr-defined]
            elif rung.scale_from is not None and Fraction(rung.fps) != Fraction(
                    next(r for r in video_rungs if r.name == rung.scale_from).fps):
                source = source.filter("fps", fps=rung.fps)  # type: ignore[attr-defined]
            picture = source.filter("scale", rung.width, rung.height)  # type: ignore[attr-defined]
            children = [r for r in video_rungs if r.scale_from == rung.name]
            if children:
                # Cascade: the lower rungs scale this rung's picture, not the full-size source.
                fan = picture.filter_multi_output("split", len(children) + 1)
                picture = fan.stream(0)
                for j, child in enumerate(children):
                    scaled(child, fan.stream(j + 1))
            pictures[rung.name] = picture

        for k, rung in enumerate(roots):
            scaled(rung, split.stream(k) if split is not None else video)
        per_rung_presets = any(r.preset for r in video_rungs)
        for i, rung in enumerate(video_rungs):
            v = pictures[rung.name]
            if grid is not None and rung.fps:
                begin, end = grid.trim(Fraction(rung.fps))
                bounds = {k: f"{t:.6f}" for k, t in (("start", begin), ("end", end))
                          if t is not None}
                if bounds:
                    v = v.filter("trim", **bounds)  # type: ignore[attr-defined]
            v = v.filter("setsar", 1).filter("format", "yuv420p")  # type: ignore[attr-defined]
            streams.append(v)
            gop = max(1, round(rung.fps_value * SEGMENT_SECONDS))
            out[f"maxrate:v:{i}"] = _kbps(rung.video_bitrate)
            out[f"bufsize:v:{i}"] = _kbps(rung.video_bitrate * 2)
            out[f"g:v:{i}"] = gop
            out[f"keyint_min:v:{i}"] = gop
            if per_rung_presets:
                out[f"preset:v:{i}"] = faster_preset(preset, rung.preset)
            if rung.x264_params:
                out[f"x264-params:v:{i}"] = rung.x264_params
            if rung.threads:
                out[f"threads:v:{i}"] = rung.threads
            if one_audio:
                var_map.append(f"v:{i},agroup:{AUDIO_GROUP},name:{rung.name}")
            elif audio is not None:
                streams.append(audio)
                if not copy_audio:
                    out[f"b:a:{i}"] = _kbps(rung.audio_bitrate)
                var_map.append(f"v:{i},a:{i},name:{rung.name}")
            else:
                var_map.append(f"v:{i},name:{rung.name}")
        if one_audio:
            streams.append(audio)
            out["b:a:0"] = _kbps(max(r.audio_bitrate for r in video_rungs))
            var_map.insert(0, f"a:0,agroup:{AUDIO_GROUP},name:{AUDIO_RUNG}")
        if poster:
            top = video_rungs[0]
            if poster_source is not None:
                branch = poster_source
            else:
                branch = split.stream(len(roots)) if split is not None else video
            # Frame 0 and the first frame at or after T; the image2 muxer (-update 1) keeps
            # the last one written. So the poster is the frame at T, or the first frame when
            # the video ends before T (a duration that lied), and this output never ends up
            # empty (an output that gets no frame is an FFmpeg error).
            when = poster_time(info)
            poster_stream = (
                branch.filter("select", f"gte(eq(n,0)+gte(t,{when})*lt(selected_n,2),1)")
                .filter("scale", top.width, top.height, out_range="full")
                .filter("setsar", 1)
                .filter("format", "yuv420p")
            )
        out.update({
            "c:v": "libx264",
            **({} if per_rung_presets else {"preset": preset}),
            "crf": CRF,
            "profile:v": "high",
            "sc_threshold": 0,
            "force_key_frames": f"expr:gte(t,n_forced*{SEGMENT_SECONDS})",
            # A chunk's frames are on the source's grid already (fps filter, trim): FFmpeg must
            # keep their times, where "cfr" would move the first one to zero.
            "fps_mode": "cfr" if grid is None else "passthrough",
        })
    else:
        assert audio is not None and len(rungs) == 1
        streams.append(audio)
        copy_audio = rungs[0].audio_copy
        if not copy_audio:
            out["b:a:0"] = _kbps(rungs[0].audio_bitrate)
        var_map.append(f"a:0,name:{rungs[0].name}")

    if copy_audio:
        out["c:a"] = "copy"
    elif audio is not None:
        out["c:a"] = "aac"
        out["ac"] = 2
        if info.audio_sample_rate not in (44100, 48000):
            out["ar"] = 48000
    out.update({
        "f": "hls",
        "hls_time": SEGMENT_SECONDS,
        "hls_playlist_type": "vod",
        "hls_flags": "independent_segments",
        "hls_segment_type": "mpegts",
        "hls_segment_filename": "hls/%v/seg_%05d.ts",
        "master_pl_name": "master.m3u8",
        "var_stream_map": " ".join(var_map),
        "map_metadata": -1,
        "map_chapters": -1,
        "max_muxing_queue_size": 4096,
    })
    if grid is not None:
        ts_offset += grid.origin
    if ts_offset:
        out["output_ts_offset"] = f"{ts_offset:.6f}"
    outputs = [ffmpeg_python.output(*streams, "hls/%v/index.m3u8", **out)]
    if poster_stream is not None:
        outputs.append(
            ffmpeg_python.output(
                poster_stream, POSTER, f="image2", update=1, fps_mode="passthrough",
                **{"q:v": 3}
            )
        )
    compiled = ffmpeg_python.merge_outputs(*outputs).compile(cmd=ffmpeg)
    head = [compiled[0], "-hide_banner", "-nostdin", "-y", "-loglevel", "warning"]
    if progress:
        head += ["-progress", "pipe:1", "-nostats"]
    return head + list(compiled[1:])


# --------------------------------------------------------------------------------------------
# Playlists


@dataclass(frozen=True)
class _Variant:
    bandwidth: int
    resolution: tuple[int, int] | None
    uri: str


def parse_master(text: str) -> list[_Variant]:
    variants: list[_Variant] = []
    lines = [line.strip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        if not line.startswith("#EXT-X-STREAM-INF:"):
            continue
        attrs = line.split(":", 1)[1]
        bandwidth = re.search(r"(?:^|,)BANDWIDTH=(\d+)", attrs)
        resolution = re.search(r"(?:^|,)RESOLUTION=(\d+)x(\d+)", attrs)
        uri = next((u for u in lines[i + 1:] if u and not u.startswith("#")), None)
        if bandwidth and uri:
            variants.append(
                _Variant(
                    bandwidth=int(bandwidth.group(1)),
                    resolution=(int(resolution.group(1)), int(resolution.group(2))) if resolution else None,
                    uri=uri,
                )
            )
    return variants


def parse_media_playlist(text: str) -> tuple[list[tuple[float, str]], bool]:
    """[(EXTINF duration, segment uri)], and whether #EXT-X-ENDLIST is there."""
    segments: list[tuple[float, str]] = []
    pending: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXTINF:"):
            pending = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#") and pending is not None:
            segments.append((pending, line))
            pending = None
    return segments, "#EXT-X-ENDLIST" in text


def _verify(work: Path, rungs: list[Rung], run: FFmpegRun,
            own_audio: bool = False) -> tuple[list[Rendition], float]:
    """Check every playlist and segment FFmpeg wrote; the renditions (video rungs, or the one
    audio-only rendition) and the top rung's duration. `own_audio`: the ladder has its audio
    rendition (`hls/audio/`), and the master is written here (playlists.py) over FFmpeg's."""
    def incomplete(why: str) -> MediaError | TranscodeError:
        lower = run.stderr.lower()
        if "partial file" in lower:
            # The index promised samples the file does not hold, and what it does hold made no
            # playable stream (under 0.5 s: FFmpeg leaves the variant out of the master).
            return MediaError("truncated", TRUNCATED_MESSAGE, detail=f"{why}\n{run.stderr[-3000:]}")
        if "nothing was encoded" in lower or "received no packets" in lower:
            # FFmpeg exited 0 having decoded nothing: the source, not the machine.
            return MediaError("decode_failed", "FFmpeg could not decode any video or audio from "
                              "the file; it may be damaged.", detail=f"{why}\n{run.stderr[-3000:]}")
        return TranscodeError(
            "incomplete_output",
            "The transcoder did not produce a complete stream; the job will be retried.",
            detail=f"{why}\n{run.stderr[-3000:]}",
        )

    def segments_of(uri: str) -> list[tuple[float, Path]]:
        playlist = master_path.parent / uri
        if not playlist.is_file():
            raise incomplete(f"{uri} not written")
        text = playlist.read_text(errors="replace")
        segments, ended = parse_media_playlist(text)
        if not ended or not segments:
            raise incomplete(f"{uri} has no #EXT-X-ENDLIST or no segments")
        target = re.search(r"^#EXT-X-TARGETDURATION:(\d+)", text, re.MULTILINE)
        if target is not None and int(target.group(1)) < 1 and uri == audio_uri:
            # A sound under half a second next to a longer picture (muxed, the rung carried
            # it): FFmpeg writes TARGETDURATION:0, which players reject. It is real audio (an
            # empty track never gets here), so the playlist is given the smallest valid one.
            text = text.replace(target.group(0), "#EXT-X-TARGETDURATION:1", 1)
            playlist.write_text(text)
        elif target is not None and int(target.group(1)) < 1:
            # Under half a second of media in all (sources under 1 s are padded to 1 s): FFmpeg
            # 7+ leaves such a variant out of the master playlist, 5.x lists it with
            # TARGETDURATION:0, which players reject. Either way, not a playable stream.
            raise incomplete(f"{uri} holds under half a second (TARGETDURATION:0)")
        found = []
        for duration, seg in segments:
            seg_path = playlist.parent / seg
            if not seg_path.is_file() or seg_path.stat().st_size == 0:
                raise incomplete(f"segment {seg} of {uri} missing or empty")
            found.append((duration, seg_path))
        return found

    master_path = work / MASTER_PLAYLIST
    if not master_path.is_file():
        raise incomplete("no master playlist")
    master_text = master_path.read_text(errors="replace")
    by_uri = {v.uri: v for v in parse_master(master_text)}
    audio = None
    audio_uri = f"{AUDIO_RUNG}/index.m3u8" if own_audio else None
    if audio_uri is not None:
        # FFmpeg 7+ writes measured BANDWIDTH, 5.x the nominal rates (plus 10 %): measured
        # here, the same on both.
        audio = Audio(*bandwidths(segments_of(audio_uri)))
    attrs = stream_inf(master_text)
    renditions: list[Rendition] = []
    variants: list[Variant] = []
    durations: list[float] = []
    for rung in rungs:
        uri = f"{rung.name}/index.m3u8"
        variant = by_uri.get(uri)
        if variant is None:
            raise incomplete(f"{uri} missing from the master playlist")
        segments = segments_of(uri)
        durations.append(sum(d for d, _ in segments))
        bandwidth = variant.bandwidth
        if audio is not None:
            peak, average = bandwidths(segments)
            codecs = attrs.get(rung.name, {}).get("CODECS")
            resolution = attrs.get(rung.name, {}).get("RESOLUTION", f"{rung.width}x{rung.height}")
            variants.append(Variant(rung.name, peak, resolution, codecs, average))
            bandwidth = peak + audio.bandwidth
        renditions.append(
            Rendition(
                height=rung.height,
                width=rung.width,
                bitrate=bandwidth,
                playlist=f"hls/{uri}",
            )
        )
    if audio is not None:
        master_path.write_text(master_playlist(variants, audio))
    return renditions, (durations[0] if durations else 0.0)


def _is_jpeg(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(3) == b"\xff\xd8\xff"
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# transcode()


class _Progress:
    """Calls on_progress("transcoding", pct) only when pct grows (0-100, never decreasing)."""

    def __init__(self, callback: Callable[[str, int], None] | None, duration: float) -> None:
        self.callback = callback
        self.duration = duration
        self.last = -1

    def emit(self, pct: int) -> None:
        pct = max(0, min(100, pct))
        if self.callback is not None and pct > self.last:
            self.last = pct
            self.callback("transcoding", pct)

    def on_line(self, line: str) -> None:
        key, _, value = line.partition("=")
        if key == "out_time_us" and self.duration > 0 and value.lstrip("-").isdigit():
            # 99 at most until FFmpeg has exited and the output is verified.
            self.emit(min(99, int(int(value) / 1e6 / self.duration * 100)))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else deadline - time.monotonic()


def _timeout_error(limit: float | None) -> MediaError:
    return MediaError(
        "timeout",
        "Processing the file took too long and was stopped; the file may be damaged or "
        "unusually long.",
        detail=f"time budget {limit} s exhausted",
    )


def _cleanup_stale(out_dir: Path) -> None:
    for entry in out_dir.iterdir():
        if entry.name.startswith(_TMP_PREFIX) or entry.name.startswith(".old-hls-"):
            shutil.rmtree(entry, ignore_errors=True)


def _install(work: Path, out_dir: Path, with_poster: bool) -> None:
    """Move the verified output over the previous one."""
    target = out_dir / "hls"
    old = None
    if target.exists():
        old = out_dir / f".old-hls-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    os.replace(work / "hls", target)
    poster = out_dir / POSTER
    if with_poster:
        os.replace(work / POSTER, poster)
    elif poster.exists():
        poster.unlink()
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fallback_poster(ffmpeg: str, source: Path, info: MediaInfo, top: Rung, work: Path,
                     timeout: float | None) -> bool:
    argv = [
        ffmpeg, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        *[x for k, v in input_options().items() for x in (f"-{k}", v)],
        "-i", input_url(source), "-map", f"0:{info.video_index}", "-frames:v", "1",
        "-vf", f"scale={top.width}:{top.height}:out_range=full,setsar=1,format=yuv420p",
        "-q:v", "3", "-f", "image2", "-update", "1", POSTER,
    ]
    run = run_ffmpeg(argv, timeout=timeout, cwd=work)
    if run.timed_out:
        raise classify_failure(run, source, what="transcode")
    return run.returncode == 0 and _is_jpeg(work / POSTER)


#: FFmpeg's warning when the audio filter graph never received a frame (an empty audio track).
#: FFmpeg 7+ only: 5.x says nothing, so the output itself is checked too (`_has_audio_packets`).
_EMPTY_AUDIO = re.compile(r"\[af#\d+:\d+[^\]]*\] No filtered frames for output stream")

_TS_PACKET = 188
#: MPEG-TS stream types of audio (MPEG audio, AAC ADTS/LATM, AC-3, E-AC-3).
_TS_AUDIO_TYPES = {0x03, 0x04, 0x0F, 0x11, 0x81, 0x87}


def _ts_audio_pids(data: bytes) -> set[int]:
    """The audio PIDs the first PMT of an MPEG-TS segment declares (FFmpeg writes PAT + PMT first)."""
    pmt_pids: set[int] = set()
    for offset in range(0, len(data) - _TS_PACKET + 1, _TS_PACKET):
        packet = data[offset:offset + _TS_PACKET]
        if packet[0] != 0x47 or not packet[1] & 0x40:  # sync byte, payload unit start
            continue
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        pos = 4
        if packet[3] & 0x20:  # adaptation field
            pos += 1 + packet[4]
        if pos >= _TS_PACKET:
            continue
        pos += 1 + packet[pos]  # pointer field
        section = packet[pos:]
        if len(section) < 12:
            continue
        length = (section[1] & 0x0F) << 8 | section[2]
        end = min(len(section), 3 + length - 4)  # without the CRC
        if pid == 0 and section[0] == 0x00:  # PAT: program number, PMT PID pairs
            for i in range(8, end - 3, 4):
                if section[i] << 8 | section[i + 1]:
                    pmt_pids.add((section[i + 2] & 0x1F) << 8 | section[i + 3])
        elif pid in pmt_pids and section[0] == 0x02:  # PMT: the elementary streams
            audio: set[int] = set()
            i = 12 + ((section[10] & 0x0F) << 8 | section[11])
            while i + 5 <= end:
                es_pid = (section[i + 1] & 0x1F) << 8 | section[i + 2]
                if section[i] in _TS_AUDIO_TYPES:
                    audio.add(es_pid)
                i += 5 + ((section[i + 3] & 0x0F) << 8 | section[i + 4])
            return audio
    return set()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _has_audio_packets(work: Path, name: str) -> bool:
    """Whether the segments of rendition `name` (a rung with its audio muxed in, or the audio
    rendition) carry any audio packet (reading stops at the first one).

    True when this cannot be told (no playlist, no PMT): `_verify` judges those outputs."""
    playlist = work / "hls" / name / "index.m3u8"
    try:
        segments, _ = parse_media_playlist(playlist.read_text(errors="replace"))
    except OSError:
        return True
    if name == AUDIO_RUNG and not any(_size(playlist.parent / uri) for _, uri in segments):
        # The ladder's audio rendition without a byte (FFmpeg 5.x: one empty 0 s segment).
        return False
    pids: set[int] | None = None
    for _, uri in segments:
        try:
            data = (playlist.parent / uri).read_bytes()
        except OSError:
            return True
        if pids is None:
            pids = _ts_audio_pids(data)
            if not pids:
                return True
        for pid in pids:
            # A packet of that PID starting a PES packet: sync byte, PUSI flag, PID.
            needle = bytes([0x47, 0x40 | pid >> 8, pid & 0xFF])
            at = data.find(needle)
            while at != -1:
                if at % _TS_PACKET == 0:
                    return True
                at = data.find(needle, at + 1)
    return pids is None


def transcode(
    source: Path,
    out_dir: Path,
    *,
    on_progress: Callable[[str, int], None] | None = None,
    timeout: float | None = None,
    preset: str = "veryfast",
    ffmpeg: str | None = None,
    content: str | None = None,
    ts_offset: float = 0.0,
    window: PieceWindow | None = None,
    poster: bool = True,
) -> TranscodeResult:
    """Probe `source`, write `out_dir/hls/...` and `out_dir/poster.jpg`, return what was made.

    `timeout` (seconds) bounds all FFmpeg work of this call (probe, transcode, poster fallback);
    None means `default_timeout(probed duration)` for the transcode and 60 s for the probe.
    Running past it is a MediaError("timeout"). An exception raised by `on_progress` stops
    FFmpeg, removes the partial output and propagates (cancellation).

    `content`: None measures how still the picture is (`motion.analyze`, a short sampling pass
    during "probing") and picks the ladder's settings by `ladder.content_class()`;
    "motion" / "still" force one (the benchmark's "today" is content="motion").

    `ts_offset` (seconds) moves the outputs on the timeline (FFmpeg starts them at zero): a
    chunk cut from a longer source (pipeline/chunks.py) lands at its place. `window`: such a
    chunk's place in its source; its pictures then go on the source's frame grid, keep only their
    share of it, and are moved to their place (`ts_offset` is then only the timeline's padding;
    pipeline/piece_grid.py). `poster=False`: no poster (the chunks after the first one of a
    chunked source).
    """
    source = Path(source)
    out_dir = Path(out_dir)
    ffmpeg = ffmpeg or find_ffmpeg()
    deadline = None if timeout is None else time.monotonic() + timeout
    if on_progress is not None:
        on_progress("probing", 0)

    probe_timeout = PROBE_TIMEOUT if deadline is None else min(PROBE_TIMEOUT, max(0.0, _remaining(deadline) or 0.0))
    if probe_timeout <= 0:
        raise _timeout_error(timeout)
    info = probe(source, ffmpeg=ffmpeg, timeout=probe_timeout)
    if content is None:
        content = CONTENT_MOTION
        if info.has_video:
            left = _remaining(deadline)
            budget = ANALYSIS_TIMEOUT if left is None else min(ANALYSIS_TIMEOUT, left)
            if budget > 0:
                content = content_class(analyze(source, info, ffmpeg=ffmpeg, timeout=budget))
    rungs = plan_ladder(info, content)
    rates = [Fraction(r.fps) for r in rungs if r.fps]
    grid = grid_plan(window, rates) if window is not None and rates else None

    out_dir.mkdir(parents=True, exist_ok=True)
    _cleanup_stale(out_dir)
    work = out_dir / f"{_TMP_PREFIX}{uuid.uuid4().hex[:12]}"
    work.mkdir()
    try:
        argv = build_command(source, info, rungs, ffmpeg=ffmpeg, preset=preset, poster=poster and info.has_video,
                             ts_offset=ts_offset, grid=grid)
        progress = _Progress(on_progress, info.duration)
        progress.emit(0)
        budget = default_timeout(info.duration) if deadline is None else _remaining(deadline)
        if budget is not None and budget <= 0:
            raise _timeout_error(timeout)
        run = run_ffmpeg(argv, timeout=budget, cwd=work, on_stdout_line=progress.on_line)
        if run.timed_out or run.returncode != 0:
            raise classify_failure(run, source, what="transcode")
        own_audio = separate_audio(info, rungs)
        if info.has_video and info.has_audio and (
                _EMPTY_AUDIO.search(run.stderr) or not _has_audio_packets(
                    work, AUDIO_RUNG if own_audio else rungs[0].name)):
            # A declared audio track without a single packet: segments would announce an AAC
            # stream that never comes (players wait for it). Encode again, picture only.
            info = dataclasses.replace(info, has_audio=False, audio_index=None)
            own_audio = False
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            argv = build_command(source, info, rungs, ffmpeg=ffmpeg, preset=preset,
                                 poster=poster, ts_offset=ts_offset, grid=grid)
            budget = default_timeout(info.duration) if deadline is None else _remaining(deadline)
            if budget is not None and budget <= 0:
                raise _timeout_error(timeout)
            run = run_ffmpeg(argv, timeout=budget, cwd=work, on_stdout_line=progress.on_line)
            if run.timed_out or run.returncode != 0:
                raise classify_failure(run, source, what="transcode")
        renditions, produced = _verify(work, rungs, run, own_audio)

        with_poster = False
        if info.has_video and poster:
            with_poster = _is_jpeg(work / POSTER)
            if not with_poster:
                left = _remaining(deadline)
                if left is not None and left <= 0:
                    raise _timeout_error(timeout)
                with_poster = _fallback_poster(ffmpeg, source, info, rungs[0], work,
                                               left if left is not None else PROBE_TIMEOUT)
                # Still nothing (never seen): the video is playable, so it is ready without one.
        _install(work, out_dir, with_poster)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    progress.emit(100)
    duration = produced if produced > 0 else info.duration
    return TranscodeResult(
        duration=round(duration, 3),
        width=info.width,
        height=info.height,
        has_video=info.has_video,
        has_audio=info.has_audio,
        renditions=renditions,
        master_playlist=MASTER_PLAYLIST,
        poster=POSTER if with_poster else None,
        content=content,
    )

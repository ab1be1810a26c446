"""The runner's early pass: `playable` before the ladder, the early output kept while the ladder
uploads, reused by a redelivered job, never fatal; and once with the real pipeline."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from worker_fakes import FakeTranscode, RecordingNotifier

from coursecrafter_worker.messages import JobEvent, Rendition
from coursecrafter_worker.queue import Requeue
from coursecrafter_worker.runner import JobRunner


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


class FakeEarly:
    """Writes what pipeline.early writes (an early playlist, a segment, a master naming it)."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, source: Path, out_dir: Path, **kwargs: object):  # type: ignore[no-untyped-def]
        from coursecrafter_worker.pipeline.early import EarlyResult

        self.calls += 1
        if self.fail is not None:
            raise self.fail
        early = out_dir / "hls" / "early"
        early.mkdir(parents=True)
        (early / "seg_00000.ts").write_bytes(b"\x47" * 188)
        (early / "index.m3u8").write_text(
            "#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4.0,\nseg_00000.ts\n#EXT-X-ENDLIST\n")
        (out_dir / "hls" / "master.m3u8").write_text(
            "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000\nearly/index.m3u8\n")
        return EarlyResult(kind="remux", rendition=Rendition(240, 320, 1000,
                                                             "hls/early/index.m3u8"),
                           duration=4.0, width=320, height=240)


def runner(storage, notifier, work_dir: Path, *, early, transcode=None, **kwargs) -> JobRunner:
    return JobRunner(storage, notifier, work_dir=work_dir,
                     transcode=transcode or FakeTranscode(heights=(360,)), early=early,
                     heartbeat_interval=5.0, progress_interval=0.05, **kwargs)


def read(storage, key: str) -> str:
    with storage.open_read(key) as f:
        return f.read().decode()


def test_playable_comes_before_the_ladder_and_its_output_outlives_the_new_master(
    storage, make_message, work_dir
) -> None:
    message = make_message("e1")
    prefix = message.output_prefix
    seen_at_playable: dict[str, object] = {}
    seen_at_completed: dict[str, object] = {}

    def on_send(event: JobEvent) -> None:
        if event.type == "playable":
            seen_at_playable["master"] = read(storage, f"{prefix}hls/master.m3u8")
            seen_at_playable["segment"] = storage.head(f"{prefix}hls/early/seg_00000.ts")
        if event.type == "completed":
            seen_at_completed["early"] = storage.head(f"{prefix}hls/early/index.m3u8")
            seen_at_completed["master"] = read(storage, f"{prefix}hls/master.m3u8")

    notifier = RecordingNotifier(on_send=on_send)
    assert runner(storage, notifier, work_dir, early=FakeEarly()).run(message) == "completed"
    essential = [e.type for e, ess in zip(notifier.events, notifier.essential) if ess]
    assert essential == ["started", "playable", "completed"]
    playable = next(e for e in notifier.events if e.type == "playable")
    assert playable.playlist_key == f"{prefix}hls/master.m3u8"
    assert [r.playlist for r in playable.renditions] == ["hls/early/index.m3u8"]
    assert "early/index.m3u8" in seen_at_playable["master"]  # type: ignore[operator]
    assert seen_at_playable["segment"] is not None
    # The ladder replaced the master; the early rendition stays for players already on it.
    assert seen_at_completed["early"] is not None
    assert "early/" not in seen_at_completed["master"]  # type: ignore[operator]
    assert "360p/index.m3u8" in seen_at_completed["master"]  # type: ignore[operator]


def test_a_redelivered_job_reuses_a_complete_early_output(storage, make_message, work_dir) -> None:
    message = make_message("e2")
    first = FakeEarly()
    # The first delivery got as far as playable, then its worker died (completed never sent).
    notifier = RecordingNotifier(fail={"completed": RuntimeError("killed")})
    with pytest.raises(Requeue):
        runner(storage, notifier, work_dir, early=first).run(message)
    assert first.calls == 1 and "playable" in notifier.types

    again = FakeEarly()
    notifier = RecordingNotifier()
    assert runner(storage, notifier, work_dir, early=again).run(message) == "completed"
    assert again.calls == 0  # reused, not re-made
    assert notifier.types.count("playable") == 1
    assert storage.head(f"{message.output_prefix}hls/early/seg_00000.ts") is not None


def test_stale_at_playable_stops_and_keeps_the_source(storage, make_message, work_dir) -> None:
    message = make_message("e3")
    notifier = RecordingNotifier()
    notifier.stale_types.add("playable")
    transcode = FakeTranscode()
    assert runner(storage, notifier, work_dir, early=FakeEarly(),
                  transcode=transcode).run(message) == "skipped"
    assert transcode.calls == [] and "completed" not in notifier.types
    assert storage.head(message.source_key) is not None


def test_an_early_pass_that_fails_is_not_fatal(storage, make_message, work_dir) -> None:
    message = make_message("e4")
    notifier = RecordingNotifier()
    early = FakeEarly(fail=RuntimeError("disk hiccup"))
    assert runner(storage, notifier, work_dir, early=early).run(message) == "completed"
    assert "playable" not in notifier.types and notifier.types[-1] == "completed"


def test_real_pipeline_early_then_ladder(storage, make_message, work_dir, tmp_path) -> None:
    pytest.importorskip("coursecrafter_worker.pipeline")
    from coursecrafter_worker.pipeline import find_ffmpeg

    ffmpeg = find_ffmpeg()
    clip = tmp_path / "talk.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=426x240:r=25:d=5", "-f", "lavfi", "-i", "sine=d=5",
                    "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac",
                    "-shortest", str(clip)], check=True, timeout=60)
    message = make_message("e5", upload=False)
    storage.upload_file(clip, message.source_key, "video/mp4")
    prefix = message.output_prefix
    early_master: list[str] = []

    def on_send(event: JobEvent) -> None:
        if event.type == "playable":
            early_master.append(read(storage, f"{prefix}hls/master.m3u8"))

    notifier = RecordingNotifier(on_send=on_send)
    real = JobRunner(storage, notifier, work_dir=work_dir, ffmpeg_timeout=120, preset="ultrafast")
    assert real.run(message) == "completed"
    assert early_master and early_master[0].rstrip().endswith("early/index.m3u8")
    # What a player that loaded the early playlist before `ready` still reads: 5 s, A/V.
    local = storage.root / "objects" / prefix / "hls" / "early" / "index.m3u8"
    probe = subprocess.run([ffmpeg, "-hide_banner", "-i", str(local), "-f", "null", "-"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr
    h, m, sec = re.findall(r"time=(\d+):(\d+):([\d.]+)", probe.stderr)[-1]
    assert int(h) * 3600 + int(m) * 60 + float(sec) == pytest.approx(5.0, abs=0.2)
    final = read(storage, f"{prefix}hls/master.m3u8")
    assert "early/" not in final and "240p/index.m3u8" in final

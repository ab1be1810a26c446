"""Finding FFmpeg/ffprobe, the memory limit, and how FFmpeg failures are classified (with small
wrapper scripts standing in for a crashing FFmpeg, a full disk, and an ffprobe next to ffmpeg)."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest
from pipeline_support import FFMPEG, Clips

from coursecrafter_worker.pipeline import MediaError, TranscodeError, find_ffmpeg, probe, transcode
from coursecrafter_worker.pipeline.process import (
    find_ffprobe,
    memory_limit,
    parse_memory_limit,
    run_ffmpeg,
)


def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def test_find_ffmpeg_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COURSECRAFTER_FFMPEG", "/opt/ffmpeg/bin/ffmpeg")
    assert find_ffmpeg() == "/opt/ffmpeg/bin/ffmpeg"
    monkeypatch.delenv("COURSECRAFTER_FFMPEG")
    script(tmp_path / "ffmpeg", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_ffmpeg() == str(tmp_path / "ffmpeg")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    import imageio_ffmpeg

    assert find_ffmpeg() == imageio_ffmpeg.get_ffmpeg_exe()


def test_find_ffprobe_next_to_ffmpeg(tmp_path: Path) -> None:
    ffmpeg = script(tmp_path / "ffmpeg", "exit 0\n")
    assert find_ffprobe(str(ffmpeg)) is None
    ffprobe = script(tmp_path / "ffprobe", "exit 0\n")
    assert find_ffprobe(str(ffmpeg)) == str(ffprobe)
    # imageio-ffmpeg style names
    versioned = script(tmp_path / "ffmpeg-linux-x86_64-v9.0", "exit 0\n")
    ffprobe.unlink()
    assert find_ffprobe(str(versioned)) is None
    script(tmp_path / "ffprobe-linux-x86_64-v9.0", "exit 0\n")
    assert find_ffprobe(str(versioned)) == str(tmp_path / "ffprobe-linux-x86_64-v9.0")


def test_probe_uses_ffprobe_when_present(clips: Clips, tmp_path: Path) -> None:
    canned = {
        "streams": [
            {"index": 0, "codec_type": "video", "codec_name": "h264", "width": 1080,
             "height": 1920, "avg_frame_rate": "30/1", "r_frame_rate": "30/1"},
            {"index": 1, "codec_type": "audio", "codec_name": "aac", "sample_rate": "48000",
             "channels": 2},
        ],
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "42.0"},
    }
    (tmp_path / "out.json").write_text(json.dumps(canned))
    script(tmp_path / "ffmpeg", f'exec "{FFMPEG}" "$@"\n')
    script(tmp_path / "ffprobe", f'cat "{tmp_path / "out.json"}"\n')
    info = probe(clips.short, ffmpeg=str(tmp_path / "ffmpeg"))
    assert info.prober == "ffprobe"
    assert (info.width, info.height, info.duration, info.fps) == (1080, 1920, 42.0, 30.0)


def test_ffprobe_errors_are_classified(clips: Clips, tmp_path: Path) -> None:
    script(tmp_path / "ffmpeg", f'exec "{FFMPEG}" "$@"\n')
    script(tmp_path / "ffprobe", 'echo "[mov,mp4] moov atom not found" >&2\n'
           'echo "x.mp4: Invalid data found when processing input" >&2\nexit 1\n')
    with pytest.raises(MediaError) as exc:
        probe(clips.truncated, ffmpeg=str(tmp_path / "ffmpeg"))
    assert exc.value.code == "truncated"


def test_end_of_file_while_opening_is_truncated_in_every_spelling(clips: Clips,
                                                                    tmp_path: Path) -> None:
    # How ffprobe and FFmpeg 5.x report a header cut short (FFmpeg 7+ says "Error opening
    # input: End of file"): a cut-off upload, not "not a video".
    script(tmp_path / "ffmpeg", f'exec "{FFMPEG}" "$@"\n')
    script(tmp_path / "ffprobe",
           'echo "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55be2ca7d180] error reading header" >&2\n'
           'for a in "$@"; do last="$a"; done\necho "$last: End of file" >&2\nexit 1\n')
    with pytest.raises(MediaError) as exc:
        probe(clips.short, ffmpeg=str(tmp_path / "ffmpeg"))
    assert exc.value.code == "truncated"


def _wrapper(tmp_path: Path, action: str) -> str:
    """An `ffmpeg` that behaves normally, except for the transcode command (the one with
    -var_stream_map), where it runs `action`."""
    return str(script(tmp_path / "ffmpeg", f"""
for a in "$@"; do
  if [ "$a" = "-var_stream_map" ]; then
    {action}
  fi
done
exec "{FFMPEG}" "$@"
"""))


def test_ffmpeg_killed_by_someone_else_is_retryable(clips: Clips, tmp_path: Path) -> None:
    ffmpeg = _wrapper(tmp_path, "kill -KILL $$")
    with pytest.raises(TranscodeError) as exc:
        transcode(clips.short, tmp_path / "out", ffmpeg=ffmpeg, preset="ultrafast")
    assert exc.value.code == "ffmpeg_killed"
    assert exc.value.retryable


def test_ffmpeg_crash_is_retryable(clips: Clips, tmp_path: Path) -> None:
    ffmpeg = _wrapper(tmp_path, "kill -SEGV $$")
    with pytest.raises(TranscodeError) as exc:
        transcode(clips.short, tmp_path / "out", ffmpeg=ffmpeg, preset="ultrafast")
    assert exc.value.code == "ffmpeg_killed"


def test_disk_full_is_retryable(clips: Clips, tmp_path: Path) -> None:
    ffmpeg = _wrapper(
        tmp_path,
        "echo '[hls @ 0x1] Failed to open file hls/480p/seg_00000.ts: No space left on device' >&2; exit 1",
    )
    with pytest.raises(TranscodeError) as exc:
        transcode(clips.short, tmp_path / "out", ffmpeg=ffmpeg, preset="ultrafast")
    assert exc.value.code == "disk_full"


def test_exit_zero_without_output_is_retryable(clips: Clips, tmp_path: Path) -> None:
    ffmpeg = _wrapper(tmp_path, "exit 0")
    with pytest.raises(TranscodeError) as exc:
        transcode(clips.short, tmp_path / "out", ffmpeg=ffmpeg, preset="ultrafast")
    assert exc.value.code == "incomplete_output"
    assert os.listdir(tmp_path / "out") == []


def test_missing_binary_is_retryable(clips: Clips, tmp_path: Path) -> None:
    with pytest.raises(TranscodeError) as exc:
        transcode(clips.short, tmp_path / "out", ffmpeg=str(tmp_path / "no-ffmpeg"))
    assert exc.value.code == "ffmpeg_unavailable"


def test_memory_limit_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_memory_limit("4G") == 4 * 1024**3
    assert parse_memory_limit("512M") == 512 * 1024**2
    assert parse_memory_limit("1048576") == 1048576
    assert parse_memory_limit("1.5GiB") == int(1.5 * 1024**3)
    assert parse_memory_limit("unlimited") is None and parse_memory_limit("0") is None
    with pytest.raises(ValueError):
        parse_memory_limit("lots")
    assert memory_limit() is not None and memory_limit() >= 4 * 1024**3  # type: ignore[operator]
    monkeypatch.setenv("COURSECRAFTER_FFMPEG_MEMORY_LIMIT", "3G")
    assert memory_limit() == 3 * 1024**3


def test_memory_limit_applies_to_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COURSECRAFTER_FFMPEG_MEMORY_LIMIT", "1234M")
    lines: list[str] = []
    run = run_ffmpeg(["/bin/sh", "-c", "ulimit -v; ulimit -c"], timeout=10,
                     on_stdout_line=lambda line: lines.append(line))
    assert run.returncode == 0
    assert lines == [str(1234 * 1024), "0"]  # ulimit -v is in KiB; no core dumps


def test_run_ffmpeg_timeout_kills_the_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    # A child that would outlive its parent unless the whole group is killed.
    run = run_ffmpeg(["/bin/sh", "-c", f"(sleep 1; touch {marker}) & exec sleep 30"], timeout=0.3)
    assert run.timed_out and run.returncode < 0
    assert run.elapsed < 2
    time.sleep(1.5)
    assert not marker.exists()

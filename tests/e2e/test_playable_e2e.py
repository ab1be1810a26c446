"""Playable early, end to end on the embedded default: `coursecrafter upload --wait --until
playable` returns with a playback URL that FFmpeg plays while the ladder may still be running;
`wait` then sees `ready`, the master now names the ladder, and the early playlist a player loaded
before keeps playing (its outputs stay for the playback URL TTL)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import pytest
from livesupport import run_cli

from coursecrafter_worker.pipeline import find_ffmpeg

pytestmark = pytest.mark.slow
PASSWORD = "lecture hall 42"
SECONDS = 6.0


@pytest.fixture(scope="module")
def lecture_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "lecture.mp4"
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=s=854x480:r=25:d={SECONDS}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}",
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
         "-c:a", "aac", "-shortest", str(path)],
        check=True, timeout=60,
    )
    return path


def decoded(url: str) -> tuple[float, str]:
    """Decode a playlist and everything it names, as a player would: (media seconds, streams)."""
    done = subprocess.run([find_ffmpeg(), "-hide_banner", "-nostdin", "-i", url, "-f", "null",
                           "-"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    h, m, s = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", done.stderr)[-1]
    return int(h) * 3600 + int(m) * 60 + float(s), done.stderr


def variants(master_url: str) -> list[str]:
    master = httpx.get(master_url, timeout=10)
    assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text, master.text
    return [line for line in master.text.splitlines() if line and not line.startswith("#")]


def test_upload_wait_until_playable_then_ready(cli_env, live_server, lecture_clip):
    assert run_cli(cli_env, "register", "--username", "ada", "--email", "ada@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert run_cli(cli_env, "login", "--username", "ada", "--password-stdin",
                   stdin=PASSWORD + "\n").returncode == 0

    done = run_cli(cli_env, "upload", str(lecture_clip), "--wait", "--until", "playable",
                   "--interval", "0.2", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert video["playable"] is True and video["playback_url"], video
    assert re.search(r"playable after [\d.]+ s: http", done.stderr), done.stderr
    base = video["playback_url"].split("master.m3u8")[0]
    early_url = None
    if video["status"] == "processing":
        # Caught before the ladder: the master names the early rendition alone.
        (only,) = variants(video["playback_url"])
        assert only == "early/index.m3u8", only  # relative: the token travels in the path
        early_url = base + only
        seconds, streams = decoded(early_url)
        assert seconds == pytest.approx(SECONDS, abs=0.3)
        assert "Video: h264" in streams and "Audio: aac" in streams
        assert video["poster_url"] is None and video["renditions"] == []
    else:  # the ladder was quicker than our poll: ready implies playable
        assert video["status"] == "ready"

    done = run_cli(cli_env, "wait", video["id"], "--interval", "0.2", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    ready = json.loads(done.stdout)
    assert ready["status"] == "ready" and ready["playable"] is True
    ladder = variants(ready["playback_url"])
    assert [v.split("/")[0] for v in ladder] == ["480p", "360p"]
    assert decoded(ready["playback_url"])[0] == pytest.approx(SECONDS, abs=0.3)
    if early_url is not None:
        # A player that loaded the early playlist keeps playing it after `ready`.
        assert decoded(early_url)[0] == pytest.approx(SECONDS, abs=0.3)
    # The early outputs stay for the grace (the playback URL TTL: hours), under their own prefix.
    blobs = live_server.home / "blobs"
    early = [p for p in blobs.rglob("*") if p.is_file()
             and f"videos/{video['id']}/hls/early/" in p.as_posix()]
    assert any(p.name == "index.m3u8" for p in early) and any(p.suffix == ".ts" for p in early)

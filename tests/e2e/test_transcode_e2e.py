"""Upload to playable, end to end, with real processes: the `coursecrafter` CLI, the server, and
(scale-out path) `coursecrafter-worker` consuming from the real RabbitMQ. The result is read back
through the playback URL by FFmpeg itself."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from livesupport import BIN, run_cli, start_live_server
from pipeline.pipeline_support import make_clip

from coursecrafter_worker.pipeline import find_ffmpeg

pytestmark = pytest.mark.slow
PASSWORD = "lecture hall 42"


@pytest.fixture(scope="module")
def lecture_clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "lecture.mp4", size="854x480", rate=25,
                     duration=3)


def decoded_duration(url: str) -> float:
    """Decode a playlist (and every segment it names) with FFmpeg; return the media time."""
    done = subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-nostdin", "-i", url, "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    times = re.findall(r"time=(\d+):(\d+):(\d+\.\d+)", done.stderr)
    h, m, s = times[-1]
    return int(h) * 3600 + int(m) * 60 + float(s)


def login(env: dict[str, str]) -> None:
    assert run_cli(env, "register", "--username", "ada", "--email", "ada@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n").returncode == 0
    assert run_cli(env, "login", "--username", "ada", "--password-stdin",
                   stdin=PASSWORD + "\n").returncode == 0


def assert_playable(video: dict, expected_duration: float) -> None:
    assert video["status"] == "ready", video
    assert abs(video["duration"] - expected_duration) < 0.5
    assert (video["width"], video["height"]) == (854, 480)
    assert [r["height"] for r in video["renditions"]] == [480, 360]  # a ladder, never upscaled
    master = httpx.get(video["playback_url"], timeout=10)
    assert master.status_code == 200 and "#EXT-X-STREAM-INF" in master.text
    assert "RESOLUTION=854x480" in master.text and "RESOLUTION=640x360" in master.text
    variants = [line for line in master.text.splitlines() if line and not line.startswith("#")]
    assert len(variants) == 2
    base = video["playback_url"].split("master.m3u8")[0]
    for variant in variants:
        assert abs(decoded_duration(base + variant) - expected_duration) < 0.5
    # The sound (encoded to AAC once for both rungs): one audio rendition every rung names.
    assert master.text.count("#EXT-X-MEDIA:TYPE=AUDIO") == 1
    assert master.text.count('AUDIO="audio"') == 2
    assert abs(decoded_duration(base + "audio/index.m3u8") - expected_duration) < 0.5
    assert abs(decoded_duration(video["playback_url"]) - expected_duration) < 0.5
    poster = httpx.get(video["poster_url"], timeout=10)
    assert poster.status_code == 200 and poster.content[:2] == b"\xff\xd8"  # a JPEG


def test_cli_upload_wait_to_ready_on_the_embedded_default(cli_env, live_server, lecture_clip):
    login(cli_env)
    done = run_cli(cli_env, "upload", str(lecture_clip), "--title", "Week 1", "--wait", "--json",
                   timeout=300)
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert_playable(video, 3.0)
    # The temporary source is gone; the outputs are where DESIGN.md says.
    blobs = live_server.home / "blobs"
    names = {p.relative_to(blobs).as_posix() for p in blobs.rglob("*") if p.is_file()}
    assert not any(f"uploads/{video['id']}/source" in n for n in names)
    assert any(n.endswith(f"videos/{video['id']}/hls/master.m3u8") for n in names)
    status = run_cli(cli_env, "status", video["id"], "--json")
    assert json.loads(status.stdout)["status"] == "ready"


def test_text_file_renamed_mp4_fails_with_a_reason(cli_env, live_server, tmp_path):
    login(cli_env)
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are my lecture notes, not a video\n" * 100)
    done = run_cli(cli_env, "upload", str(fake), "--wait", "--json", timeout=300)
    assert done.returncode == 5, (done.stdout, done.stderr)
    video = json.loads(done.stdout)
    assert video["status"] == "failed" and video["error"]["code"] == "not_media"
    assert video["error"]["message"] in done.stderr


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


@pytest.fixture
def amqp_url():
    vhost = f"cc-e2e-{uuid.uuid4().hex[:8]}"
    try:
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"rabbitmqctl unavailable: {exc}")
    yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True, timeout=60)


def test_scale_out_path_with_rabbitmq_and_a_worker_process(tmp_path, amqp_url, lecture_clip):
    home = tmp_path / "home"
    server = start_live_server(home, {"COURSECRAFTER_BROKER_URL": amqp_url})
    worker_env = {**server.env, "COURSECRAFTER_HEARTBEAT_INTERVAL": "2"}
    worker_log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen([str(BIN / "coursecrafter-worker"), "--concurrency", "1"],
                              env=worker_env, stdout=worker_log, stderr=subprocess.STDOUT)
    try:
        env = {
            "PATH": server.env.get("PATH", ""),
            "COURSECRAFTER_API_URL": server.url,
            "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "cli"),
            "COURSECRAFTER_CREDENTIAL_STORE": "file",
            "NO_COLOR": "1",
        }
        login(env)
        done = run_cli(env, "upload", str(lecture_clip), "--wait", "--json", timeout=300)
        assert done.returncode == 0, (done.stderr, (tmp_path / "worker.log").read_text())
        assert_playable(json.loads(done.stdout), 3.0)
        ready = httpx.get(f"{server.url}/readyz").json()
        assert ready["checks"]["broker"] == "ok"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        worker_log.close()
        server.stop()

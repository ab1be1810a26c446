"""Hostile media end to end: three files of the corpus (tests/pipeline/test_pipeline_corpus.py,
made by the same `Clips` builders) uploaded to a live `coursecrafter-server` whose in-process
transcoders take them through the real pipeline. Each must end `failed` at its first attempt
(a bad file is not retried), with the specific error code and a message a lecturer can read,
shown by `GET /videos/{id}`; and nothing may be left behind in the storage or the work dir.

The corpus test proves `transcode()` classifies these files; this one proves the classification
reaches the user through the job, its events and the API."""

from __future__ import annotations

import re
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from livesupport import start_live_server

from coursecrafter_cli import Client, MemoryCredentialStore

# The corpus builders live next to the pipeline tests (pytest puts tests/pipeline on sys.path only
# once it collects them, which is after tests/e2e).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_support import Clips  # noqa: E402

pytestmark = pytest.mark.slow
PASSWORD = "lecture hall 42"

# (name, builder, expected error code, words the message must carry). The codes are those of
# the corpus cases moov_at_end_cut_10pct and h264_sps_8208x8208, and of random bytes in the
# probe tests.
CASES: list[tuple[str, Callable[[Clips], Path], str, tuple[str, ...]]] = [
    ("truncated MP4 (index lost, cut at 10%)",
     lambda c: c.truncated_at("moov_at_end", "10pct"), "truncated", ()),
    ("H.264 declaring 8208x8208", lambda c: c.h264_declaring(8208, 8208), "too_large",
     ("8208x8208", "8192")),
    ("random bytes named .mp4", lambda c: c.random_bytes, "not_media", ()),
]


def _jobs(home: Path) -> dict[str, tuple[int, str]]:
    """{video id: (attempt, status)} from the embedded SQLite store (read-only)."""
    conn = sqlite3.connect(f"file:{home / 'coursecrafter.sqlite3'}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute("SELECT video_id, attempt, status FROM jobs").fetchall()
    finally:
        conn.close()
    assert len({r[0] for r in rows}) == len(rows), rows  # one job per video
    return {video_id: (attempt, status) for video_id, attempt, status in rows}


def test_hostile_files_fail_once_with_a_clear_reason(tmp_path: Path) -> None:
    clips = Clips(tmp_path / "corpus")
    clips.root.mkdir()
    files = {name: make(clips) for name, make, _, _ in CASES}
    # The server's own temp dir, so that the transcoders' work dir (<tmp>/coursecrafter-work,
    # transcoders.py) is this test's alone. The memory limit of the corpus' huge-frame cases:
    # none of these files may need more to be refused.
    tmp = tmp_path / "server-tmp"
    tmp.mkdir()
    home = tmp_path / "home"
    server = start_live_server(home, {"TMPDIR": str(tmp),
                                      "COURSECRAFTER_FFMPEG_MEMORY_LIMIT": "1G"})
    try:
        client = Client(server.url, credential_store=MemoryCredentialStore())
        client.register("ada", "ada@example.edu", PASSWORD)
        client.login("ada", PASSWORD)
        began = time.monotonic()
        ids = {name: client.upload(path, title=name, resume=False)["id"]
               for name, path in files.items()}
        client.close()

        # What the lecturer sees: GET /videos/{id} with their own token.
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        token = api.post("/auth/login", json={"username": "ada", "password": PASSWORD}
                         ).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        videos: dict[str, dict] = {}
        deadline = time.monotonic() + 60
        while len(videos) < len(ids) and time.monotonic() < deadline:
            for name, video_id in ids.items():
                response = api.get(f"/videos/{video_id}")
                assert response.status_code == 200, response.text
                if response.json()["status"] in ("ready", "failed"):
                    videos[name] = response.json()
            time.sleep(0.25)
        took = time.monotonic() - began
        assert set(videos) == set(ids), {n: api.get(f"/videos/{v}").json() for n, v in ids.items()}
        api.close()

        log = server.log()
        for name, _, code, words in CASES:
            video = videos[name]
            assert video["status"] == "failed", (name, video)
            error = video["error"]
            assert error["code"] == code, (name, error)
            message = error["message"]
            # Readable: a sentence for a person, not FFmpeg's stderr or a traceback.
            assert 20 <= len(message) <= 500 and message[0].isupper(), (name, message)
            assert "\n" not in message and "Traceback" not in message, (name, message)
            assert not re.search(r"\[\w+ @ 0x|errno|exception|stderr", message, re.I), \
                (name, message)
            for word in words:
                assert word in message, (name, message)
            assert not video.get("renditions") and not video.get("playback_url"), video
            # Once: the job's first attempt failed it, and nothing ran it again.
            assert log.count(f"(video {video['id']}) failed in ") == 1, (name, log[-5000:])
        assert _jobs(home) == {vid: (1, "failed") for vid in ids.values()}
        assert "re-queued" not in log and "Traceback" not in log, log[-5000:]

        # Nothing left behind: no multipart upload or temp file in the local storage, no job
        # directory, no output under any of the videos.
        blobs = home / "blobs"
        leftovers = [p.relative_to(blobs).as_posix() for sub in ("multipart", "tmp")
                     for p in (blobs / sub).rglob("*")]
        assert not leftovers, leftovers
        assert not list((tmp / "coursecrafter-work").glob("job-*"))
        for video_id in ids.values():
            assert not (blobs / "objects" / "videos" / video_id).exists()
        print(f"\nhostile media end to end: {len(ids)} uploads all failed in {took:.1f}s: "
              f"{ {n: (v['error']['code'], v['error']['message']) for n, v in videos.items()} }")
    finally:
        server.stop()

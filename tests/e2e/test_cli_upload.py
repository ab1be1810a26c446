"""The real `coursecrafter upload` (and courses/status/videos) against a real server process, on
both storage adapters: the embedded local blob directory, and S3 (moto's server over HTTP).

Part PUTs go through a small fault-injecting HTTP proxy (in front of the server's `/blobs` URLs
in embedded mode, in front of moto in S3 mode) so that storage errors can be provoked for real:
`proxy.plan = ["500", ...]` answers the next part PUTs with 500 (after reading the body).
Stored objects are read back with `coursecrafter_worker.storage.open_storage` (local dir, or
moto directly, not through the proxy) and compared by SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from livesupport import (
    BIN,
    HttpFaultProxy,
    LiveServer,
    file_sha256,
    make_file,
    run_cli,
    start_live_server,
)

PASSWORD = "lecture hall 42"
MIB = 1024 * 1024


# --------------------------------------------------------------------------- the stack


@dataclass
class Stack:
    adapter: str
    server: LiveServer
    proxy: HttpFaultProxy
    storage_url: str
    s3_endpoint: str | None
    env: dict[str, str]  # alice, logged in with the real CLI
    bob_course: str  # a course of another instructor
    config_dir: Path

    def stored_sha256(self, video_id: str, kind: str = "video") -> str:
        from coursecrafter_worker.storage import open_storage

        storage = open_storage(self.storage_url, public_url="http://127.0.0.1:9",
                               secret="x" * 32, s3_endpoint_url=self.s3_endpoint)
        prefix = "attachments" if kind == "attachment" else "uploads"
        digest = hashlib.sha256()
        with storage.open_read(f"{prefix}/{video_id}/source") as fh:
            while chunk := fh.read(MIB):
                digest.update(chunk)
        return digest.hexdigest()


def _cli_env(server: LiveServer, config_dir: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("COURSECRAFTER_")},
        "COURSECRAFTER_API_URL": server.url,
        "COURSECRAFTER_CONFIG_DIR": str(config_dir),
        "COURSECRAFTER_CREDENTIAL_STORE": "file",
        "NO_COLOR": "1",
    }


def _account(env: dict[str, str], username: str) -> None:
    done = run_cli(env, "register", "--username", username, "--email", f"{username}@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    done = run_cli(env, "login", "--username", username, "--password-stdin",
                   stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def _other_instructors_course(server: LiveServer) -> str:
    """Bob and his course, made with the SDK in this process (cheaper than CLI processes)."""
    from coursecrafter_cli import Client, MemoryCredentialStore

    with Client(server.url, credential_store=MemoryCredentialStore()) as bob:
        bob.register("bob", "bob@example.edu", PASSWORD)
        bob.login("bob", PASSWORD)
        return str(bob.create_course("Bob's course")["id"])


@pytest.fixture(scope="module", params=["local", "s3"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    adapter = request.param
    base = tmp_path_factory.mktemp(f"upload-{adapter}")
    proxy = HttpFaultProxy()
    home = base / "server-home"
    if adapter == "local":
        storage_url = (home / "blobs").resolve().as_uri()
        s3_endpoint = None
        # The blob URLs the server signs point at the proxy, which forwards to the server.
        overrides = {"COURSECRAFTER_PUBLIC_URL": proxy.url}
    else:
        bucket = request.getfixturevalue("s3_bucket")
        s3_endpoint = request.getfixturevalue("moto_endpoint")
        storage_url = f"s3://{bucket}/{uuid.uuid4().hex[:12]}"
        proxy.forward_to(s3_endpoint)
        overrides = {"COURSECRAFTER_STORAGE_URL": storage_url,
                     "COURSECRAFTER_S3_ENDPOINT_URL": proxy.url}
    server = start_live_server(home, overrides)
    if adapter == "local":
        proxy.forward_to(server.url)
    try:
        env = _cli_env(server, base / "alice")
        _account(env, "alice")
        yield Stack(adapter, server, proxy, storage_url, s3_endpoint, env,
                    _other_instructors_course(server), base / "alice")
    finally:
        server.stop()
        proxy.close()


#: What `complete` leaves a video in: the server enqueues the transcoding job right away, and
#: the embedded in-process transcoder may already have picked it up.
AFTER_UPLOAD = {"uploaded", "queued", "processing"}


# --------------------------------------------------------------------------- tests


def test_upload_is_byte_identical_and_json_is_the_video_record(stack: Stack,
                                                               tmp_path: Path) -> None:
    course = run_cli(stack.env, "courses", "create", "Physics 101", "--json")
    assert course.returncode == 0, course.stderr
    course_id = json.loads(course.stdout)["id"]
    lecture = make_file(tmp_path / "lecture 1.mp4", 20 * MIB + 4321)

    done = run_cli(stack.env, "upload", str(lecture), "--course", course_id, "--title", "Week 1",
                   "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    video = json.loads(done.stdout)
    assert video["status"] in AFTER_UPLOAD
    assert (video["kind"], video["course_id"], video["title"], video["filename"],
            video["content_type"], video["size"]) == (
        "video", course_id, "Week 1", "lecture 1.mp4", "video/mp4", lecture.stat().st_size)
    assert stack.stored_sha256(video["id"]) == file_sha256(lecture)
    assert "uploaded 20.0 MiB in" in done.stderr
    assert not list((stack.config_dir / "uploads").glob("*.json"))  # no resume state left

    if stack.adapter == "local":  # API only: the same on both adapters
        status = run_cli(stack.env, "status", video["id"], "--json")
        assert status.returncode in (0, 5) and json.loads(status.stdout)["id"] == video["id"]
        listed = run_cli(stack.env, "videos", "list", "--course", course_id)
        assert listed.returncode == 0 and listed.stdout.startswith(video["id"])


def test_storage_errors_on_part_puts_are_retried(stack: Stack, tmp_path: Path) -> None:
    lecture = make_file(tmp_path / "retry.mp4", 17 * MIB, seed=11)  # 3 parts
    stack.proxy.plan = ["500", "500"]
    done = run_cli(stack.env, "upload", str(lecture), "--json")
    assert done.returncode == 0, done.stderr
    assert [p.action for p in stack.proxy.parts].count("500") == 2 and stack.proxy.plan == []
    assert len(re.findall(r"warning: part \d+: storage answered HTTP 500", done.stderr)) == 2
    video = json.loads(done.stdout)
    assert stack.stored_sha256(video["id"]) == file_sha256(lecture)


def _sign_requests(stack: Stack) -> float:
    """POST /uploads/{id}/parts requests the server has answered (its /metrics)."""
    text = httpx.get(f"{stack.server.url}/metrics", timeout=10).text
    route = 'route="/api/v1/uploads/{upload_id}/parts"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("coursecrafter_http_requests_total{")
               and 'method="POST"' in line and route in line)


def test_a_refused_part_url_is_signed_afresh_and_the_part_sent_again(stack: Stack,
                                                                     tmp_path: Path) -> None:
    lecture = make_file(tmp_path / "refused.mp4", 17 * MIB, seed=12)  # 3 parts, one batch
    before = _sign_requests(stack)
    stack.proxy.plan = ["403"]
    done = run_cli(stack.env, "upload", str(lecture), "--json")
    assert done.returncode == 0, done.stderr
    assert stack.proxy.plan == [] and "storage refused the URL (HTTP 403" in done.stderr
    assert _sign_requests(stack) == before + 1  # exactly one fresh URL, for that part
    video = json.loads(done.stdout)
    assert stack.stored_sha256(video["id"]) == file_sha256(lecture)


def test_attachment(stack: Stack, tmp_path: Path) -> None:
    slides = make_file(tmp_path / "slides.pdf", 300_000, seed=3)
    done = run_cli(stack.env, "upload", str(slides), "--attachment", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["kind"] == "attachment" and record["status"] == "ready"
    assert record["download_url"]
    assert stack.stored_sha256(record["id"], "attachment") == file_sha256(slides)


def test_refusals(stack: Stack, tmp_path: Path) -> None:
    if stack.adapter != "local":
        pytest.skip("refused before storage is involved: once is enough (run on local)")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    done = run_cli(stack.env, "upload", str(empty), "--json")
    assert done.returncode == 1 and done.stdout == ""
    assert "error:" in done.stderr and "empty" in done.stderr

    notes = make_file(tmp_path / "notes.txt", 1000)
    done = run_cli(stack.env, "upload", str(notes))
    assert done.returncode == 1
    assert "not a video or audio type" in done.stderr and "--attachment" in done.stderr

    done = run_cli(stack.env, "upload", str(make_file(tmp_path / "v.mp4", 1000)), "--course",
                   stack.bob_course)
    assert done.returncode == 1 and "course not found" in done.stderr


def test_upload_wait_follows_the_transcoder_to_failed(stack: Stack, tmp_path: Path) -> None:
    """`upload --wait` with the embedded in-process transcoder: random bytes are no video, so
    it ends `failed` and the command exits 5 with the server's message."""
    if stack.adapter != "local":
        pytest.skip("the transcoding pipeline is the same for both adapters; run on local")
    junk = make_file(tmp_path / "junk.mp4", 100_000, seed=9)
    done = run_cli(stack.env, "upload", str(junk), "--wait", "--interval", "0.2",
                   "--timeout", "60")
    assert done.returncode == 5, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Uploaded junk.mp4 as video ")
    assert "  failed: " in lines[1]
    assert "error: video " in done.stderr and " failed: " in done.stderr


@pytest.mark.slow
def test_sigkill_mid_upload_then_the_same_command_resumes(stack: Stack, tmp_path: Path) -> None:
    from coursecrafter_cli import Client, LocalCredentialStore

    big = make_file(tmp_path / "big lecture.mp4", 70 * MIB + 99, seed=5)  # 9 parts (8 MiB each, the last 6 MiB)
    args = ["upload", str(big), "--concurrency", "1", "--limit-rate", "32M", "--json"]
    states = stack.config_dir / "uploads"
    proc = subprocess.Popen([str(BIN / "coursecrafter"), *args], env=stack.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    parts_before_kill = 0
    try:
        store = LocalCredentialStore(stack.config_dir, backend="file")
        with Client(stack.server.url, credential_store=store) as sdk:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                found = list(states.glob("*.json"))
                if found:
                    state = json.loads(found[0].read_text())
                    listing = sdk.request_json("GET", f"/uploads/{state['upload_id']}/parts")
                    parts_before_kill = len(listing["parts"])
                    if parts_before_kill >= 1:
                        break
                time.sleep(0.05)
        assert proc.poll() is None, f"the upload ended before it could be killed: {proc.stderr}"
        assert parts_before_kill >= 1
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        stdout, _ = proc.communicate()
    assert proc.returncode == -signal.SIGKILL and stdout == ""
    [state_file] = states.glob("*.json")
    state = json.loads(state_file.read_text())

    again = run_cli(stack.env, *args)
    assert again.returncode == 0, again.stderr
    match = re.search(r"resuming upload (\w+): (\d+) of 9 part\(s\) already in storage",
                      again.stderr)
    assert match, again.stderr
    assert match.group(1) == state["upload_id"] and int(match.group(2)) >= parts_before_kill
    video = json.loads(again.stdout)
    assert video["id"] == state["video_id"] and video["status"] in AFTER_UPLOAD
    assert stack.stored_sha256(video["id"]) == file_sha256(big)
    assert not state_file.exists()

"""The instructor's whole job and automation tokens with the real `coursecrafter` command against
a real `coursecrafter-server` process (the embedded default: SQLite, local blobs, in-process
transcoders)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from livesupport import run_cli

from coursecrafter_worker.pipeline import find_ffmpeg

PASSWORD = "lecture hall 42"


def account(env: dict[str, str], username: str) -> None:
    done = run_cli(env, "register", "--username", username, "--email", f"{username}@example.edu",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    done = run_cli(env, "login", "--username", username, "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr


def ok_json(done: subprocess.CompletedProcess) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "lecture.mp4"
    subprocess.run(
        [find_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )
    return path


def test_the_instructors_job_from_the_cli(cli_env, live_server, tmp_path):
    bob_env = {**cli_env, "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "bob-config")}
    account(bob_env, "bob")
    bobs_course = ok_json(run_cli(bob_env, "courses", "create", "Bob's", "--json"))["id"]
    account(cli_env, "ada")
    course = ok_json(run_cli(cli_env, "courses", "create", "Algorithms", "--json"))["id"]
    slides = tmp_path / "slides.pdf"
    slides.write_bytes(b"%PDF-1.4 slides\n" * 100)
    attachment = ok_json(run_cli(cli_env, "upload", str(slides), "--course", course,
                                 "--attachment", "--json"))

    listed = run_cli(cli_env, "courses", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == f"{course}  draft  0 lectures, 1 attachment  Algorithms\n"
    assert ok_json(run_cli(cli_env, "courses", "publish", course, "--json"))["published"] is True
    assert ok_json(run_cli(cli_env, "courses", "list", "--json"))[0]["published"] is True
    assert run_cli(cli_env, "courses", "rename", course, "Algorithms II").stdout == \
        f"Renamed course {course}: Algorithms II\n"
    assert run_cli(cli_env, "courses", "unpublish", course).stdout.startswith("Unpublished")

    shown = run_cli(cli_env, "courses", "show", course)
    assert shown.returncode == 0, shown.stderr
    assert "Attachments:" in shown.stdout and attachment["id"] in shown.stdout

    renamed = ok_json(run_cli(cli_env, "videos", "rename", attachment["id"], "Week 1 slides",
                              "--json"))
    assert renamed["title"] == "Week 1 slides"
    opened = run_cli(cli_env, "open", attachment["id"], "--no-browser")
    assert opened.stdout == f"{live_server.url}/watch/{attachment['id']}\n"

    # Bob's course is not Ada's: an error, not "No videos yet."
    foreign = run_cli(cli_env, "videos", "list", "--course", bobs_course)
    assert foreign.returncode == 1 and "course not found" in foreign.stderr
    assert "No videos yet" not in foreign.stderr

    # No terminal: deleting needs --yes, and nothing is deleted without it.
    refused = run_cli(cli_env, "videos", "delete", attachment["id"])
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert run_cli(cli_env, "videos", "delete", attachment["id"], "--yes").returncode == 0
    assert run_cli(cli_env, "status", attachment["id"]).returncode == 1
    assert run_cli(cli_env, "courses", "delete", course, "--yes").returncode == 0
    assert ok_json(run_cli(cli_env, "courses", "list", "--json")) == []


@pytest.mark.slow
def test_an_upload_token_uploads_to_ready_without_a_login_and_nothing_more(
    cli_env, live_server, tmp_path, clip,
):
    account(cli_env, "ada")
    course = ok_json(run_cli(cli_env, "courses", "create", "Algorithms", "--json"))["id"]
    made = ok_json(run_cli(cli_env, "token", "create", "--name", "room 101", "--scope", "upload",
                           "--expires", "30d", "--json"))
    secret = made["token"]
    assert secret.startswith("cct_") and made["scope"] == "upload"

    # The capture machine: its own empty config dir, no login, only the token.
    machine = {**cli_env, "COURSECRAFTER_CONFIG_DIR": str(tmp_path / "machine"),
               "COURSECRAFTER_TOKEN": secret}
    assert run_cli({**machine, "COURSECRAFTER_TOKEN": ""}, "whoami").returncode == 4
    done = run_cli(machine, "upload", str(clip), "--course", course, "--title", "Week 1",
                   "--wait", "--json", timeout=300)
    assert done.returncode == 0, done.stderr
    video = json.loads(done.stdout)
    assert video["status"] == "ready" and video["course_id"] == course
    assert secret not in done.stdout + done.stderr

    # Nothing beyond its scope: no deleting a course, no publishing, no tokens.
    denied = run_cli(machine, "courses", "delete", course, "--yes")
    assert denied.returncode == 1 and "HTTP 403" in denied.stderr
    assert run_cli(machine, "courses", "publish", course).returncode == 1
    assert run_cli(machine, "token", "create", "--name", "more").returncode == 1
    assert ok_json(run_cli(cli_env, "courses", "list", "--json"))[0]["lecture_count"] == 1

    listed = run_cli(cli_env, "token", "list", "--json")
    tokens = ok_json(listed)
    assert [t["id"] for t in tokens] == [made["id"]] and tokens[0]["last_used_at"] is not None
    assert secret not in listed.stdout

    # The server keeps no plaintext: only the SHA-256, nowhere the secret.
    db = live_server.home / "coursecrafter.sqlite3"
    candidates = [db] if db.exists() else list(live_server.home.rglob("*.sqlite3"))
    with sqlite3.connect(candidates[0]) as conn:
        rows = conn.execute("SELECT * FROM api_tokens").fetchall()
    assert len(rows) == 1 and secret not in repr(rows) and secret[4:] not in repr(rows)
    for path in live_server.home.rglob("*"):
        if path.is_file():
            assert secret[4:].encode() not in path.read_bytes(), path

    assert run_cli(cli_env, "token", "revoke", made["id"]).returncode == 0
    revoked = run_cli(machine, "courses", "list")
    assert revoked.returncode == 4 and "expired or revoked" in revoked.stderr

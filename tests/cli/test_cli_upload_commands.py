"""`coursecrafter courses | upload | videos | status | wait | retry`, in-process with typer's
CliRunner, against the fake server + storage of upload_fakes."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result
from upload_fakes import MIB, FakeCourseCrafter

from coursecrafter_cli.commands import common
from coursecrafter_cli.commands.upload import parse_rate
from coursecrafter_cli.main import app

Invoke = Callable[..., Result]


@pytest.fixture
def fake() -> FakeCourseCrafter:
    return FakeCourseCrafter(part_size=MIB)


@pytest.fixture
def cli(fake: FakeCourseCrafter, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setattr(common, "transport_factory", lambda: fake)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture
def alice(cli: Invoke) -> Invoke:
    done = cli("login", "--username", "alice", "--password-stdin", input="s3cret-pass!\n")
    assert done.exit_code == 0, done.stderr
    return cli


def make_file(path: Path, size: int) -> Path:
    path.write_bytes(random.Random(size).randbytes(size))
    return path


@pytest.fixture
def lecture(tmp_path: Path) -> Path:
    return make_file(tmp_path / "lecture.mp4", 3 * MIB + 5)


def one_json(result: Result) -> object:
    assert result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- courses


def test_courses_create_and_list(alice: Invoke) -> None:
    made = alice("courses", "create", "Physics 101", "--description", "Mechanics", "--json")
    assert made.exit_code == 0, made.stderr
    course = one_json(made)
    assert course["title"] == "Physics 101" and course["description"] == "Mechanics"
    human = alice("courses", "create", "Chemistry")
    assert human.exit_code == 0 and human.stdout.startswith("Created course ")
    assert human.stdout.strip().endswith(": Chemistry")
    listed = alice("courses", "list", "--json")
    assert [c["title"] for c in one_json(listed)] == ["Physics 101", "Chemistry"]
    lines = alice("courses", "list").stdout.splitlines()
    assert lines[0] == f"{course['id']}  draft  0 lectures  Physics 101"


def test_courses_list_empty_and_logged_out(cli: Invoke, alice: Invoke) -> None:
    empty = alice("courses", "list")
    assert empty.exit_code == 0 and empty.stdout == "" and "No courses yet." in empty.stderr
    alice("logout")
    assert cli("courses", "list").exit_code == 4


# --------------------------------------------------------------------------- upload


def test_upload_json_prints_only_the_video_record(alice: Invoke, fake: FakeCourseCrafter,
                                                  lecture: Path) -> None:
    course = one_json(alice("courses", "create", "Physics", "--json"))
    done = alice("upload", str(lecture), "--course", course["id"], "--title", "Week 1", "--json")
    assert done.exit_code == 0, done.stderr
    video = one_json(done)
    assert video["status"] == "uploaded" and video["title"] == "Week 1"
    assert video["course_id"] == course["id"] and video["size"] == lecture.stat().st_size
    assert fake.assembled(fake.only_upload()) == lecture.read_bytes()
    assert "uploaded 3.0 MiB in" in done.stderr  # the summary line (stderr is not a terminal)


def test_upload_human_output_and_videos_list(alice: Invoke, lecture: Path) -> None:
    done = alice("upload", str(lecture), "-c", "2")
    assert done.exit_code == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("Uploaded lecture.mp4 as video ") and line.endswith(" (uploaded).")
    video_id = line.split()[4]
    listed = alice("videos", "list")
    assert listed.stdout == f"{video_id}  uploaded  lecture\n"
    assert one_json(alice("videos", "list", "--json"))[0]["id"] == video_id
    status = alice("status", video_id, "--json")
    assert status.exit_code == 0 and one_json(status)["id"] == video_id


def test_upload_attachment(alice: Invoke, tmp_path: Path) -> None:
    slides = make_file(tmp_path / "slides.pdf", 2000)
    done = alice("upload", str(slides), "--attachment", "--json")
    assert done.exit_code == 0, done.stderr
    assert one_json(done)["status"] == "ready" and one_json(done)["kind"] == "attachment"


def test_upload_refusals(alice: Invoke, fake: FakeCourseCrafter, cli: Invoke,
                         tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    done = alice("upload", str(empty), "--json")
    assert done.exit_code == 1 and done.stdout == ""
    assert "error:" in done.stderr and "empty" in done.stderr

    notes = make_file(tmp_path / "notes.txt", 10)
    done = alice("upload", str(notes))
    assert done.exit_code == 1 and "not a video or audio type" in done.stderr
    assert "--attachment" in done.stderr

    missing = alice("upload", str(tmp_path / "missing.mp4"))
    assert missing.exit_code == 2

    bad_rate = alice("upload", str(notes), "--limit-rate", "fast")
    assert bad_rate.exit_code == 2 and "--limit-rate" in bad_rate.stderr

    # Someone else's course: 404, as if it did not exist.
    bob_course = fake.courses["x"] = {"id": "x", "title": "Bob's", "description": "",
                                      "published": False}
    fake.course_owner["x"] = "bob"
    done = alice("upload", str(make_file(tmp_path / "v.mp4", 10)), "--course", bob_course["id"])
    assert done.exit_code == 1 and "course not found" in done.stderr


def test_upload_not_logged_in_exits_4(cli: Invoke, lecture: Path) -> None:
    done = cli("upload", str(lecture))
    assert done.exit_code == 4 and "login" in done.stderr


def test_ctrl_c_exits_130_and_the_same_command_resumes(alice: Invoke, fake: FakeCourseCrafter,
                                                       lecture: Path) -> None:
    fake.faults = {3: ["interrupt"]}
    done = alice("upload", str(lecture), "-c", "1", "--json")
    assert done.exit_code == 130 and done.stdout == ""
    assert "interrupted; run the same command again to resume" in done.stderr
    upload = fake.only_upload()
    assert sorted(upload.parts) == [1, 2]

    again = alice("upload", str(lecture), "-c", "1", "--json")
    assert again.exit_code == 0, again.stderr
    assert f"resuming upload {upload.id}: 2 of 4 part(s) already in storage" in again.stderr
    assert one_json(again)["id"] == upload.video_id
    assert fake.assembled(upload) == lecture.read_bytes()


def test_retried_part_warns_on_stderr(alice: Invoke, fake: FakeCourseCrafter,
                                      lecture: Path) -> None:
    fake.faults = {2: ["503"]}
    done = alice("upload", str(lecture), "--json")
    assert done.exit_code == 0, done.stderr
    assert "warning: part 2: storage answered HTTP 503" in done.stderr
    assert "attempt 2 of 7" in done.stderr


@pytest.mark.parametrize(("rate", "expected"), [("500K", 500 * 1024), ("20M", 20 * MIB),
                                                ("1.5MiB/s", 1.5 * MIB), ("1g", 1024**3),
                                                ("4096", 4096)])
def test_parse_rate(rate: str, expected: float) -> None:
    assert parse_rate(rate) == expected


@pytest.mark.parametrize("rate", ["", "fast", "10", "-5M"])
def test_parse_rate_refuses(rate: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(rate)


# --------------------------------------------------------------------------- --wait, wait, status, retry


def script_ready(fake: FakeCourseCrafter, video_id: str) -> None:
    fake.video_script[video_id] = [
        {"status": "queued"},
        {"status": "processing", "phase": "transcoding", "progress": 40},
        {"status": "ready", "phase": None, "progress": 100,
         "playback_url": "http://cdn.test/master.m3u8"},
    ]


def test_upload_wait_until_ready(alice: Invoke, fake: FakeCourseCrafter, lecture: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    real_complete = fake._complete

    def complete(upload, body):  # type: ignore[no-untyped-def]
        response = real_complete(upload, body)
        script_ready(fake, upload.video_id)
        return response

    monkeypatch.setattr(fake, "_complete", complete)
    done = alice("upload", str(lecture), "--wait", "--interval", "0.1", "--json")
    assert done.exit_code == 0, done.stderr
    video = one_json(done)
    assert video["status"] == "ready" and video["playback_url"].endswith("master.m3u8")
    assert "processing (transcoding)" in done.stderr  # a line per status change

    human = alice("status", video["id"])
    assert human.stdout.splitlines() == [f"{video['id']}  ready  lecture",
                                         "playback: http://cdn.test/master.m3u8"]


def test_upload_wait_until_playable_prints_when_and_where(
    alice: Invoke, fake: FakeCourseCrafter, lecture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_complete = fake._complete

    def complete(upload, body):  # type: ignore[no-untyped-def]
        response = real_complete(upload, body)
        fake.video_script[upload.video_id] = [
            {"status": "processing", "phase": "probing", "progress": 0, "playable": False},
            {"status": "processing", "phase": "transcoding", "progress": 3, "playable": True,
             "playback_url": "http://cdn.test/master.m3u8"},
        ]
        return response

    monkeypatch.setattr(fake, "_complete", complete)
    done = alice("upload", str(lecture), "--wait", "--until", "playable", "--interval", "0.1",
                 "--json")
    assert done.exit_code == 0, done.stderr
    video = one_json(done)
    assert video["status"] == "processing" and video["playable"] is True
    assert re.search(r"playable after \d+\.\d s: http://cdn.test/master.m3u8", done.stderr)

    human = alice("wait", video["id"], "--until", "playable", "--interval", "0.1")
    assert human.exit_code == 0, human.stderr
    assert human.stdout.splitlines() == [
        f"{video['id']}  processing (transcoding, 3%, playable)  lecture",
        "playable now: http://cdn.test/master.m3u8"]
    bad = alice("wait", video["id"], "--until", "soon")
    assert bad.exit_code == 2


def test_wait_failed_exits_5_and_retry_requeues(alice: Invoke, fake: FakeCourseCrafter,
                                                lecture: Path) -> None:
    video = one_json(alice("upload", str(lecture), "--json"))
    fake.video_script[video["id"]] = [
        {"status": "processing", "phase": "probing", "progress": 0},
        {"status": "failed", "error": {"code": "probe_failed",
                                       "message": "not a video FFmpeg can read"}},
    ]
    done = alice("wait", video["id"], "--interval", "0.1")
    assert done.exit_code == 5
    assert f"error: video {video['id']} failed: not a video FFmpeg can read" in done.stderr
    assert done.stdout.startswith(f"{video['id']}  failed: not a video FFmpeg can read")

    status = alice("status", video["id"], "--json")
    assert status.exit_code == 5 and one_json(status)["status"] == "failed"

    retried = alice("retry", video["id"], "--json")
    assert retried.exit_code == 0, retried.stderr
    assert one_json(retried)["status"] == "queued"
    again = alice("retry", video["id"])
    assert again.exit_code == 1 and "only a failed video" in again.stderr


def test_retry_with_wait(alice: Invoke, fake: FakeCourseCrafter, lecture: Path) -> None:
    video = one_json(alice("upload", str(lecture), "--json"))
    fake.videos[video["id"]]["status"] = "failed"
    script_ready(fake, video["id"])
    done = alice("retry", video["id"], "--wait", "--interval", "0.1", "--json")
    assert done.exit_code == 0, done.stderr
    assert one_json(done)["status"] == "ready"


def test_retry_on_a_server_without_it(alice: Invoke, fake: FakeCourseCrafter,
                                      lecture: Path) -> None:
    video = one_json(alice("upload", str(lecture), "--json"))
    fake.retry_supported = False
    done = alice("retry", video["id"])
    assert done.exit_code == 1 and "does not support retry" in done.stderr


def test_wait_timeout_exits_1(alice: Invoke, lecture: Path) -> None:
    video = one_json(alice("upload", str(lecture), "--json"))
    done = alice("wait", video["id"], "--timeout", "0.2", "--interval", "0.1")
    assert done.exit_code == 1 and "still uploaded after 0.2 s" in done.stderr


def test_status_of_an_unknown_video(alice: Invoke) -> None:
    done = alice("status", "nope")
    assert done.exit_code == 1 and "video not found" in done.stderr


def test_on_a_terminal_the_progress_bar_shows_bytes_rate_and_eta(
    alice: Invoke, lecture: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    from coursecrafter_cli.commands import upload as upload_command

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=120, color_system=None)
    monkeypatch.setattr(upload_command, "stderr_console", lambda: terminal)
    done = alice("upload", str(lecture), "--json")
    assert done.exit_code == 0, done.stderr
    drawn = screen.getvalue()
    assert "lecture.mp4" in drawn
    assert "3.0/3.0 MiB" in drawn  # bytes sent of the total
    assert re.search(r"\d+(\.\d+)? [kMG]?B/s", drawn), drawn  # rate
    assert re.search(r"\d:\d\d:\d\d", drawn), drawn  # time remaining
    assert json.loads(done.stdout)["status"]  # the JSON document still alone on stdout

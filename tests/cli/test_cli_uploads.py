"""The SDK's uploads (`Client.upload` and friends) against a fake server + storage transport."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from livesupport import file_sha256 as sha
from livesupport import make_file
from upload_fakes import MIB, FakeCourseCrafter, StoredPart, logged_in_client

from coursecrafter_cli import Client
from coursecrafter_cli.errors import APIError, NotFound, UploadError
from coursecrafter_cli.uploads import (
    FileIdentity,
    ResumeStore,
    RetryPolicy,
    UploadEvent,
    Uploader,
    guess_content_type,
)

FAST = RetryPolicy(attempts=4, initial=0.001, maximum=0.005, api_attempts=3)


@pytest.fixture
def fake() -> FakeCourseCrafter:  # overrides the auth-only fake of conftest
    return FakeCourseCrafter(part_size=MIB, first_batch=2)


@pytest.fixture
def client(fake: FakeCourseCrafter) -> Client:
    with logged_in_client(fake) as c:
        yield c


@pytest.fixture
def lecture(tmp_path: Path) -> Path:
    return make_file(tmp_path / "lecture.mp4", 5 * MIB + 12345)


def state_files(client: Client) -> list[Path]:
    d = client.config_dir / "uploads"
    return sorted(d.glob("*.json")) if d.exists() else []


class Events:
    def __init__(self) -> None:
        self.items: list[UploadEvent] = []

    def __call__(self, event: UploadEvent) -> None:
        self.items.append(event)

    def kinds(self) -> list[str]:
        return [e.kind for e in self.items if e.kind != "checksum_progress"]

    def of(self, kind: str) -> list[UploadEvent]:
        return [e for e in self.items if e.kind == kind]


# --------------------------------------------------------------------------- the happy path


def test_upload_sends_every_part_and_completes(client: Client, fake: FakeCourseCrafter,
                                               lecture: Path) -> None:
    events = Events()
    video = client.upload(lecture, title="Week 1", concurrency=3, on_event=events, retry=FAST)
    assert video["status"] == "uploaded" and video["title"] == "Week 1"
    upload = fake.only_upload()
    assert upload.status == "completed" and upload.part_count == 6
    assert hashlib.sha256(fake.assembled(upload)).hexdigest() == sha(lecture)
    created = fake.created[0]
    assert created == {"filename": "lecture.mp4", "size": lecture.stat().st_size,
                       "content_type": "video/mp4", "kind": "video", "title": "Week 1",
                       "sha256": sha(lecture)}
    # The first batch held 2 URLs: the rest were signed in further batches, each part once.
    assert fake.sign_requests and sorted(n for b in fake.sign_requests for n in b) == [3, 4, 5, 6]
    assert sorted(fake.puts_of(200)) == [1, 2, 3, 4, 5, 6]
    assert fake.put_active_max <= 3
    assert events.kinds() == ["checksum", "created", "completing", "completed"]
    assert state_files(client) == []  # deleted after success


def test_upload_of_a_course_attachment_with_options(client: Client, fake: FakeCourseCrafter,
                                                    tmp_path: Path) -> None:
    course = client.create_course("Physics", "Mechanics")
    assert client.list_courses() == [course]
    slides = make_file(tmp_path / "slides.pdf", 1000)
    video = client.upload(slides, course_id=course["id"], kind="attachment", checksum=False)
    assert video["status"] == "ready" and video["course_id"] == course["id"]
    assert "sha256" not in fake.created[0] and fake.created[0]["content_type"] == "application/pdf"
    assert client.list_videos(course["id"]) == [video]
    assert client.list_videos("other") == []
    assert client.get_video(video["id"])["id"] == video["id"]


def test_empty_file_is_refused_before_any_request(client: Client, fake: FakeCourseCrafter,
                                                  tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(UploadError, match="empty"):
        client.upload(empty)
    assert "POST /uploads" not in fake.api_calls


def test_missing_file_and_directory(client: Client, tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="no such file"):
        client.upload(tmp_path / "nope.mp4")
    with pytest.raises(UploadError, match="not a regular file"):
        client.upload(tmp_path)


def test_server_refusals_are_api_errors(client: Client, fake: FakeCourseCrafter,
                                        tmp_path: Path) -> None:
    notes = make_file(tmp_path / "notes.txt", 100)
    with pytest.raises(APIError) as info:
        client.upload(notes)
    assert info.value.status_code == 415
    with logged_in_client(fake, "bob") as bob:
        theirs = bob.create_course("Bob's")
    with pytest.raises(NotFound, match="course not found"):
        client.upload(make_file(tmp_path / "a.mp4", 10), course_id=theirs["id"])


def test_upload_needs_a_session(fake: FakeCourseCrafter, lecture: Path) -> None:
    from coursecrafter_cli import MemoryCredentialStore, NotLoggedIn

    with Client("http://127.0.0.1:8000", transport=fake,
                credential_store=MemoryCredentialStore()) as anon:
        with pytest.raises(NotLoggedIn):
            anon.upload(lecture)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a.mp4", "video/mp4"), ("a.MOV", "video/quicktime"), ("a.mkv", "video/x-matroska"),
     ("a.webm", "video/webm"), ("a.m4a", "audio/mp4"), ("a.mp3", "audio/mpeg"),
     ("a.pdf", "application/pdf"), ("a.pptx", "application/vnd.openxmlformats-officedocument."
                                    "presentationml.presentation"),
     ("a.unknownext", "application/octet-stream"), ("noext", "application/octet-stream")],
)
def test_guess_content_type(name: str, expected: str) -> None:
    assert guess_content_type(name) == expected


# --------------------------------------------------------------------------- retries


def test_part_retried_after_5xx_and_429_then_succeeds(client: Client, fake: FakeCourseCrafter,
                                                      lecture: Path) -> None:
    fake.faults = {2: ["500", "503"], 5: ["429"]}
    events = Events()
    video = client.upload(lecture, on_event=events, retry=FAST)
    assert video["status"] == "uploaded"
    assert [s for n, s in fake.puts if n == 2] == [500, 503, 200]
    assert [s for n, s in fake.puts if n == 5] == [429, 200]
    retries = events.of("retry")
    assert {e.data["part_number"] for e in retries} == {2, 5}
    assert any("HTTP 500" in e.message and "attempt 2 of 4" in e.message for e in retries)
    assert hashlib.sha256(fake.assembled(fake.only_upload())).hexdigest() == sha(lecture)


def test_403_gets_a_freshly_signed_url(client: Client, fake: FakeCourseCrafter,
                                       lecture: Path) -> None:
    fake.faults = {1: ["403"]}
    client.upload(lecture, concurrency=1, retry=FAST)
    assert [s for n, s in fake.puts if n == 1] == [403, 200]
    assert [1] in fake.sign_requests  # re-signed alone


def test_every_url_expired_mid_upload(client: Client, fake: FakeCourseCrafter,
                                      lecture: Path) -> None:
    def expire(event: UploadEvent) -> None:
        if event.kind == "created":
            fake.expire_urls()

    video = client.upload(lecture, concurrency=2, on_event=expire, retry=FAST)
    assert video["status"] == "uploaded"
    assert sorted(fake.puts_of(200)) == [1, 2, 3, 4, 5, 6]
    assert sorted(fake.puts_of(403)) == [1, 2]  # only the first batch was signed before


def test_short_lived_urls_are_re_signed_before_they_expire(tmp_path: Path) -> None:
    import time

    fake = FakeCourseCrafter(part_size=MIB, first_batch=32, url_ttl=1)
    lecture = make_file(tmp_path / "l.mp4", 4 * MIB)
    with logged_in_client(fake) as client:
        real = fake._storage

        def slow_storage(request: Any) -> Any:
            time.sleep(0.2)
            return real(request)

        fake._storage = slow_storage  # type: ignore[method-assign]
        client.upload(lecture, concurrency=1, checksum=False, retry=FAST)
    # URLs live 1 s and are re-signed after 0.5 s: some parts needed fresh ones, in batches
    # (never one request per part for every part, never a 403).
    assert fake.puts_of(403) == [] and sorted(fake.puts_of(200)) == [1, 2, 3, 4]
    assert 1 <= len(fake.sign_requests) <= 3


def test_etag_mismatch_sends_the_part_again(client: Client, fake: FakeCourseCrafter,
                                            lecture: Path) -> None:
    fake.faults = {3: ["bad_etag"]}
    events = Events()
    client.upload(lecture, on_event=events, retry=FAST)
    assert [s for n, s in fake.puts if n == 3] == [200, 200]
    assert any("ETag" in e.message for e in events.of("retry"))
    upload = fake.only_upload()
    assert upload.parts[3].etag.strip('"') == upload.parts[3].md5
    assert upload.status == "completed"


def test_connection_reset_mid_part_is_retried(client: Client, fake: FakeCourseCrafter,
                                              lecture: Path) -> None:
    fake.faults = {4: ["reset"]}
    client.upload(lecture, retry=FAST)
    assert [s for n, s in fake.puts if n == 4] == [-1, 200]
    assert [4] in fake.sign_requests  # a broken connection also gets a fresh URL
    assert hashlib.sha256(fake.assembled(fake.only_upload())).hexdigest() == sha(lecture)


def test_retries_exhausted_keeps_the_state_and_the_next_run_resumes(
        client: Client, fake: FakeCourseCrafter, lecture: Path) -> None:
    fake.faults = {3: ["500"] * 4}
    with pytest.raises(UploadError, match="part 3 of 6 failed after 4 attempts") as info:
        client.upload(lecture, concurrency=1, retry=FAST)
    assert info.value.resumable and "run the same command again" in info.value.message
    assert len(state_files(client)) == 1
    before = len(fake.puts)
    events = Events()
    video = client.upload(lecture, concurrency=1, on_event=events, retry=FAST)
    assert video["status"] == "uploaded"
    resumed = events.of("resumed")[0]
    assert resumed.data["parts_present"] == 2 and resumed.data["part_count"] == 6
    assert sorted(n for n, _ in fake.puts[before:]) == [3, 4, 5, 6]
    assert len(fake.uploads) == 1 and state_files(client) == []


def test_storage_losing_the_upload_ends_it_and_forgets_the_state(
        client: Client, fake: FakeCourseCrafter, lecture: Path) -> None:
    fake.faults = {1: ["404"]}
    with pytest.raises(UploadError, match="no longer has this upload") as info:
        client.upload(lecture, concurrency=1, retry=FAST)
    assert not info.value.resumable
    assert state_files(client) == []


def test_complete_refused_for_a_missing_part_sends_it_again(
        client: Client, fake: FakeCourseCrafter, lecture: Path) -> None:
    # Storage silently loses part 2 after accepting it: complete says 409 upload_incomplete.
    real_complete = fake._complete
    dropped: list[int] = []

    def complete(upload: Any, body: dict[str, Any]) -> Any:
        if not dropped:
            dropped.append(2)
            del upload.parts[2]
        return real_complete(upload, body)

    fake._complete = complete  # type: ignore[method-assign]
    events = Events()
    video = client.upload(lecture, on_event=events, retry=FAST)
    assert video["status"] == "uploaded"
    assert [s for n, s in fake.puts if n == 2] == [200, 200]
    assert events.kinds().count("completing") == 2


# --------------------------------------------------------------------------- resume


def interrupt_after_parts(fake: FakeCourseCrafter, part: int) -> None:
    fake.faults = {part: ["interrupt"]}


def test_interrupted_upload_resumes_skipping_what_storage_holds(
        client: Client, fake: FakeCourseCrafter, lecture: Path) -> None:
    interrupt_after_parts(fake, 4)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    [state_path] = state_files(client)
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_path.parent.stat().st_mode) == 0o700
    state = json.loads(state_path.read_text())
    upload = fake.only_upload()
    assert state["upload_id"] == upload.id and state["video_id"] == upload.video_id
    assert state["version"] == 1 and state["size"] == lecture.stat().st_size
    assert state["path"] == str(lecture.resolve()) and state["username"] == "alice"
    assert state["options"]["content_type"] == "video/mp4"
    text = state_path.read_text()
    assert not any(token in text for token in fake.auth.issued)  # no secrets in the state
    assert sorted(upload.parts) == [1, 2, 3]

    before = len(fake.puts)
    events = Events()
    progress: list[tuple[int, int]] = []
    video = client.upload(lecture, concurrency=2, on_event=events,
                          progress=lambda d, t: progress.append((d, t)), retry=FAST)
    assert video["status"] == "uploaded" and video["id"] == upload.video_id
    assert sorted(n for n, _ in fake.puts[before:]) == [4, 5, 6]
    assert fake.api_calls.count("POST /uploads") == 1
    assert "checksum" not in events.kinds()  # not needed to continue an upload
    [resumed] = events.of("resumed")
    assert "3 of 6 part(s) already in storage" in resumed.message
    assert progress[0][0] == 3 * MIB  # the parts already there count from the start
    assert hashlib.sha256(fake.assembled(upload)).hexdigest() == sha(lecture)
    assert state_files(client) == []


def test_resume_trusts_storage_not_the_state(client: Client, fake: FakeCourseCrafter,
                                            lecture: Path) -> None:
    interrupt_after_parts(fake, 3)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    upload = fake.only_upload()
    # Storage lost part 1 and holds a truncated part 2: both are sent again.
    del upload.parts[1]
    upload.parts[2] = StoredPart(10, "x", '"x"', b"0123456789")
    before = len(fake.puts)
    client.upload(lecture, concurrency=1, retry=FAST)
    assert sorted(n for n, _ in fake.puts[before:]) == [1, 2, 3, 4, 5, 6]
    assert hashlib.sha256(fake.assembled(upload)).hexdigest() == sha(lecture)


def test_resume_of_a_completed_upload_returns_the_video(client: Client, fake: FakeCourseCrafter,
                                                        lecture: Path) -> None:
    interrupt_after_parts(fake, 2)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    upload = fake.only_upload()
    upload.status = "completed"
    fake.videos[upload.video_id]["status"] = "queued"
    before = len(fake.puts)
    events = Events()
    video = client.upload(lecture, on_event=events, retry=FAST)
    assert video["id"] == upload.video_id and video["status"] == "queued"
    assert len(fake.puts) == before and "completed" in events.kinds()
    assert state_files(client) == []


@pytest.mark.parametrize("how", ["gone", "aborted"])
def test_resume_of_a_vanished_upload_starts_over(client: Client, fake: FakeCourseCrafter,
                                                 lecture: Path, how: str) -> None:
    interrupt_after_parts(fake, 2)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    old = fake.only_upload()
    if how == "gone":
        del fake.uploads[old.id]
    else:
        old.status = "aborted"
    events = Events()
    video = client.upload(lecture, on_event=events, retry=FAST)
    assert video["id"] != old.video_id
    assert "restarted" in events.kinds() and fake.api_calls.count("POST /uploads") == 2
    new = next(u for u in fake.uploads.values() if u.id != old.id)
    assert hashlib.sha256(fake.assembled(new)).hexdigest() == sha(lecture)


def test_resume_with_other_options_starts_a_new_upload(client: Client, fake: FakeCourseCrafter,
                                                       lecture: Path) -> None:
    interrupt_after_parts(fake, 2)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    old = fake.only_upload()
    course = client.create_course("Physics")
    video = client.upload(lecture, course_id=course["id"], retry=FAST)
    assert video["course_id"] == course["id"] and old.status == "aborted"


def test_a_changed_file_is_a_new_upload(client: Client, fake: FakeCourseCrafter,
                                        lecture: Path) -> None:
    interrupt_after_parts(fake, 2)
    with pytest.raises(KeyboardInterrupt):
        client.upload(lecture, concurrency=1, retry=FAST)
    with open(lecture, "r+b") as fh:
        fh.write(b"edited")
    os.utime(lecture, ns=(lecture.stat().st_atime_ns, lecture.stat().st_mtime_ns + 10**9))
    client.upload(lecture, retry=FAST)
    assert fake.api_calls.count("POST /uploads") == 2


def test_file_modified_during_the_upload_is_refused(client: Client, fake: FakeCourseCrafter,
                                                    lecture: Path) -> None:
    touched: list[bool] = []

    def touch(done: int, total: int) -> None:
        if not touched and done > 0:
            touched.append(True)
            st = lecture.stat()
            os.utime(lecture, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    with pytest.raises(UploadError, match="changed while it was being uploaded"):
        client.upload(lecture, progress=touch, retry=FAST)
    assert fake.only_upload().status == "active" and state_files(client) == []


def test_a_second_upload_of_the_same_file_waits_for_none(client: Client, lecture: Path) -> None:
    identity = FileIdentity.of(lecture)
    store = ResumeStore(client.config_dir / "uploads")
    with store.locked(identity.key(client.api_url, "alice")):
        with pytest.raises(UploadError, match="another coursecrafter upload of this file"):
            client.upload(lecture, retry=FAST)


def test_resume_state_is_keyed_by_server_and_user(client: Client, fake: FakeCourseCrafter,
                                                  lecture: Path) -> None:
    identity = FileIdentity.of(lecture)
    keys = {identity.key("http://a", "alice"), identity.key("http://b", "alice"),
            identity.key("http://a", "bob")}
    assert len(keys) == 3


def test_old_states_are_pruned(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path / "uploads")
    store.save("old", {"version": 1, "upload_id": "u", "video_id": "v"})
    store.save("new", {"version": 1, "upload_id": "u", "video_id": "v"})
    os.utime(store.path("old"), (1, 1))
    assert store.prune() == 1
    assert store.load("old") is None and store.load("new") is not None


# --------------------------------------------------------------------------- progress, memory


def test_progress_is_monotonic_and_reaches_the_total(client: Client, fake: FakeCourseCrafter,
                                                     lecture: Path) -> None:
    fake.faults = {2: ["reset", "500"], 4: ["bad_etag"]}
    calls: list[tuple[int, int]] = []
    lock = threading.Lock()

    def progress(done: int, total: int) -> None:
        with lock:
            calls.append((done, total))

    client.upload(lecture, concurrency=3, progress=progress, retry=FAST)
    size = lecture.stat().st_size
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and len(set(dones)) == len(dones)
    assert dones[-1] == size and all(t == size for _, t in calls)
    assert len(calls) > 6  # in-flight bytes count too, not only whole parts


def test_memory_stays_bounded_for_big_parts(tmp_path: Path) -> None:
    part = 8 * MIB
    fake = FakeCourseCrafter(part_size=part, keep_data=False)
    big = make_file(tmp_path / "big.mp4", 64 * MIB)
    with logged_in_client(fake) as client:
        tracemalloc.start()
        try:
            client.upload(big, concurrency=4, retry=FAST)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert fake.only_upload().status == "completed"
    assert fake.put_active_max == 4
    print(f"peak traced memory: {peak / MIB:.1f} MiB")
    assert peak < 3 * part, f"peak {peak / MIB:.1f} MiB"
    # In fact it does not grow with the part size: ~2 chunks of 1 MiB per thread.
    assert peak < 12 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_bandwidth_limit(client: Client, fake: FakeCourseCrafter, tmp_path: Path) -> None:
    import time

    small = make_file(tmp_path / "small.mp4", 4 * MIB)
    t0 = time.monotonic()
    client.upload(small, max_bandwidth=8 * MIB, checksum=False, concurrency=4, retry=FAST)
    # 4 chunks of 1 MiB at 8 MiB/s, all threads together: the last one starts at 0.375 s.
    assert time.monotonic() - t0 >= 0.35


def test_cancel_from_another_thread(client: Client, fake: FakeCourseCrafter,
                                    lecture: Path) -> None:
    uploader = Uploader(client, retry=FAST)

    def progress(done: int, total: int) -> None:
        if done >= 2 * MIB:
            uploader.cancel()

    with pytest.raises(UploadError, match="cancelled") as info:
        uploader.upload(lecture, concurrency=1, progress=progress)
    assert info.value.resumable and len(state_files(client)) == 1


# --------------------------------------------------------------------------- videos


def test_wait_for_video_follows_the_status(client: Client, fake: FakeCourseCrafter,
                                           tmp_path: Path) -> None:
    video = client.upload(make_file(tmp_path / "w.mp4", 100), retry=FAST)
    fake.video_script[video["id"]] = [
        {"status": "queued"},
        {"status": "processing", "phase": "probing", "progress": 0},
        {"status": "processing", "phase": "transcoding", "progress": 50},
        {"status": "ready", "phase": None, "progress": 100, "playback_url": "http://x/m.m3u8"},
    ]
    seen: list[str] = []
    final = client.wait_for_video(video["id"], poll_interval=0, sleep=lambda s: None,
                                  on_update=lambda v: seen.append(v["status"]))
    assert final["status"] == "ready" and seen == ["queued", "processing", "processing", "ready"]
    with pytest.raises(TimeoutError, match="still queued"):
        fake.videos[video["id"]]["status"] = "queued"
        client.wait_for_video(video["id"], poll_interval=0.01, timeout=0.05)


def test_wait_for_video_until_playable_returns_while_still_processing(
    client: Client, fake: FakeCourseCrafter, tmp_path: Path
) -> None:
    video = client.upload(make_file(tmp_path / "p.mp4", 100), retry=FAST)
    fake.video_script[video["id"]] = [
        {"status": "processing", "phase": "probing", "progress": 0, "playable": False},
        {"status": "processing", "phase": "transcoding", "progress": 5, "playable": True,
         "playback_url": "http://x/m.m3u8"},
        {"status": "ready", "phase": None, "progress": 100, "playable": True},
    ]
    early = client.wait_for_video(video["id"], poll_interval=0, sleep=lambda s: None,
                                  until="playable")
    assert early["status"] == "processing" and early["playable"] is True
    assert early["playback_url"] == "http://x/m.m3u8"
    # A failure ends the wait for playable too; an unknown target is refused up front.
    fake.video_script[video["id"]] = []
    fake.videos[video["id"]].update(status="failed", playable=False)
    assert client.wait_for_video(video["id"], poll_interval=0, sleep=lambda s: None,
                                 until="playable")["status"] == "failed"
    with pytest.raises(ValueError, match="until"):
        client.wait_for_video(video["id"], until="watchable")


def test_retry_video(client: Client, fake: FakeCourseCrafter, tmp_path: Path) -> None:
    video = client.upload(make_file(tmp_path / "r.mp4", 100), retry=FAST)
    fake.videos[video["id"]].update(status="failed",
                                    error={"code": "x", "message": "bad input"})
    assert client.retry_video(video["id"])["status"] == "queued"

"""The SDK as a program uses it (through ``httpx.MockTransport``): typed results that are still
the server's dicts, every failure a ``CourseCrafterError``, ``wait_for_video`` raising
``WaitTimeout`` / ``VideoFailed``, ``login(save=False)`` leaving the disk alone, warnings
logged (the CLI shows them), and ``AsyncClient`` running the same calls awaited."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import httpx
import keyring
import pytest
from cli_fakes import FakeAuthAPI
from keyring.backends import fail
from livesupport import make_file
from typer.testing import CliRunner
from upload_fakes import FakeCourseCrafter, logged_in_client

from coursecrafter_cli import (
    AsyncClient,
    Client,
    Course,
    CourseCrafterError,
    InvalidArgument,
    MemoryCredentialStore,
    NotLoggedIn,
    TransportError,
    User,
    Video,
    VideoFailed,
    WaitTimeout,
)
from coursecrafter_cli.main import app
from coursecrafter_cli.uploads import RetryPolicy

URL = "http://127.0.0.1:8000"
PASSWORD = "s3cret-pass!"
FAST = RetryPolicy(attempts=4, initial=0.001, maximum=0.005, api_attempts=3)


@pytest.fixture
def api() -> FakeCourseCrafter:
    return FakeCourseCrafter()


def no_wait(_: float) -> None:
    return None


# --------------------------------------------------------------------------- typed results


def test_results_are_typed_and_still_the_servers_json(api: FakeCourseCrafter,
                                                      tmp_path: Path) -> None:
    with logged_in_client(api) as cc:
        course = cc.create_course("Algorithms")
        assert isinstance(course, Course) and course.title == course["title"] == "Algorithms"
        assert course.created_at == datetime(2024, 5, 1, 10, 0, tzinfo=timezone.utc)
        video = cc.upload(make_file(tmp_path / "a.mp4", 100), course_id=course.id, retry=FAST)
        assert isinstance(video, Video) and video.course_id == course.id
        listed = cc.list_videos(course.id)
        assert [v.id for v in listed] == [video.id]
        # The dict form is exactly what the server sent: equal to it, and JSON as it was.
        raw = api.videos[video.id]
        assert listed[0] == raw and json.loads(json.dumps(listed[0])) == raw
        assert listed[0].to_dict() == raw and type(listed[0].to_dict()) is dict
        me = cc.whoami()
        assert isinstance(me, User) and me.username == me["username"] == "alice"


def test_a_record_of_the_wrong_shape_is_a_coursecrafter_error(api: FakeCourseCrafter) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/courses"):
            return httpx.Response(200, json={"not": "a list"})
        if request.url.path.endswith("/videos/v1"):
            return httpx.Response(200, json={"id": "v1", "size": "big"})
        return api.handle_request(request)

    with Client(URL, transport=httpx.MockTransport(handler),
                credential_store=MemoryCredentialStore()) as cc:
        cc.login("alice", PASSWORD)
        with pytest.raises(CourseCrafterError, match="list of Course"):
            cc.list_courses()
        with pytest.raises(CourseCrafterError, match=r"unexpected Video\.size: str"):
            cc.get_video("v1")


# --------------------------------------------------------------------------- the error tree


def test_bad_arguments_are_coursecrafter_errors_and_value_errors(
        api: FakeCourseCrafter, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="http"):
        Client("ftp://example.org")
    with logged_in_client(api) as cc:
        for call in (lambda: cc.wait_for_video("v", until="watchable"),
                     lambda: cc.upload(tmp_path / "x.mp4", kind="slides"),
                     lambda: cc.request("GET", "http://elsewhere.example/steal")):
            with pytest.raises(CourseCrafterError) as caught:
                call()
            assert isinstance(caught.value, ValueError)
    assert api.created == []  # refused before anything was sent


def test_unreachable_server_during_any_call_is_a_transport_error() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with Client(URL, transport=httpx.MockTransport(down), token="cct_x") as cc:
        with pytest.raises(TransportError, match="cannot reach"):
            cc.list_courses()


def test_wait_timeout_says_where_the_video_stands(api: FakeCourseCrafter, tmp_path: Path) -> None:
    with logged_in_client(api) as cc:
        video = cc.upload(make_file(tmp_path / "w.mp4", 100), retry=FAST)
        api.videos[video.id]["status"] = "queued"
        with pytest.raises(WaitTimeout) as caught:
            cc.wait_for_video(video.id, poll_interval=0, timeout=0, sleep=no_wait)
    error = caught.value
    assert isinstance(error, CourseCrafterError) and isinstance(error, TimeoutError)
    assert error.status == "queued" and error.video_id == video.id
    assert error.video is not None and error.video.status == "queued"
    assert str(error) == f"video {video.id} is still queued after 0 s"


def test_raise_on_failure_raises_video_failed_with_the_reason(api: FakeCourseCrafter,
                                                              tmp_path: Path) -> None:
    with logged_in_client(api) as cc:
        video = cc.upload(make_file(tmp_path / "f.mp4", 100), retry=FAST)
        api.video_script[video.id] = [
            {"status": "processing", "phase": "probing"},
            {"status": "failed", "error": {"code": "not_media", "message": "no video stream"}},
        ]
        with pytest.raises(VideoFailed) as caught:
            cc.wait_for_video(video.id, poll_interval=0, sleep=no_wait, raise_on_failure=True)
        failed = caught.value
        assert failed.code == "not_media" and failed.reason == "no video stream"
        assert failed.video.error is not None and failed.video.error.code == "not_media"
        assert str(failed) == f"video {video.id} failed: no video stream (not_media)"
        # Without the option the failed record is returned, as before.
        assert cc.wait_for_video(video.id, poll_interval=0, sleep=no_wait).failed


# --------------------------------------------------------------------------- login(save=False)


def test_login_without_saving_touches_no_disk_and_no_keyring(
        fake: FakeAuthAPI, tmp_path: Path, memory_keyring) -> None:
    config_dir = tmp_path / "never-made"
    transport = httpx.MockTransport(fake.handler)
    fake.expires_in = 0  # every call refreshes: the rotated tokens stay in memory too
    with Client(URL, config_dir=config_dir, transport=transport) as cc:
        assert cc.login("alice", PASSWORD, save=False) == {"username": "alice", "api_url": URL}
        assert cc.whoami().username == "alice"
        assert cc.whoami().username == "alice"
        assert fake.refresh_count == 2 and fake.reuse_detected == 0
        with Client(URL, config_dir=config_dir, transport=transport) as other:
            with pytest.raises(NotLoggedIn):
                other.whoami()  # nothing was saved for a later client
        assert cc.logout() is True
    assert not config_dir.exists() and memory_keyring.entries == {}


# --------------------------------------------------------------------------- warnings


@pytest.fixture
def no_keyring():
    keyring.set_keyring(fail.Keyring())


@pytest.mark.usefixtures("no_keyring")
def test_the_cli_shows_the_sdks_logged_warning_as_a_warning_line(
        fake: FakeAuthAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from coursecrafter_cli.commands import common

    monkeypatch.setattr(common, "transport_factory", lambda: httpx.MockTransport(fake.handler))
    done = CliRunner().invoke(app, ["login", "--username", "alice", "--password-stdin"],
                              input=PASSWORD + "\n")
    assert done.exit_code == 0, done.output
    assert "warning: no OS keyring available; storing the refresh token in" in done.stderr


# --------------------------------------------------------------------------- AsyncClient


def test_async_client_runs_the_same_calls_awaited(api: FakeCourseCrafter, tmp_path: Path) -> None:
    transport = httpx.MockTransport(api.handle_request)  # serves sync and async clients
    clip = make_file(tmp_path / "lecture.mp4", 3 * 1024 * 1024 + 5)

    async def main() -> tuple[Course, Video, Video, list[Video]]:
        async with AsyncClient(URL, transport=transport,
                               credential_store=MemoryCredentialStore()) as cc:
            await cc.login("alice", PASSWORD)
            course = await cc.create_course("Async")
            sent: list[int] = []
            video = await cc.upload(clip, course_id=course.id, concurrency=2, retry=FAST,
                                    progress=lambda done, total: sent.append(done))
            assert sent[-1] == clip.stat().st_size
            api.video_script[video.id] = [{"status": "processing"}, {"status": "ready"}]
            ready = await cc.wait_for_video(video.id, poll_interval=0, sleep=asyncio.sleep)
            listed, me = await asyncio.gather(cc.list_videos(course.id), cc.whoami())
            assert me.username == "alice"
            return course, video, ready, listed

    course, video, ready, listed = asyncio.run(main())
    assert video.course_id == course.id and ready.status == "ready"
    assert [v.id for v in listed] == [video.id]
    assert bytes(api.assembled(api.only_upload())) == clip.read_bytes()


def test_async_tasks_refresh_an_expired_session_once(fake: FakeAuthAPI) -> None:
    store = MemoryCredentialStore()
    transport = httpx.MockTransport(fake.handler)
    with Client(URL, transport=transport, credential_store=store) as cc:
        cc.login("alice", PASSWORD)
    fake.expire_access_tokens()

    async def network(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0)  # the other tasks run while this one waits, as on a network
        return fake.handler(request)

    async def main() -> list[User]:
        async with AsyncClient(URL, transport=httpx.MockTransport(network),
                               credential_store=store, refresh_margin=0) as cc:
            return list(await asyncio.gather(*(cc.whoami() for _ in range(8))))

    assert [u.username for u in asyncio.run(main())] == ["alice"] * 8
    assert fake.refresh_count == 1 and fake.reuse_detected == 0


def test_async_errors_are_the_same_tree(api: FakeCourseCrafter, tmp_path: Path) -> None:
    transport = httpx.MockTransport(api.handle_request)

    async def main() -> None:
        async with AsyncClient(URL, transport=transport,
                               credential_store=MemoryCredentialStore()) as cc:
            with pytest.raises(NotLoggedIn):
                await cc.list_courses()
            await cc.login("alice", PASSWORD)
            video = await cc.upload(make_file(tmp_path / "t.mp4", 100), retry=FAST)
            api.videos[video.id]["status"] = "queued"
            with pytest.raises(WaitTimeout, match="still queued"):
                await cc.wait_for_video(video.id, poll_interval=0, timeout=0)
            with pytest.raises(InvalidArgument):
                await cc.wait_for_video(video.id, until="soon")

    asyncio.run(main())


def test_async_upload_follows_the_clients_login(api: FakeCourseCrafter, tmp_path: Path) -> None:
    transport = httpx.MockTransport(api.handle_request)
    clip = make_file(tmp_path / "l.mp4", 100)

    async def main() -> None:
        for save in (True, False):
            async with AsyncClient(URL, transport=transport,
                                   credential_store=MemoryCredentialStore()) as cc:
                with pytest.raises(NotLoggedIn):
                    await cc.upload(clip, retry=FAST, resume=False)
                await cc.login("alice", PASSWORD, save=save)
                assert (await cc.upload(clip, retry=FAST, resume=False)).status == "uploaded"

    asyncio.run(main())

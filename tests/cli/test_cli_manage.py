"""The instructor's job from the SDK and the CLI: courses publish|unpublish|rename|delete|show,
`courses list` with states and lecture counts, videos rename|delete, `videos list --course` of a
course that is not yours, and `open`. Against the fake API of manage_fakes (MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from manage_fakes import ManageAPI
from typer.testing import CliRunner, Result

from coursecrafter_cli import Client, MemoryCredentialStore, NotFound, NotLoggedIn, PermissionDenied
from coursecrafter_cli.commands import common, manage
from coursecrafter_cli.main import app

URL = "http://127.0.0.1:8000"
PASSWORD = "s3cret-pass!"
Invoke = Callable[..., Result]


@pytest.fixture
def api() -> ManageAPI:
    fake = ManageAPI()
    fake.auth.add_user("alice", PASSWORD)
    fake.auth.add_user("bob", PASSWORD)
    return fake


@pytest.fixture
def client(api: ManageAPI) -> Client:
    cc = Client(URL, transport=httpx.MockTransport(api.handler),
                credential_store=MemoryCredentialStore())
    cc.login("alice", PASSWORD)
    return cc


@pytest.fixture
def cli(api: ManageAPI, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    monkeypatch.setattr(common, "transport_factory", lambda: httpx.MockTransport(api.handler))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, list(args), input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    done = invoke("login", "--username", "alice", "--password-stdin", input=PASSWORD + "\n")
    assert done.exit_code == 0, done.stderr
    return invoke


def one_json(result: Result) -> object:
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") == 1, result.stdout
    return json.loads(result.stdout)


# --------------------------------------------------------------------------- SDK


def test_sdk_publishes_renames_and_deletes_a_course(client: Client, api: ManageAPI) -> None:
    cid = api.course("Algorithms")
    assert client.publish_course(cid)["published"] is True
    assert api.courses[cid]["published"] is True
    assert client.unpublish_course(cid)["published"] is False
    assert client.rename_course(cid, "Algorithms II")["title"] == "Algorithms II"
    assert ("PATCH", f"/courses/{cid}", {"title": "Algorithms II"}) in api.requests
    assert client.get_course(cid)["title"] == "Algorithms II"
    assert client.delete_course(cid) is None
    assert cid not in api.courses
    with pytest.raises(NotFound, match="course not found"):
        client.publish_course(cid)


def test_sdk_renames_and_deletes_a_video_and_builds_the_watch_url(client: Client,
                                                                   api: ManageAPI) -> None:
    vid = api.video("lecture", api.course("Algorithms"))
    assert client.rename_video(vid, "Week 1")["title"] == "Week 1"
    assert client.watch_url(vid) == f"{URL}/watch/{vid}"
    assert client.watch_url("a/b") == f"{URL}/watch/a%2Fb"
    client.delete_video(vid)
    assert vid not in api.videos
    with pytest.raises(NotFound, match="video not found"):
        client.delete_video(vid)


def test_sdk_another_owners_objects_are_not_found(client: Client, api: ManageAPI) -> None:
    bobs = api.course("Bob's", owner="bob")
    bobs_video = api.video("bob's lecture", bobs, owner="bob")
    for call in (lambda: client.delete_course(bobs), lambda: client.list_videos(bobs),
                 lambda: client.rename_video(bobs_video, "mine"),
                 lambda: client.delete_video(bobs_video)):
        with pytest.raises(NotFound):
            call()
    assert bobs in api.courses and bobs_video in api.videos


def test_sdk_calls_need_a_session(api: ManageAPI) -> None:
    with Client(URL, transport=httpx.MockTransport(api.handler),
                credential_store=MemoryCredentialStore()) as cc:
        with pytest.raises(NotLoggedIn):
            cc.publish_course("c1")


# --------------------------------------------------------------------------- CLI: courses


def test_courses_list_shows_draft_or_published_and_lecture_counts(cli: Invoke,
                                                                 api: ManageAPI) -> None:
    algo = api.course("Algorithms", published=True)
    draft = api.course("Draft")
    api.video("w1", algo)
    api.video("w2", algo)
    api.video("slides", algo, kind="attachment")
    api.video("one", draft)
    listed = cli("courses", "list")
    assert listed.exit_code == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        f"{algo}  published  2 lectures, 1 attachment  Algorithms",
        f"{draft}  draft  1 lecture  Draft",
    ]
    records = one_json(cli("courses", "list", "--json"))
    assert [(c["id"], c["published"], c["lecture_count"]) for c in records] == [
        (algo, True, 2), (draft, False, 1)]


def test_courses_publish_unpublish_rename(cli: Invoke, api: ManageAPI) -> None:
    cid = api.course("Algorithms")
    done = cli("courses", "publish", cid)
    assert done.stdout == f"Published course {cid}: Algorithms\n" and api.courses[cid]["published"]
    assert one_json(cli("courses", "unpublish", cid, "--json"))["published"] is False
    renamed = cli("courses", "rename", cid, "Algorithms II")
    assert renamed.stdout == f"Renamed course {cid}: Algorithms II\n"
    assert api.courses[cid]["title"] == "Algorithms II"
    missing = cli("courses", "publish", "nope")
    assert missing.exit_code == 1 and missing.stdout == ""
    assert "course not found" in missing.stderr


def test_courses_show_lists_lectures_and_attachments(cli: Invoke, api: ManageAPI) -> None:
    cid = api.course("Algorithms")
    lecture = api.video("Week 1", cid)
    slides = api.video("Slides", cid, kind="attachment")
    shown = cli("courses", "show", cid)
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"{cid}  draft  Algorithms", "Lectures:", f"  {lecture}  ready  Week 1",
        "Attachments:", f"  {slides}  ready  Slides"]
    record = one_json(cli("courses", "show", cid, "--json"))
    assert record["course"]["id"] == cid
    assert [v["id"] for v in record["lectures"]] == [lecture]
    assert [v["id"] for v in record["attachments"]] == [slides]


def test_deleting_without_a_terminal_needs_yes(cli: Invoke, api: ManageAPI) -> None:
    cid = api.course("Algorithms")
    vid = api.video("Week 1", cid)
    for args in (("courses", "delete", cid), ("videos", "delete", vid)):
        refused = cli(*args)
        assert refused.exit_code == 2 and "--yes" in refused.stderr and refused.stdout == ""
    assert cid in api.courses and vid in api.videos
    assert not any(method == "DELETE" for method, _, _ in api.requests)
    assert cli("videos", "delete", vid, "--yes").stdout == f"Deleted video {vid}.\n"
    assert one_json(cli("courses", "delete", cid, "--yes", "--json")) == {"id": cid,
                                                                         "deleted": True}
    assert cid not in api.courses and vid not in api.videos


def test_deleting_on_a_terminal_asks_first(cli: Invoke, api: ManageAPI,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "_stdin_is_tty", lambda: True)
    vid = api.video("Week 1", api.course("Algorithms"))
    kept = cli("videos", "delete", vid, input="n\n")
    assert kept.exit_code == 1 and vid in api.videos
    assert f"Delete video {vid} (Week 1)?" in kept.stderr and "nothing was changed" in kept.stderr
    gone = cli("videos", "delete", vid, input="y\n")
    assert gone.exit_code == 0 and vid not in api.videos


# --------------------------------------------------------------------------- CLI: videos, open


def test_videos_rename(cli: Invoke, api: ManageAPI) -> None:
    vid = api.video("lecture", None)
    assert cli("videos", "rename", vid, "Week 1").stdout == f"Renamed video {vid}: Week 1\n"
    assert one_json(cli("videos", "rename", vid, "Week 2", "--json"))["title"] == "Week 2"
    assert api.videos[vid]["title"] == "Week 2"


def test_videos_list_of_another_owners_course_is_an_error(cli: Invoke, api: ManageAPI) -> None:
    bobs = api.course("Bob's", owner="bob")
    api.video("bob's lecture", bobs, owner="bob")
    listed = cli("videos", "list", "--course", bobs)
    assert listed.exit_code == 1 and listed.stdout == ""
    assert listed.stderr.startswith("error: course not found")
    assert "No videos yet" not in listed.stderr


def test_open_prints_the_watch_url_and_opens_a_browser_when_there_is_a_display(
    cli: Invoke, api: ManageAPI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    vid = api.video("Week 1", None)
    opened: list[str] = []
    monkeypatch.setattr(manage.webbrowser, "open", lambda url: opened.append(url) or True)
    monkeypatch.setenv("DISPLAY", ":0")
    done = cli("open", vid)
    assert done.exit_code == 0 and done.stdout == f"{URL}/watch/{vid}\n"
    assert opened == [f"{URL}/watch/{vid}"]

    assert cli("open", vid, "--no-browser").stdout == f"{URL}/watch/{vid}\n"
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert one_json(cli("open", vid, "--json")) == {"id": vid, "url": f"{URL}/watch/{vid}",
                                                    "opened": False}
    assert len(opened) == 1  # neither --no-browser nor a missing display opened one

    unknown = cli("open", "nope")
    assert unknown.exit_code == 1 and unknown.stdout == "" and "video not found" in unknown.stderr


# --------------------------------------------------------------------------- automation tokens


def test_sdk_makes_lists_and_revokes_tokens(client: Client, api: ManageAPI) -> None:
    made = client.create_token("capture box", scope="read", expires_in=None)
    assert made["token"].startswith("cct_") and made["scope"] == "read"
    assert ("POST", "/tokens", {"name": "capture box", "scope": "read", "expires_in": None}) \
        in api.requests
    listed = client.list_tokens()
    assert [t["id"] for t in listed] == [made["id"]] and "token" not in listed[0]
    client.revoke_token(made["id"])
    assert client.list_tokens() == []
    with pytest.raises(NotFound, match="token not found"):
        client.revoke_token(made["id"])


def test_sdk_with_a_token_sends_it_instead_of_the_session_and_never_refreshes(
    client: Client, api: ManageAPI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from coursecrafter_cli import AuthenticationError

    secret = client.create_token("ci")["token"]
    cid = api.course("Algorithms")
    api.requests.clear()
    with Client(URL, transport=httpx.MockTransport(api.handler), token=secret,
                credential_store=MemoryCredentialStore()) as bot:
        assert bot.uses_token and bot.username == "alice"
        assert [c["id"] for c in bot.list_courses()] == [cid]
        with pytest.raises(PermissionDenied):
            bot.delete_course(cid)
    # The environment variable works the same way, ahead of the stored session.
    monkeypatch.setenv("COURSECRAFTER_TOKEN", secret)
    with Client(URL, transport=httpx.MockTransport(api.handler),
                credential_store=MemoryCredentialStore()) as bot:
        assert bot.get_course(cid)["id"] == cid
        client.revoke_token(next(iter(api.tokens)))
        with pytest.raises(AuthenticationError, match="expired or revoked") as refused:
            bot.get_course(cid)
        assert secret not in str(refused.value) and secret not in repr(refused.value)
    assert not any(path == "/auth/refresh" for _, path, _ in api.requests)


def test_token_create_prints_the_secret_once_and_list_never(cli: Invoke, api: ManageAPI) -> None:
    made = cli("token", "create", "--name", "capture box")
    assert made.exit_code == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("cct_") and made.stdout.count("\n") == 1
    assert "not shown again" in made.stderr and secret not in made.stderr
    assert api.requests[-1][2] == {"name": "capture box", "scope": "upload",
                                   "expires_in": 90 * 86400}
    record = one_json(cli("token", "create", "--name", "ci", "--scope", "read",
                          "--expires", "never", "--json"))
    assert set(record) >= {"id", "name", "token", "expires_at", "scope"}
    assert record["scope"] == "read" and record["expires_at"] is None

    listed = cli("token", "list")
    assert listed.exit_code == 0 and secret not in listed.stdout
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("t1  capture box  upload  created 2026-11-30")
    assert lines[0].endswith("last used never")
    assert secret not in cli("token", "list", "--json").stdout

    assert cli("token", "revoke", "t1").stdout == "Revoked token t1.\n"
    assert one_json(cli("token", "revoke", "t2", "--json")) == {"id": "t2", "revoked": True}
    gone = cli("token", "revoke", "t1")
    assert gone.exit_code == 1 and "token not found" in gone.stderr


@pytest.mark.parametrize("bad", ["90", "soon", "0d", "-1d"])
def test_token_create_refuses_a_bad_expiry(cli: Invoke, bad: str) -> None:
    refused = cli("token", "create", "--name", "x", "--expires", bad)
    assert refused.exit_code == 2 and "--expires" in refused.stderr


def test_the_cli_uses_coursecrafter_token_and_says_when_it_is_revoked(
    cli: Invoke, api: ManageAPI, monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = cli("token", "create", "--name", "ci").stdout.strip()
    cid = api.course("Algorithms")
    cli("logout")
    monkeypatch.setenv("COURSECRAFTER_TOKEN", secret)
    listed = cli("courses", "list", "--json")
    assert [c["id"] for c in one_json(listed)] == [cid]
    denied = cli("courses", "delete", cid, "--yes")
    assert denied.exit_code == 1 and "HTTP 403" in denied.stderr and cid in api.courses
    api.tokens["t1"]["revoked"] = True
    refused = cli("courses", "list")
    assert refused.exit_code == 4
    assert "expired or revoked" in refused.stderr and secret not in refused.stderr

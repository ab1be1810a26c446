"""The store contract: every adapter (memory fake, SQLite, MongoDB) passes the same suite.

Datetimes in these tests are whole milliseconds (BSON dates keep no more), so a round trip must
give back an equal value in every adapter; `test_datetimes_come_back_utc_aware` covers finer ones.
Token expiries lie in the future of the real clock because MongoDB's TTL index (and mongomock's
imitation of it) removes expired tokens by itself.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import mongomock
import pytest
from pymongo import MongoClient

from coursecrafter_server.domain import (
    AlreadyExists,
    ApiToken,
    Course,
    Job,
    JobStatus,
    RefreshToken,
    Role,
    TokenScope,
    Upload,
    UploadStatus,
    User,
    Video,
    VideoKind,
    VideoStatus,
)
from coursecrafter_server.store import Store, open_store
from coursecrafter_server.store import mongo as mongo_module
from coursecrafter_server.store import sqlite as sqlite_module
from coursecrafter_server.store.memory import MemoryStore
from coursecrafter_server.store.mongo import MongoStore
from coursecrafter_server.store.sqlite import SQLiteStore

MONGODB_URL = os.environ.get("COURSECRAFTER_TEST_MONGODB_URL")
NOW = datetime.now(timezone.utc).replace(microsecond=123_000)  # whole milliseconds
THREADS = 8


# Fixtures ----------------------------------------------------------------------------------
@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        "mongomock",
        pytest.param(
            "mongodb",
            marks=[
                pytest.mark.mongodb,
                pytest.mark.skipif(
                    not MONGODB_URL,
                    reason="COURSECRAFTER_TEST_MONGODB_URL is not set: real MongoDB not tested",
                ),
            ],
        ),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    kind: str = request.param
    if kind == "memory":
        yield MemoryStore()
    elif kind == "sqlite":
        sqlite_store = SQLiteStore(tmp_path / "data" / "store.sqlite3")
        yield sqlite_store
        sqlite_store.close()
    elif kind == "mongomock":
        yield MongoStore(mongomock.MongoClient()["coursecrafter_test"])
    else:
        assert MONGODB_URL
        client: MongoClient[dict[str, object]] = MongoClient(
            MONGODB_URL, serverSelectionTimeoutMS=5000, tz_aware=True
        )
        name = f"coursecrafter_test_{uuid.uuid4().hex[:16]}"
        try:
            yield MongoStore(client[name])
        finally:
            client.drop_database(name)
            client.close()


@pytest.fixture
def thread_safe_store(store: Store) -> Store:
    if isinstance(store, MongoStore) and isinstance(store._db, mongomock.Database):
        pytest.skip(
            "mongomock is not atomic across threads: its update_one finds the document and"
            " then modifies it without holding a lock in between"
        )
    return store


def make_user(
    username: str = "Alice", email: str | None = None, role: Role = Role.INSTRUCTOR
) -> User:
    return User(
        id=uuid.uuid4().hex,
        username=username,
        email=email or f"{username.lower()}@example.com",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        role=role,
        created_at=NOW,
    )


def make_token(
    family_id: str = "family-a", *, expires_in: timedelta = timedelta(days=30)
) -> RefreshToken:
    return RefreshToken(
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        user_id="user-1",
        family_id=family_id,
        issued_at=NOW,
        expires_at=NOW + expires_in,
    )


def make_course(
    owner_id: str = "owner-1", title: str = "Algorithms", *, created_at: datetime = NOW
) -> Course:
    return Course(
        id=uuid.uuid4().hex,
        owner_id=owner_id,
        title=title,
        description=f"All about {title}",
        published=False,
        created_at=created_at,
        updated_at=created_at,
    )


def make_video(
    owner_id: str = "owner-1",
    course_id: str | None = None,
    *,
    status: VideoStatus = VideoStatus.AWAITING_UPLOAD,
    created_at: datetime = NOW,
) -> Video:
    """A video as POST /uploads creates it: only the defaults after `updated_at`."""
    return Video(
        id=uuid.uuid4().hex,
        owner_id=owner_id,
        course_id=course_id,
        kind=VideoKind.VIDEO,
        title="Lecture 1",
        filename="lecture-1.mp4",
        content_type="video/mp4",
        size=123_456_789,
        sha256=None,
        status=status,
        created_at=created_at,
        updated_at=created_at,
    )


def make_upload(
    *, status: UploadStatus = UploadStatus.ACTIVE, expires_at: datetime = NOW + timedelta(days=1)
) -> Upload:
    video_id = uuid.uuid4().hex
    return Upload(
        id=uuid.uuid4().hex,
        video_id=video_id,
        owner_id="owner-1",
        key=f"uploads/{video_id}/source",
        storage_upload_id="storage-" + uuid.uuid4().hex,
        size=50 * 2**20 + 7,
        part_size=16 * 2**20,
        part_count=4,
        status=status,
        created_at=expires_at - timedelta(days=1),  # a fixed lifetime, as the service grants
        expires_at=expires_at,
    )


def make_job(
    video_id: str = "video-1",
    *,
    status: JobStatus = JobStatus.PENDING,
    attempt: int = 1,
    created_at: datetime = NOW,
    updated_at: datetime | None = None,
    heartbeat_at: datetime | None = None,
    job_id: str | None = None,
) -> Job:
    return Job(
        id=job_id or uuid.uuid4().hex,
        video_id=video_id,
        attempt=attempt,
        status=status,
        created_at=created_at,
        updated_at=updated_at or created_at,
        heartbeat_at=heartbeat_at,
    )


def race(action: Callable[[int], object]) -> list[object]:
    """Run `action(i)` in THREADS threads released at the same instant; exceptions returned."""
    barrier = threading.Barrier(THREADS)

    def run(i: int) -> object:
        barrier.wait()
        try:
            return action(i)
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            return exc

    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(run, range(THREADS)))


# Contract: users ---------------------------------------------------------------------------
def test_ping(store: Store) -> None:
    store.ping()


def test_user_roundtrip_keeps_every_field(store: Store) -> None:
    users = [make_user(f"user{i}", role=role) for i, role in enumerate(Role)]
    for user in users:
        store.add_user(user)

    for user in users:
        assert store.get_user(user.id) == user
        assert store.get_user_by_username(user.username) == user
    fetched = store.get_user(users[0].id)
    assert fetched is not None
    assert isinstance(fetched.role, Role)
    assert fetched.created_at.utcoffset() == timedelta(0)
    assert store.count_users() == len(users)
    assert store.get_user("no-such-id") is None


def test_username_lookup_is_case_insensitive(store: Store) -> None:
    alice = make_user("Alice")
    emile = make_user("Émile", email="emile@example.com")
    store.add_user(alice)
    store.add_user(emile)

    assert store.get_user_by_username("alice") == alice
    assert store.get_user_by_username("ALICE") == alice
    assert store.get_user_by_username("éMILE") == emile  # beyond ASCII, as str.lower() says
    assert store.get_user_by_username("bob") is None


def test_duplicate_username_in_other_case_is_refused(store: Store) -> None:
    store.add_user(make_user("Alice", email="alice@example.com"))

    with pytest.raises(AlreadyExists, match="username"):
        store.add_user(make_user("aLICE", email="other@example.com"))
    assert store.count_users() == 1


def test_duplicate_email_in_other_case_is_refused(store: Store) -> None:
    store.add_user(make_user("Alice", email="alice@example.com"))

    with pytest.raises(AlreadyExists, match="email"):
        store.add_user(make_user("Bob", email="ALICE@Example.COM"))
    assert store.count_users() == 1


def test_username_is_named_when_both_clash(store: Store) -> None:
    store.add_user(make_user("Carol", email="shared@example.com"))
    store.add_user(make_user("Alice", email="alice@example.com"))

    with pytest.raises(AlreadyExists, match="username"):
        store.add_user(make_user("ALICE", email="Alice@example.com"))  # one account
    with pytest.raises(AlreadyExists, match="username"):
        store.add_user(make_user("alice", email="SHARED@example.com"))  # two accounts


def test_duplicate_user_id_is_refused(store: Store) -> None:
    alice = make_user("Alice")
    store.add_user(alice)

    with pytest.raises(AlreadyExists):
        store.add_user(dataclasses.replace(alice, username="bob", email="bob@example.com"))
    assert store.get_user(alice.id) == alice


def test_concurrent_registrations_of_one_name_admit_one(thread_safe_store: Store) -> None:
    outcomes = race(lambda i: thread_safe_store.add_user(make_user("Race", f"r{i}@example.com")))

    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None), outcomes
    assert thread_safe_store.count_users() == 1


def test_datetimes_come_back_utc_aware(store: Store) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2025, 3, 4, 5, 6, 7, 891_234, tzinfo=plus_two)
    user = dataclasses.replace(make_user(), created_at=created)
    store.add_user(user)

    fetched = store.get_user(user.id)
    assert fetched is not None
    assert fetched.created_at.tzinfo is not None
    if not isinstance(store, MemoryStore):  # the fake hands back the very object it was given
        assert fetched.created_at.utcoffset() == timedelta(0)
    # The same instant; an adapter may drop the sub-millisecond part (BSON), never add time.
    assert timedelta(0) <= created - fetched.created_at < timedelta(milliseconds=1)


# Contract: refresh tokens ------------------------------------------------------------------
def test_refresh_token_roundtrip(store: Store) -> None:
    fresh = make_token()
    spent = dataclasses.replace(
        make_token(), used_at=NOW + timedelta(minutes=1), revoked_at=NOW + timedelta(minutes=2)
    )
    store.add_refresh_token(fresh)
    store.add_refresh_token(spent)

    assert store.get_refresh_token(fresh.token_hash) == fresh
    assert store.get_refresh_token(spent.token_hash) == spent
    assert store.get_refresh_token("no-such-hash") is None


def test_duplicate_refresh_token_is_refused(store: Store) -> None:
    token = make_token()
    store.add_refresh_token(token)

    with pytest.raises(AlreadyExists):
        store.add_refresh_token(dataclasses.replace(token, family_id="family-b"))
    assert store.get_refresh_token(token.token_hash) == token


def test_mark_used_succeeds_once(store: Store) -> None:
    token = make_token()
    store.add_refresh_token(token)
    when = NOW + timedelta(minutes=5)

    assert store.mark_refresh_token_used(token.token_hash, when) is True
    assert store.mark_refresh_token_used(token.token_hash, when + timedelta(seconds=1)) is False
    stored = store.get_refresh_token(token.token_hash)
    assert stored is not None and stored.used_at == when
    assert store.mark_refresh_token_used("no-such-hash", when) is False


def test_mark_used_race_has_exactly_one_winner(thread_safe_store: Store) -> None:
    token = make_token()
    thread_safe_store.add_refresh_token(token)

    outcomes = race(lambda i: thread_safe_store.mark_refresh_token_used(token.token_hash, NOW))

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True]


def test_revoking_a_family_revokes_all_its_tokens_only(store: Store) -> None:
    family_a = [make_token("family-a") for _ in range(3)]
    other = make_token("family-b")
    for token in [*family_a, other]:
        store.add_refresh_token(token)
    store.mark_refresh_token_used(family_a[0].token_hash, NOW)
    when = NOW + timedelta(minutes=10)

    assert store.revoke_refresh_family("family-a", when) == 3

    for token in family_a:
        stored = store.get_refresh_token(token.token_hash)
        assert stored is not None and stored.revoked_at == when
    assert store.get_refresh_token(other.token_hash) == other
    assert store.is_refresh_family_revoked("family-a") is True
    assert store.is_refresh_family_revoked("family-b") is False
    # Again: nothing newly revoked, the first revocation time stays.
    assert store.revoke_refresh_family("family-a", when + timedelta(hours=1)) == 0
    stored = store.get_refresh_token(family_a[1].token_hash)
    assert stored is not None and stored.revoked_at == when


def test_family_revocation_covers_tokens_added_later(store: Store) -> None:
    assert store.revoke_refresh_family("family-z", NOW) == 0  # no tokens yet
    store.add_refresh_token(make_token("family-z"))

    assert store.is_refresh_family_revoked("family-z") is True
    assert store.is_refresh_family_revoked("family-never") is False


def test_delete_expired_removes_only_expired_tokens(store: Store) -> None:
    hour = timedelta(hours=1)
    early, boundary, late = (make_token(expires_in=n * hour) for n in (1, 2, 3))
    for token in (early, boundary, late):
        store.add_refresh_token(token)

    # Expired means expires_at <= now.
    assert store.delete_expired_refresh_tokens(NOW + 2 * hour) == 2

    assert store.get_refresh_token(early.token_hash) is None
    assert store.get_refresh_token(boundary.token_hash) is None
    assert store.get_refresh_token(late.token_hash) == late
    assert store.delete_expired_refresh_tokens(NOW + 2 * hour) == 0


# Contract: revoked access tokens --------------------------------------------------------------
def test_revocation_holds_until_it_expires(store: Store) -> None:
    hour = timedelta(hours=1)
    store.add_revocation("jti-1", NOW + hour)
    assert store.any_revoked(["jti-1"], NOW) is True
    assert store.any_revoked(["other", "jti-1"], NOW) is True  # any of several ids
    assert store.any_revoked(["other"], NOW) is False
    assert store.any_revoked([], NOW) is False
    # Expired means expires_at <= now: the token is dead anyway.
    assert store.any_revoked(["jti-1"], NOW + hour) is False


def test_revoking_again_keeps_the_later_expiry(store: Store) -> None:
    hour = timedelta(hours=1)
    store.add_revocation("fam:a", NOW + 2 * hour)
    store.add_revocation("fam:a", NOW + hour)
    assert store.any_revoked(["fam:a"], NOW + hour) is True
    store.add_revocation("fam:a", NOW + 3 * hour)
    assert store.any_revoked(["fam:a"], NOW + 2 * hour + timedelta(minutes=1)) is True


def test_delete_expired_revocations_removes_only_expired_ones(store: Store) -> None:
    hour = timedelta(hours=1)
    for n in (1, 2, 3):
        store.add_revocation(f"jti-{n}", NOW + n * hour)
    assert store.delete_expired_revocations(NOW + 2 * hour) == 2
    assert store.any_revoked(["jti-3"], NOW) is True
    assert store.any_revoked(["jti-1", "jti-2"], NOW) is False
    assert store.delete_expired_revocations(NOW + 2 * hour) == 0


# Contract: courses -------------------------------------------------------------------------
def test_course_roundtrip(store: Store) -> None:
    draft = make_course(title="Draft")
    published = dataclasses.replace(
        make_course(title="Live"), published=True, updated_at=NOW + timedelta(days=2)
    )
    store.add_course(draft)
    store.add_course(published)

    assert store.get_course(draft.id) == draft
    assert store.get_course(published.id) == published
    fetched = store.get_course(published.id)
    assert fetched is not None and fetched.published is True
    assert fetched.updated_at.utcoffset() == timedelta(0)
    assert store.get_course("no-such-id") is None


def test_duplicate_course_id_is_refused(store: Store) -> None:
    course = make_course()
    store.add_course(course)

    with pytest.raises(AlreadyExists):
        store.add_course(dataclasses.replace(course, title="Other"))
    assert store.get_course(course.id) == course


def test_courses_are_listed_per_owner_oldest_first(store: Store) -> None:
    second = make_course(title="Second", created_at=NOW + timedelta(minutes=1))
    first = make_course(title="First", created_at=NOW)
    third = make_course(title="Third", created_at=NOW + timedelta(minutes=2))
    theirs = make_course("owner-2", title="Theirs", created_at=NOW - timedelta(days=1))
    for course in (second, theirs, third, first):
        store.add_course(course)

    assert store.list_courses("owner-1") == [first, second, third]
    assert store.list_courses("owner-2") == [theirs]
    assert store.list_courses("owner-none") == []


def test_published_courses_of_every_owner_are_listed_oldest_first(store: Store) -> None:
    second = make_course("owner-2", "Databases", created_at=NOW + timedelta(seconds=1))
    first = make_course("owner-1", "Algorithms", created_at=NOW)
    draft = make_course("owner-1", "Draft", created_at=NOW - timedelta(seconds=1))
    for course in (second, first, draft):
        store.add_course(course)
    for course in (first, second):
        store.update_course(dataclasses.replace(course, published=True))

    assert [c.id for c in store.list_published_courses()] == [first.id, second.id]
    assert [c.id for c in store.list_published_courses(limit=1)] == [first.id]
    store.update_course(dataclasses.replace(first, published=False))
    assert [c.id for c in store.list_published_courses()] == [second.id]


def test_update_course_replaces_the_editable_fields(store: Store) -> None:
    course = make_course()
    store.add_course(course)
    later = NOW + timedelta(hours=1)

    store.update_course(
        dataclasses.replace(
            course, title="Renamed", description="", published=True, updated_at=later
        )
    )

    assert store.get_course(course.id) == dataclasses.replace(
        course, title="Renamed", description="", published=True, updated_at=later
    )


def test_update_course_keeps_owner_and_creation_time(store: Store) -> None:
    course = make_course()
    store.add_course(course)

    store.update_course(
        dataclasses.replace(course, owner_id="intruder", created_at=NOW + timedelta(days=9))
    )

    assert store.get_course(course.id) == course
    assert store.list_courses("intruder") == []


def test_update_of_a_missing_course_creates_nothing(store: Store) -> None:
    ghost = make_course()
    store.update_course(ghost)

    assert store.get_course(ghost.id) is None
    assert store.list_courses(ghost.owner_id) == []


def test_delete_course_keeps_its_videos_without_a_course(store: Store) -> None:
    doomed, kept = make_course(title="Doomed"), make_course(title="Kept")
    store.add_course(doomed)
    store.add_course(kept)
    orphans = [make_video(course_id=doomed.id) for _ in range(2)]
    survivor = make_video(course_id=kept.id)
    for video in (*orphans, survivor):
        store.add_video(video)

    assert store.delete_course(doomed.id) is True

    assert store.get_course(doomed.id) is None
    assert store.get_course(kept.id) == kept
    for video in orphans:  # only the course reference changes
        assert store.get_video(video.id) == dataclasses.replace(video, course_id=None)
    assert store.get_video(survivor.id) == survivor
    assert store.list_videos("owner-1", course_id=doomed.id) == []
    assert store.list_videos("owner-1", course_id=kept.id) == [survivor]
    assert store.delete_course(doomed.id) is False
    assert store.delete_course("no-such-id") is False


# Contract: videos --------------------------------------------------------------------------
def test_video_roundtrip_keeps_every_field(store: Store) -> None:
    ready = Video(
        id=uuid.uuid4().hex,
        owner_id="owner-1",
        course_id="course-1",
        kind=VideoKind.VIDEO,
        title="Lecture 2: Graphs",
        filename="lecture 2 (final).mov",
        content_type="video/quicktime",
        size=9_876_543_210,  # beyond 32 bits
        sha256="ab" * 32,
        status=VideoStatus.READY,
        created_at=NOW,
        updated_at=NOW + timedelta(minutes=7),
        progress=100,
        phase="uploading",
        error_code=None,
        error_message=None,
        duration=3723.456,
        width=1918,
        height=1080,
        renditions=(
            {"height": 1080, "bitrate": 5_000_000},
            {"height": 720, "bitrate": 2_800_000},
            {"height": 360, "bitrate": 800_000},
        ),
        playable=True,
        early_expires_at=NOW + timedelta(hours=6),
    )
    failed = dataclasses.replace(
        make_video(status=VideoStatus.FAILED),
        kind=VideoKind.ATTACHMENT,
        error_code="probe_failed",
        error_message="Not a video: no stream found ✗",
        phase="probing",
        progress=3,
    )
    fresh = make_video()  # every optional field at its default
    for video in (ready, failed, fresh):
        store.add_video(video)

    for video in (ready, failed, fresh):
        assert store.get_video(video.id) == video
    fetched = store.get_video(ready.id)
    assert fetched is not None
    assert isinstance(fetched.kind, VideoKind) and isinstance(fetched.status, VideoStatus)
    assert isinstance(fetched.duration, float) and fetched.duration == 3723.456
    assert isinstance(fetched.renditions, tuple) and fetched.renditions == ready.renditions
    assert fetched.created_at.utcoffset() == timedelta(0)
    assert fetched.updated_at.utcoffset() == timedelta(0)
    blank = store.get_video(fresh.id)
    assert blank is not None
    assert blank.renditions == () and isinstance(blank.renditions, tuple)
    assert (blank.course_id, blank.sha256, blank.duration, blank.width) == (None,) * 4
    assert blank.playable is False and blank.early_expires_at is None
    assert fetched.playable is True and fetched.early_expires_at == NOW + timedelta(hours=6)
    assert fetched.early_expires_at.utcoffset() == timedelta(0)
    assert store.get_video("no-such-id") is None


def test_list_videos_early_expired_gives_due_ones_oldest_first(store: Store) -> None:
    def add(seconds: int | None, status: VideoStatus = VideoStatus.READY) -> Video:
        video = dataclasses.replace(
            make_video(status=status), playable=True,
            early_expires_at=None if seconds is None else NOW + timedelta(seconds=seconds))
        store.add_video(video)
        return video

    later = add(20)
    sooner = add(10, VideoStatus.FAILED)
    add(None)  # no early outputs, or not yet due to go (still processing)
    due_now = add(50)
    add(51)  # not yet

    found = store.list_videos_early_expired(NOW + timedelta(seconds=50))
    assert [v.id for v in found] == [sooner.id, later.id, due_now.id]  # inclusive
    assert [v.id for v in store.list_videos_early_expired(NOW + timedelta(seconds=50),
                                                          limit=1)] == [sooner.id]
    assert store.list_videos_early_expired(NOW + timedelta(seconds=50), limit=0) == []
    # Cleared once swept: no longer listed.
    assert store.update_video(dataclasses.replace(sooner, early_expires_at=None))
    assert [v.id for v in store.list_videos_early_expired(NOW + timedelta(seconds=50))] == [
        later.id, due_now.id]


def test_duplicate_video_id_is_refused(store: Store) -> None:
    video = make_video()
    store.add_video(video)

    with pytest.raises(AlreadyExists):
        store.add_video(dataclasses.replace(video, title="Other"))
    assert store.get_video(video.id) == video


def test_videos_are_listed_per_owner_newest_first(store: Store) -> None:
    minute = timedelta(minutes=1)
    old = make_video(course_id="course-a", created_at=NOW)
    loose = make_video(course_id=None, created_at=NOW + minute)
    new = make_video(course_id="course-a", created_at=NOW + 2 * minute)
    other_course = make_video(course_id="course-b", created_at=NOW + 3 * minute)
    theirs = make_video("owner-2", course_id="course-a", created_at=NOW + 4 * minute)
    for video in (loose, theirs, new, other_course, old):
        store.add_video(video)

    assert store.list_videos("owner-1") == [other_course, new, loose, old]
    assert store.list_videos("owner-1", course_id="course-a") == [new, old]
    assert store.list_videos("owner-1", "course-b") == [other_course]
    assert store.list_videos("owner-2") == [theirs]
    assert store.list_videos("owner-2", "course-b") == []
    assert store.list_videos("owner-none") == []


def test_course_videos_of_every_uploader_are_listed_newest_first(store: Store) -> None:
    older = make_video("owner-1", "course-1", created_at=NOW)
    newer = make_video("admin-1", "course-1", created_at=NOW + timedelta(seconds=1))
    elsewhere = make_video("owner-1", "course-2", created_at=NOW)
    for video in (older, newer, elsewhere):
        store.add_video(video)

    assert [v.id for v in store.list_course_videos("course-1")] == [newer.id, older.id]
    assert store.list_course_videos("course-3") == []


def test_list_videos_in_status_filters_and_orders_by_updated_at(store: Store) -> None:
    def add(status: VideoStatus, seconds: int) -> Video:
        video = make_video(status=status, created_at=NOW + timedelta(seconds=seconds))
        store.add_video(video)
        return video

    late = add(VideoStatus.UPLOADED, 20)
    early = add(VideoStatus.UPLOADED, 10)
    queued = add(VideoStatus.QUEUED, 5)
    add(VideoStatus.READY, 1)
    fresh = add(VideoStatus.UPLOADED, 100)

    cutoff = NOW + timedelta(seconds=50)
    found = store.list_videos_in_status([VideoStatus.UPLOADED], updated_before=cutoff)
    assert [v.id for v in found] == [early.id, late.id]
    both = store.list_videos_in_status([VideoStatus.UPLOADED, VideoStatus.QUEUED],
                                       updated_before=cutoff, limit=2)
    assert [v.id for v in both] == [queued.id, early.id]
    assert fresh.id not in [v.id for v in store.list_videos_in_status(
        [VideoStatus.UPLOADED], updated_before=NOW + timedelta(seconds=100))]  # strict
    assert store.list_videos_in_status([], updated_before=cutoff) == []
    assert store.list_videos_in_status([VideoStatus.UPLOADED], updated_before=cutoff,
                                       limit=0) == []


def test_update_video_replaces_the_record(store: Store) -> None:
    video = make_video(course_id="course-a", status=VideoStatus.PROCESSING)
    store.add_video(video)
    done = dataclasses.replace(
        video,
        course_id="course-b",
        title="Renamed",
        status=VideoStatus.READY,
        updated_at=NOW + timedelta(minutes=3),
        progress=100,
        duration=61.5,
        width=640,
        height=360,
        renditions=({"height": 360, "bitrate": 800_000},),
    )

    assert store.update_video(done) is True
    assert store.get_video(video.id) == done
    assert store.update_video(done) is True  # unchanged values still count as written
    # And back: optional fields can be cleared again.
    assert store.update_video(video) is True
    assert store.get_video(video.id) == video


def test_update_video_compares_and_sets_the_status(store: Store) -> None:
    video = make_video(status=VideoStatus.UPLOADED)
    store.add_video(video)
    queued = dataclasses.replace(
        video, status=VideoStatus.QUEUED, updated_at=NOW + timedelta(minutes=1)
    )

    assert store.update_video(queued, expected_status=VideoStatus.UPLOADED) is True
    assert store.get_video(video.id) == queued
    # A second writer that read the old status loses, and changes nothing.
    stale = dataclasses.replace(video, status=VideoStatus.FAILED, error_code="x")
    assert store.update_video(stale, expected_status=VideoStatus.UPLOADED) is False
    assert store.get_video(video.id) == queued
    assert store.update_video(stale, expected_status=VideoStatus.QUEUED) is True
    assert store.get_video(video.id) == stale


def test_update_of_a_missing_video_writes_nothing(store: Store) -> None:
    ghost = make_video(status=VideoStatus.UPLOADED)

    assert store.update_video(ghost) is False
    assert store.update_video(ghost, expected_status=VideoStatus.UPLOADED) is False
    assert store.get_video(ghost.id) is None


def test_update_video_race_has_exactly_one_winner(thread_safe_store: Store) -> None:
    video = make_video(status=VideoStatus.UPLOADED)
    thread_safe_store.add_video(video)
    attempts = [
        dataclasses.replace(
            video, status=VideoStatus.QUEUED, updated_at=NOW + timedelta(milliseconds=i + 1)
        )
        for i in range(THREADS)
    ]

    outcomes = race(
        lambda i: thread_safe_store.update_video(
            attempts[i], expected_status=VideoStatus.UPLOADED
        )
    )

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes
    assert thread_safe_store.get_video(video.id) == attempts[outcomes.index(True)]


def test_delete_video(store: Store) -> None:
    video, other = make_video(), make_video()
    store.add_video(video)
    store.add_video(other)

    assert store.delete_video(video.id) is True
    assert store.get_video(video.id) is None
    assert store.list_videos("owner-1") == [other]
    assert store.delete_video(video.id) is False


# Contract: uploads -------------------------------------------------------------------------
def test_upload_roundtrip(store: Store) -> None:
    active = make_upload()
    done = make_upload(status=UploadStatus.COMPLETED)
    for upload in (active, done):
        store.add_upload(upload)

    for upload in (active, done):
        assert store.get_upload(upload.id) == upload
    fetched = store.get_upload(done.id)
    assert fetched is not None and isinstance(fetched.status, UploadStatus)
    assert fetched.expires_at.utcoffset() == timedelta(0)
    assert store.get_upload("no-such-id") is None


def test_duplicate_upload_id_is_refused(store: Store) -> None:
    upload = make_upload()
    store.add_upload(upload)

    with pytest.raises(AlreadyExists):
        store.add_upload(dataclasses.replace(upload, key="elsewhere"))
    assert store.get_upload(upload.id) == upload


def test_set_upload_status_compares_and_sets(store: Store) -> None:
    upload = make_upload()
    store.add_upload(upload)

    assert store.set_upload_status(
        upload.id, UploadStatus.COMPLETED, expected=UploadStatus.ACTIVE
    ) is True
    assert store.get_upload(upload.id) == dataclasses.replace(
        upload, status=UploadStatus.COMPLETED
    )
    # An abort that read "active" before the completion landed loses.
    assert store.set_upload_status(
        upload.id, UploadStatus.ABORTED, expected=UploadStatus.ACTIVE
    ) is False
    stored = store.get_upload(upload.id)
    assert stored is not None and stored.status is UploadStatus.COMPLETED
    assert store.set_upload_status(
        "no-such-id", UploadStatus.ABORTED, expected=UploadStatus.ACTIVE
    ) is False


def test_set_upload_status_race_has_exactly_one_winner(thread_safe_store: Store) -> None:
    upload = make_upload()
    thread_safe_store.add_upload(upload)
    targets = [UploadStatus.COMPLETED, UploadStatus.ABORTED] * (THREADS // 2)

    outcomes = race(
        lambda i: thread_safe_store.set_upload_status(
            upload.id, targets[i], expected=UploadStatus.ACTIVE
        )
    )

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes
    stored = thread_safe_store.get_upload(upload.id)
    assert stored is not None and stored.status is targets[outcomes.index(True)]


def test_list_expired_uploads_gives_active_expired_ones_oldest_first(store: Store) -> None:
    hour = timedelta(hours=1)
    oldest = make_upload(expires_at=NOW - 3 * hour)
    older = make_upload(expires_at=NOW - hour)
    boundary = make_upload(expires_at=NOW)  # expired means expires_at <= now
    live = make_upload(expires_at=NOW + hour)
    completed = make_upload(status=UploadStatus.COMPLETED, expires_at=NOW - 4 * hour)
    aborted = make_upload(status=UploadStatus.ABORTED, expires_at=NOW - 2 * hour)
    for upload in (boundary, completed, live, oldest, aborted, older):
        store.add_upload(upload)

    assert store.list_expired_uploads(NOW) == [oldest, older, boundary]
    assert store.list_expired_uploads(NOW, limit=2) == [oldest, older]
    assert store.list_expired_uploads(NOW, limit=0) == []
    assert store.list_expired_uploads(NOW - 5 * hour) == []
    assert store.list_expired_uploads(NOW + 2 * hour) == [oldest, older, boundary, live]
    # Once settled, an upload is no longer listed.
    store.set_upload_status(oldest.id, UploadStatus.ABORTED, expected=UploadStatus.ACTIVE)
    assert store.list_expired_uploads(NOW) == [older, boundary]


# Contract: jobs ----------------------------------------------------------------------------
def test_job_roundtrip(store: Store) -> None:
    pending = make_job()
    processing = make_job(
        "video-2",
        status=JobStatus.PROCESSING,
        attempt=3,
        updated_at=NOW + timedelta(minutes=2),
        heartbeat_at=NOW + timedelta(minutes=3),
    )
    for job in (pending, processing):
        store.add_job(job)

    for job in (pending, processing):
        assert store.get_job(job.id) == job
    fetched = store.get_job(processing.id)
    assert fetched is not None and isinstance(fetched.status, JobStatus)
    assert fetched.attempt == 3 and isinstance(fetched.attempt, int)
    assert fetched.heartbeat_at is not None and fetched.heartbeat_at.utcoffset() == timedelta(0)
    assert fetched.updated_at.utcoffset() == timedelta(0)
    blank = store.get_job(pending.id)
    assert blank is not None and blank.heartbeat_at is None
    assert store.get_job("no-such-id") is None


def test_duplicate_job_id_is_refused(store: Store) -> None:
    job = make_job()
    store.add_job(job)

    with pytest.raises(AlreadyExists):
        store.add_job(dataclasses.replace(job, video_id="video-other"))
    assert store.get_job(job.id) == job


def test_get_latest_job_gives_the_newest_created(store: Store) -> None:
    minute = timedelta(minutes=1)
    first = make_job(created_at=NOW, updated_at=NOW + 9 * minute)  # updated last, created first
    tie_a = make_job(created_at=NOW + minute, job_id="job-a")
    tie_b = make_job(created_at=NOW + minute, job_id="job-b")  # same instant: larger id wins
    theirs = make_job("video-2", created_at=NOW + 5 * minute)
    for job in (tie_b, first, theirs, tie_a):
        store.add_job(job)

    assert store.get_latest_job("video-1") == tie_b
    assert store.get_latest_job("video-2") == theirs
    assert store.get_latest_job("video-none") is None
    newest = make_job(created_at=NOW + 2 * minute)
    store.add_job(newest)
    assert store.get_latest_job("video-1") == newest


def test_update_job_replaces_the_record(store: Store) -> None:
    job = make_job(status=JobStatus.PUBLISHED)
    store.add_job(job)
    beating = dataclasses.replace(
        job,
        status=JobStatus.PROCESSING,
        updated_at=NOW + timedelta(minutes=1),
        heartbeat_at=NOW + timedelta(minutes=2),
    )

    assert store.update_job(beating) is True
    assert store.get_job(job.id) == beating
    assert store.update_job(beating) is True  # unchanged values still count as written
    # And back: the heartbeat can be cleared again.
    assert store.update_job(job) is True
    assert store.get_job(job.id) == job


def test_update_job_compares_and_sets_status_and_attempt(store: Store) -> None:
    job = make_job(status=JobStatus.PUBLISHED, attempt=1)
    store.add_job(job)
    started = dataclasses.replace(
        job, status=JobStatus.PROCESSING, updated_at=NOW + timedelta(minutes=1)
    )
    requeued = dataclasses.replace(
        job, status=JobStatus.PENDING, attempt=2, updated_at=NOW + timedelta(minutes=2)
    )

    # Either condition alone, and both together, must hold.
    assert store.update_job(started, expected_status=JobStatus.PENDING) is False
    assert store.update_job(started, expected_attempt=2) is False
    assert store.update_job(
        started, expected_status=JobStatus.PUBLISHED, expected_attempt=2
    ) is False
    assert store.update_job(
        started, expected_status=JobStatus.PENDING, expected_attempt=1
    ) is False
    assert store.get_job(job.id) == job
    assert store.update_job(
        started, expected_status=JobStatus.PUBLISHED, expected_attempt=1
    ) is True
    assert store.get_job(job.id) == started
    # An event of the old attempt arriving after the re-queue loses.
    assert store.update_job(requeued, expected_attempt=1) is True
    late = dataclasses.replace(started, status=JobStatus.DONE)
    assert store.update_job(late, expected_attempt=1) is False
    assert store.update_job(late, expected_status=JobStatus.PROCESSING) is False
    assert store.get_job(job.id) == requeued
    assert store.update_job(late, expected_status=JobStatus.PENDING) is True
    assert store.get_job(job.id) == late


def test_update_of_a_missing_job_writes_nothing(store: Store) -> None:
    ghost = make_job()

    assert store.update_job(ghost) is False
    assert store.update_job(ghost, expected_status=JobStatus.PENDING, expected_attempt=1) is False
    assert store.get_job(ghost.id) is None
    assert store.get_latest_job(ghost.video_id) is None


def test_update_job_race_has_exactly_one_winner(thread_safe_store: Store) -> None:
    job = make_job(status=JobStatus.PROCESSING, attempt=1)
    thread_safe_store.add_job(job)
    attempts = [
        dataclasses.replace(
            job, status=JobStatus.PENDING, attempt=2, updated_at=NOW + timedelta(milliseconds=i + 1)
        )
        for i in range(THREADS)
    ]

    outcomes = race(lambda i: thread_safe_store.update_job(attempts[i], expected_attempt=1))

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes
    assert thread_safe_store.get_job(job.id) == attempts[outcomes.index(True)]


def test_list_jobs_filters_and_orders_by_updated_at(store: Store) -> None:
    minute = timedelta(minutes=1)
    pending = make_job(status=JobStatus.PENDING, updated_at=NOW - 3 * minute)
    published = make_job(status=JobStatus.PUBLISHED, updated_at=NOW - 2 * minute)
    boundary = make_job(status=JobStatus.PENDING, updated_at=NOW)  # "before" is strict
    # Updated long ago, but its heartbeat is fresh: alive.
    alive = make_job(
        status=JobStatus.PROCESSING, updated_at=NOW - 10 * minute, heartbeat_at=NOW - minute
    )
    # No heartbeat yet: its updated_at stands in for one.
    silent = make_job(status=JobStatus.PROCESSING, updated_at=NOW - 5 * minute)
    stale = make_job(
        status=JobStatus.PROCESSING, updated_at=NOW - 4 * minute, heartbeat_at=NOW - 3 * minute
    )
    done = make_job(status=JobStatus.DONE, updated_at=NOW - 20 * minute)
    failed = make_job(status=JobStatus.FAILED, updated_at=NOW - 20 * minute)  # tie: by id
    for job in (stale, done, boundary, alive, pending, failed, silent, published):
        store.add_job(job)
    outbox = [JobStatus.PENDING, JobStatus.PUBLISHED]

    assert store.list_jobs(outbox) == [pending, published, boundary]
    assert store.list_jobs(outbox, updated_before=NOW) == [pending, published]
    assert store.list_jobs(outbox, updated_before=NOW - 2 * minute) == [pending]
    assert store.list_jobs([JobStatus.PUBLISHED]) == [published]
    assert store.list_jobs([JobStatus.PROCESSING]) == [alive, silent, stale]
    assert store.list_jobs([JobStatus.PROCESSING], heartbeat_before=NOW - 2 * minute) == [
        silent,
        stale,
    ]
    assert store.list_jobs([JobStatus.PROCESSING], heartbeat_before=NOW - 3 * minute) == [silent]
    assert store.list_jobs([JobStatus.PROCESSING], heartbeat_before=NOW) == [alive, silent, stale]
    # Both filters at once must both hold.
    assert store.list_jobs(
        [JobStatus.PROCESSING], updated_before=NOW - 6 * minute, heartbeat_before=NOW
    ) == [alive]
    assert store.list_jobs(
        [JobStatus.PROCESSING], updated_before=NOW - 6 * minute, heartbeat_before=NOW - minute
    ) == []
    assert store.list_jobs([JobStatus.DONE, JobStatus.FAILED]) == sorted(
        [done, failed], key=lambda j: j.id
    )
    assert store.list_jobs([JobStatus.PROCESSING], limit=2) == [alive, silent]
    assert store.list_jobs([JobStatus.PROCESSING], limit=0) == []
    assert store.list_jobs([JobStatus.PROCESSING], limit=-1) == []
    assert store.list_jobs([]) == []
    # Once moved on, a job leaves the list.
    assert store.update_job(
        dataclasses.replace(pending, status=JobStatus.PUBLISHED, updated_at=NOW + minute),
        expected_status=JobStatus.PENDING,
    ) is True
    assert store.list_jobs([JobStatus.PENDING]) == [boundary]


# Contract: webhook events ------------------------------------------------------------------
def test_record_event_is_true_only_the_first_time(store: Store) -> None:
    assert store.record_event("evt-1", NOW) is True
    assert store.record_event("evt-1", NOW + timedelta(seconds=1)) is False
    assert store.record_event("evt-2", NOW) is True
    assert store.record_event("evt-2", NOW) is False


def test_record_event_race_has_exactly_one_winner(thread_safe_store: Store) -> None:
    outcomes = race(lambda i: thread_safe_store.record_event("evt-race", NOW))

    assert sorted(outcomes, key=str) == [False] * (THREADS - 1) + [True], outcomes


def test_counts_by_status(store: Store) -> None:
    assert store.count_videos_by_status() == {} and store.count_jobs_by_status() == {}
    for status in (VideoStatus.READY, VideoStatus.READY, VideoStatus.FAILED):
        store.add_video(make_video(status=status))
    store.add_job(make_job(status=JobStatus.PROCESSING))
    store.add_job(make_job(status=JobStatus.DONE))
    store.add_job(make_job(status=JobStatus.DONE))
    assert store.count_videos_by_status() == {VideoStatus.READY: 2, VideoStatus.FAILED: 1}
    assert store.count_jobs_by_status() == {JobStatus.PROCESSING: 1, JobStatus.DONE: 2}


def test_has_event_tells_whether_an_id_was_recorded(store: Store) -> None:
    assert store.has_event("evt-1") is False
    store.record_event("evt-1", NOW)
    assert store.has_event("evt-1") is True
    assert store.has_event("evt-2") is False


def test_delete_events_before_removes_only_older_ones(store: Store) -> None:
    hour = timedelta(hours=1)
    # Recent times: MongoDB's TTL index (and mongomock's imitation) forgets old events itself.
    for event_id, received_at in (("old", NOW - 2 * hour), ("boundary", NOW - hour), ("new", NOW)):
        assert store.record_event(event_id, received_at) is True

    assert store.delete_events_before(NOW - hour) == 1  # "before" is strict

    assert store.record_event("boundary", NOW) is False
    assert store.record_event("new", NOW) is False
    assert store.record_event("old", NOW) is True  # forgotten, so new again
    assert store.delete_events_before(NOW - hour) == 0
    assert store.delete_events_before(NOW + hour) == 3


# MongoDB specifics ------------------------------------------------------------------------
def test_mongo_store_accepts_a_tz_aware_client() -> None:
    store = MongoStore(mongomock.MongoClient(tz_aware=True)["coursecrafter_test"])
    user = make_user()
    store.add_user(user)

    assert store.get_user(user.id) == user


def test_mongo_store_creates_its_indexes_at_start_up() -> None:
    database = mongomock.MongoClient()["coursecrafter_test"]
    MongoStore(database)
    MongoStore(database)  # idempotent: every server runs it at start-up

    def keys(collection: str) -> list[list[tuple[str, int]]]:
        return [index["key"] for index in database[collection].index_information().values()]

    assert [("owner_id", 1), ("created_at", 1)] in keys("courses")
    assert [("owner_id", 1), ("created_at", 1)] in keys("videos")
    assert [("course_id", 1)] in keys("videos")
    assert [("status", 1), ("updated_at", 1)] in keys("videos")
    assert [("published", 1), ("created_at", 1)] in keys("courses")
    assert [("status", 1), ("expires_at", 1)] in keys("uploads")
    assert [("video_id", 1)] in keys("uploads")
    ttl = [i for i in database["uploads"].index_information().values() if "expireAfterSeconds" in i]
    assert ttl == []  # expired uploads must stay until they are listed and aborted
    assert [("status", 1), ("updated_at", 1)] in keys("jobs")
    assert [("video_id", 1), ("created_at", 1)] in keys("jobs")
    ttl = [i for i in database["jobs"].index_information().values() if "expireAfterSeconds" in i]
    assert ttl == []  # jobs are the outbox: never dropped behind the sweeper's back
    events = database["webhook_events"].index_information().values()
    assert [i["expireAfterSeconds"] for i in events if i["key"] == [("received_at", 1)]] == [
        mongo_module.WEBHOOK_EVENT_TTL_SECONDS
    ]


def test_mongo_keys_webhook_events_by_id() -> None:
    database = mongomock.MongoClient()["coursecrafter_test"]
    store = MongoStore(database)
    store.record_event("evt-1", NOW)

    assert database["webhook_events"].find_one({"_id": "evt-1"}) is not None


def test_mongo_stores_renditions_as_an_array() -> None:
    database = mongomock.MongoClient()["coursecrafter_test"]
    store = MongoStore(database)
    video = dataclasses.replace(make_video(), renditions=({"height": 720, "bitrate": 2_800_000},))
    store.add_video(video)

    doc = database["videos"].find_one({"_id": video.id})
    assert doc is not None and doc["renditions"] == [{"height": 720, "bitrate": 2_800_000}]


# SQLite specifics -------------------------------------------------------------------------
def test_sqlite_file_is_private_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "coursecrafter.sqlite3"
    store = SQLiteStore(path)
    store.add_user(make_user())

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    wal = path.with_name(path.name + "-wal")
    assert wal.exists() and stat.S_IMODE(wal.stat().st_mode) == 0o600
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


WRITER = """
import sys
from datetime import datetime, timezone
from coursecrafter_server.domain import Role, User
from coursecrafter_server.store.sqlite import SQLiteStore

path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SQLiteStore(path)
print("ready", flush=True)
sys.stdin.readline()  # start writing together with the other process
for i in range(count):
    store.add_user(User(
        id=f"{prefix}-{i}", username=f"{prefix}-user-{i}", email=f"{prefix}-{i}@example.com",
        password_hash="x", role=Role.STUDENT, created_at=datetime.now(timezone.utc),
    ))
    store.get_user_by_username(f"{prefix}-user-{i}")
store.close()
"""


def test_sqlite_two_processes_write_concurrently(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"  # not created yet: both processes race to migrate it
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), prefix, "200"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("p1", "p2")
    ]
    try:
        for writer in writers:
            assert writer.stdout is not None
            assert writer.stdout.readline().strip() == "ready", writer.stderr
        for writer in writers:
            assert writer.stdin is not None
            writer.stdin.write("go\n")
            writer.stdin.flush()
        results = [writer.communicate(timeout=60) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()

    for writer, (_, stderr) in zip(writers, results, strict=True):
        assert "locked" not in stderr
        assert writer.returncode == 0, stderr
    store = SQLiteStore(path)
    assert store.count_users() == 400
    store.close()


def test_sqlite_reopen_keeps_data_and_runs_only_new_migrations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    user = make_user()
    first = SQLiteStore(path)
    first.add_user(user)
    first.close()

    # A later release appends a migration; its INSERT shows how many times it ran.
    probe = ("CREATE TABLE probe (n INTEGER)", "INSERT INTO probe VALUES (1)")
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", [*sqlite_module.MIGRATIONS, probe])
    for _ in range(2):
        reopened = SQLiteStore(path)
        assert reopened.get_user(user.id) == user
        reopened.close()

    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS)
        assert raw.execute("SELECT COUNT(*) FROM probe").fetchone()[0] == 1


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA user_version = 999")

    with pytest.raises(RuntimeError, match="newer"):
        SQLiteStore(path)


def test_sqlite_closed_store_refuses_use(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store.sqlite3")
    store.close()

    with pytest.raises(RuntimeError, match="closed"):
        store.ping()


def _index_columns(raw: sqlite3.Connection, table: str) -> list[tuple[str, ...]]:
    names = [row[1] for row in raw.execute(f"PRAGMA index_list({table})")]
    return [tuple(r[2] for r in raw.execute(f"PRAGMA index_info({name})")) for name in names]


def test_sqlite_indexes_cover_the_queries(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    SQLiteStore(path).close()

    with sqlite3.connect(path) as raw:
        assert ("owner_id", "created_at") in _index_columns(raw, "courses")
        assert ("owner_id", "created_at") in _index_columns(raw, "videos")
        assert ("course_id",) in _index_columns(raw, "videos")
        assert ("status", "updated_at") in _index_columns(raw, "videos")
        assert ("published", "created_at") in _index_columns(raw, "courses")
        assert ("status", "expires_at") in _index_columns(raw, "uploads")
        assert ("video_id",) in _index_columns(raw, "uploads")
        assert ("status", "updated_at") in _index_columns(raw, "jobs")
        assert ("video_id", "created_at") in _index_columns(raw, "jobs")
        assert ("received_at",) in _index_columns(raw, "webhook_events")
        # The event id is the primary key: INSERT OR IGNORE is the atomic "seen before?".
        pk = [row[1] for row in raw.execute("PRAGMA table_info(webhook_events)") if row[5]]
        assert pk == ["event_id"]


def test_sqlite_stores_renditions_as_json_text(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    store = SQLiteStore(path)
    video = dataclasses.replace(make_video(), renditions=({"height": 720, "bitrate": 2_800_000},))
    store.add_video(video)
    store.close()

    with sqlite3.connect(path) as raw:
        (text,) = raw.execute("SELECT renditions FROM videos WHERE id = ?", (video.id,)).fetchone()
    assert json.loads(text) == [{"height": 720, "bitrate": 2_800_000}]


def test_sqlite_migrates_a_version_1_file_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    user, token = make_user(), make_token()
    # The file as the release with users and refresh tokens only left it.
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:1])
    old = SQLiteStore(path)
    old.add_user(user)
    old.add_refresh_token(token)
    old.revoke_refresh_family("family-old", NOW)
    old.close()
    monkeypatch.undo()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        assert "videos" not in tables

    store = SQLiteStore(path)

    assert store.get_user(user.id) == user
    assert store.get_refresh_token(token.token_hash) == token
    assert store.is_refresh_family_revoked("family-old") is True
    course = make_course(owner_id=user.id)
    video = make_video(owner_id=user.id, course_id=course.id)
    upload = make_upload()
    store.add_course(course)
    store.add_video(video)
    store.add_upload(upload)
    assert store.list_courses(user.id) == [course]
    assert store.list_videos(user.id, course.id) == [video]
    assert store.get_upload(upload.id) == upload
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS)
        assert len(sqlite_module.MIGRATIONS) >= 2


def test_sqlite_migrates_a_version_2_file_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.sqlite3"
    user, course = make_user(), make_course()
    video, upload = make_video(course_id=course.id), make_upload()
    # The file as the release with courses, videos and uploads (but no jobs) left it.
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", sqlite_module.MIGRATIONS[:2])
    # ... and its video columns (the playable-early ones came with migration 6).
    old_videos = sqlite_module._ROWS.videos
    monkeypatch.setattr(old_videos, "fields", old_videos.fields[:-2])
    old = SQLiteStore(path)
    old.add_user(user)
    old.add_course(course)
    old.add_video(video)
    old.add_upload(upload)
    old.close()
    monkeypatch.undo()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == 2
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master")}
        assert "jobs" not in tables and "webhook_events" not in tables

    store = SQLiteStore(path)

    assert store.get_user(user.id) == user
    assert store.get_course(course.id) == course
    assert store.get_video(video.id) == video
    assert store.get_upload(upload.id) == upload
    job = make_job(video.id)
    store.add_job(job)
    assert store.get_latest_job(video.id) == job
    assert store.list_jobs([JobStatus.PENDING]) == [job]
    assert store.record_event("evt-1", NOW) is True
    assert store.record_event("evt-1", NOW) is False
    store.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(sqlite_module.MIGRATIONS)
        assert len(sqlite_module.MIGRATIONS) >= 3


# open_store --------------------------------------------------------------------------------
def test_open_store_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


def test_open_store_sqlite_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "home" / "coursecrafter.sqlite3"
    store = open_store(f"sqlite:///{path}")  # as settings build it: four slashes

    assert isinstance(store, SQLiteStore) and store.path == path
    store.close()


def test_open_store_sqlite_relative_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///data/db.sqlite3")

    assert isinstance(store, SQLiteStore) and store.path == tmp_path / "data" / "db.sqlite3"
    store.close()


@pytest.mark.parametrize(
    ("url", "database"),
    [
        ("mongodb://db.invalid:27017/lectures", "lectures"),
        ("mongodb://db.invalid", "coursecrafter"),
    ],
)
def test_open_store_mongodb(url: str, database: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mongo_module, "MongoClient", mongomock.MongoClient)
    store = open_store(url)

    assert isinstance(store, MongoStore) and store._db.name == database


def test_open_store_mongodb_srv(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    monkeypatch.setattr(MongoStore, "from_url", classmethod(lambda cls, url: seen.append(url)))
    open_store("mongodb+srv://cluster.example.net/coursecrafter")

    assert seen == ["mongodb+srv://cluster.example.net/coursecrafter"]


@pytest.mark.parametrize(
    "url",
    ["postgres://x", "postgres://user:s3cret@host/db", "sqlite://", "sqlite:///:memory:", "nope"],
)
def test_open_store_rejects_other_urls(url: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        open_store(url)
    assert "s3cret" not in str(excinfo.value)  # a password must not reach the logs


# Automation tokens -------------------------------------------------------------------------------
def make_api_token(user_id: str = "u1", name: str = "capture", **changes: object) -> ApiToken:
    token = ApiToken(
        id=uuid.uuid4().hex, user_id=user_id, name=name, token_hash=uuid.uuid4().hex * 2,
        scope=TokenScope.UPLOAD, created_at=NOW, expires_at=NOW + timedelta(days=90),
    )
    return dataclasses.replace(token, **changes)  # type: ignore[arg-type]


def test_api_token_roundtrip_by_hash(store: Store) -> None:
    token = make_api_token(last_used_at=NOW - timedelta(minutes=5))
    store.add_api_token(token)
    assert store.get_api_token_by_hash(token.token_hash) == token
    assert store.get_api_token_by_hash("f" * 64) is None
    never = make_api_token(scope=TokenScope.READ, expires_at=None)
    store.add_api_token(never)
    assert store.get_api_token_by_hash(never.token_hash) == never


def test_duplicate_api_token_id_or_hash_is_refused(store: Store) -> None:
    token = make_api_token()
    store.add_api_token(token)
    with pytest.raises(AlreadyExists):
        store.add_api_token(dataclasses.replace(token, token_hash="0" * 64))
    with pytest.raises(AlreadyExists):
        store.add_api_token(dataclasses.replace(token, id=uuid.uuid4().hex))


def test_api_tokens_are_listed_per_user_oldest_first(store: Store) -> None:
    later = make_api_token(name="later", created_at=NOW + timedelta(seconds=1))
    first = make_api_token(name="first")
    theirs = make_api_token(user_id="u2")
    for token in (later, first, theirs):
        store.add_api_token(token)
    assert store.list_api_tokens("u1") == [first, later]
    assert store.list_api_tokens("u2") == [theirs]
    assert store.list_api_tokens("nobody") == []


def test_an_api_token_is_deleted_by_its_owner_only(store: Store) -> None:
    token = make_api_token()
    store.add_api_token(token)
    assert store.delete_api_token(token.id, "u2") is False
    assert store.get_api_token_by_hash(token.token_hash) == token
    assert store.delete_api_token(token.id, "u1") is True
    assert store.get_api_token_by_hash(token.token_hash) is None
    assert store.delete_api_token(token.id, "u1") is False


def test_touch_api_token_writes_at_most_once_per_interval(store: Store) -> None:
    token = make_api_token()
    store.add_api_token(token)
    first_use = NOW + timedelta(minutes=1)
    assert store.touch_api_token(token.id, first_use, unless_after=first_use - timedelta(minutes=1))
    assert store.get_api_token_by_hash(token.token_hash).last_used_at == first_use
    soon = first_use + timedelta(seconds=10)  # within the minute: not written again
    assert not store.touch_api_token(token.id, soon, unless_after=soon - timedelta(minutes=1))
    assert store.get_api_token_by_hash(token.token_hash).last_used_at == first_use
    later = first_use + timedelta(minutes=2)
    assert store.touch_api_token(token.id, later, unless_after=later - timedelta(minutes=1))
    assert store.get_api_token_by_hash(token.token_hash).last_used_at == later
    assert not store.touch_api_token("missing", later, unless_after=later)


def test_mongo_indexes_api_tokens_by_unique_hash_and_by_user() -> None:
    database = mongomock.MongoClient()["coursecrafter_test"]
    MongoStore(database)
    indexes = database["api_tokens"].index_information().values()
    assert [i.get("unique") for i in indexes if i["key"] == [("token_hash", 1)]] == [True]
    assert any(i["key"] == [("user_id", 1), ("created_at", 1)] for i in indexes)
    assert not any("expireAfterSeconds" in i for i in indexes)  # expired ones stay listed


# Chunks of a chunked job (chunk_jobs.py) ------------------------------------------------------
def make_chunks(job_id: str = "job1", job_attempt: int = 1) -> list:
    from coursecrafter_server.chunk_records import Chunk, ChunkStatus, chunk_id

    def one(index: int, kind: str, status: ChunkStatus) -> Chunk:
        return Chunk(id=chunk_id(job_id, job_attempt, index), job_id=job_id,
                     job_attempt=job_attempt, index=index, kind=kind, start=120.5 * index,
                     pieces=2, audio=True, content="still", attempt=1, status=status,
                     created_at=NOW, updated_at=NOW + timedelta(seconds=index))

    return [one(0, "video", ChunkStatus.PENDING), one(1, "video", ChunkStatus.PENDING),
            one(2, "audio", ChunkStatus.PENDING), one(3, "join", ChunkStatus.WAITING)]


def test_chunks_roundtrip_and_insert_only_once(store: Store) -> None:
    from coursecrafter_server.chunk_records import ChunkStatus

    chunks = make_chunks()
    assert store.add_chunks(chunks[2:] + chunks[:2]) == 4
    assert store.list_chunks("job1", 1) == chunks  # by index, every field kept
    assert store.list_chunks("job1", 2) == [] and store.list_chunks("other", 1) == []
    done = dataclasses.replace(chunks[0], status=ChunkStatus.DONE)
    assert store.update_chunk(done, expected_status=ChunkStatus.PENDING, expected_attempt=1)
    # A repeated insert keeps what is stored.
    assert store.add_chunks(make_chunks()) == 0
    assert store.list_chunks("job1", 1)[0] == done
    assert store.add_chunks(make_chunks(job_attempt=2)) == 4


def test_update_chunk_compares_and_sets_status_and_attempt(store: Store) -> None:
    from coursecrafter_server.chunk_records import ChunkStatus

    chunks = make_chunks()
    store.add_chunks(chunks)
    join = chunks[3]
    claimed = dataclasses.replace(join, status=ChunkStatus.PENDING)
    assert not store.update_chunk(claimed, expected_status=ChunkStatus.PENDING, expected_attempt=1)
    assert not store.update_chunk(claimed, expected_status=ChunkStatus.WAITING, expected_attempt=2)
    assert store.update_chunk(claimed, expected_status=ChunkStatus.WAITING, expected_attempt=1)
    # The second claim loses: the join is claimed once.
    assert not store.update_chunk(claimed, expected_status=ChunkStatus.WAITING, expected_attempt=1)
    assert store.list_chunks("job1", 1)[3] == claimed


def test_concurrent_join_claims_have_one_winner(thread_safe_store: Store) -> None:
    from coursecrafter_server.chunk_records import ChunkStatus

    chunks = make_chunks()
    thread_safe_store.add_chunks(chunks)
    claimed = dataclasses.replace(chunks[3], status=ChunkStatus.PENDING)
    outcomes = race(lambda i: thread_safe_store.update_chunk(
        claimed, expected_status=ChunkStatus.WAITING, expected_attempt=1))
    assert outcomes.count(True) == 1


def test_list_chunks_in_status_by_age_and_heartbeat(store: Store) -> None:
    from coursecrafter_server.chunk_records import ChunkStatus

    chunks = make_chunks()
    beating = dataclasses.replace(chunks[1], status=ChunkStatus.PROCESSING,
                                  heartbeat_at=NOW + timedelta(minutes=5))
    store.add_chunks([chunks[0], beating, chunks[2], chunks[3]])
    pending = store.list_chunks_in_status([ChunkStatus.PENDING])
    assert [c.index for c in pending] == [0, 2]
    assert [c.index for c in store.list_chunks_in_status(
        [ChunkStatus.PENDING], updated_before=NOW + timedelta(seconds=1))] == [0]
    silent = [ChunkStatus.PROCESSING]
    assert store.list_chunks_in_status(silent, heartbeat_before=NOW + timedelta(minutes=4)) == []
    assert store.list_chunks_in_status(
        silent, heartbeat_before=NOW + timedelta(minutes=6)) == [beating]
    assert store.list_chunks_in_status([ChunkStatus.PENDING], limit=1) == [chunks[0]]
    assert store.list_chunks_in_status([], limit=5) == []

"""The store contract: every adapter (memory fake, SQLite, MongoDB) passes the same suite.

Datetimes in these tests are whole milliseconds (BSON dates keep no more), so a round trip must
give back an equal value in every adapter; `test_datetimes_come_back_utc_aware` covers finer ones.
Token expiries lie in the future of the real clock because MongoDB's TTL index (and mongomock's
imitation of it) removes expired tokens by itself.
"""

from __future__ import annotations

import dataclasses
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

from coursecrafter_server.domain import AlreadyExists, RefreshToken, Role, User
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


# MongoDB specifics ------------------------------------------------------------------------
def test_mongo_store_accepts_a_tz_aware_client() -> None:
    store = MongoStore(mongomock.MongoClient(tz_aware=True)["coursecrafter_test"])
    user = make_user()
    store.add_user(user)

    assert store.get_user(user.id) == user


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

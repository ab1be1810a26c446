"""MongoDB adapter of the store port: the scale-out store, shared by any number of servers.

Takes a pymongo `Database` so tests can hand it a mongomock one; `MongoStore.from_url` builds
the real client. Uniqueness lives in indexes (created at start-up), so it holds across servers.

Datetimes: BSON dates are UTC with millisecond precision, so sub-millisecond parts are dropped
on write; reads always come back as tz-aware UTC, whether the client is tz_aware or not.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from coursecrafter_server.domain import AlreadyExists, RefreshToken, Role, User

DEFAULT_DATABASE = "coursecrafter"
SERVER_SELECTION_TIMEOUT_MS = 5000

USERNAME_TAKEN = "username is already taken"
EMAIL_TAKEN = "email is already registered"

Document = dict[str, Any]


def _encode_time(value: datetime) -> datetime:
    """Naive UTC truncated to the millisecond: what BSON keeps, and what mongomock compares
    without mixing naive and aware values. A naive input is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _decode_time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a client without tz_aware=True returns naive UTC
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def _required_time(value: datetime) -> datetime:
    decoded = _decode_time(value)
    assert decoded is not None
    return decoded


class MongoStore:
    def __init__(self, database: Database[Document], *, owns_client: bool = False) -> None:
        self._db = database
        self._owns_client = owns_client
        self._users: Collection[Document] = database["users"]
        self._tokens: Collection[Document] = database["refresh_tokens"]
        # Kept apart from the tokens so a revocation also covers tokens added afterwards.
        self._revoked_families: Collection[Document] = database["revoked_refresh_families"]
        self._create_indexes()

    @classmethod
    def from_url(
        cls, url: str, *, server_selection_timeout_ms: int = SERVER_SELECTION_TIMEOUT_MS
    ) -> MongoStore:
        """`mongodb://host:port/dbname` or `mongodb+srv://…`; the database defaults to
        `coursecrafter`. Fails within the timeout when no server answers."""
        client: MongoClient[Document] = MongoClient(
            url, serverSelectionTimeoutMS=server_selection_timeout_ms, tz_aware=True
        )
        try:
            return cls(client.get_default_database(DEFAULT_DATABASE), owns_client=True)
        except BaseException:
            client.close()
            raise

    def _create_indexes(self) -> None:
        # Idempotent: every server runs this at start-up.
        self._users.create_index(
            [("username_lower", ASCENDING)], unique=True, name="username_lower_unique"
        )
        self._users.create_index(
            [("email_lower", ASCENDING)], unique=True, name="email_lower_unique"
        )
        # token_hash is the _id, hence unique already.
        self._tokens.create_index([("family_id", ASCENDING)], name="family_id")
        # MongoDB drops expired tokens by itself (within about a minute); the explicit
        # delete_expired_refresh_tokens stays for parity with SQLite.
        self._tokens.create_index(
            [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"
        )

    def ping(self) -> None:
        self._db.command("ping")

    def close(self) -> None:
        if self._owns_client:
            self._db.client.close()

    # Users ---------------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        username_lower, email_lower = user.username.lower(), user.email.lower()
        # Look first so the message names username before email when both clash; the unique
        # indexes still decide races between servers.
        self._raise_if_taken(username_lower, email_lower)
        try:
            self._users.insert_one(
                {
                    "_id": user.id,
                    "username": user.username,
                    "username_lower": username_lower,
                    "email": user.email,
                    "email_lower": email_lower,
                    "password_hash": user.password_hash,
                    "role": user.role.value,
                    "created_at": _encode_time(user.created_at),
                }
            )
        except DuplicateKeyError as exc:
            raise AlreadyExists(self._clash_message(exc, username_lower, email_lower)) from exc

    def _raise_if_taken(self, username_lower: str, email_lower: str) -> None:
        clashes = list(
            self._users.find(
                {"$or": [{"username_lower": username_lower}, {"email_lower": email_lower}]},
                {"username_lower": 1},
            )
        )
        if any(doc.get("username_lower") == username_lower for doc in clashes):
            raise AlreadyExists(USERNAME_TAKEN)
        if clashes:
            raise AlreadyExists(EMAIL_TAKEN)

    def _clash_message(self, exc: DuplicateKeyError, username_lower: str, email_lower: str) -> str:
        details = exc.details or {}
        text = f"{details.get('keyPattern', '')} {details.get('errmsg', '')} {exc}"
        if "username_lower" in text:
            return USERNAME_TAKEN
        if "email_lower" in text:
            return EMAIL_TAKEN
        if "_id" in text:
            return "user already exists"
        # Some servers and mongomock say nothing about the index: ask the collection.
        if self._users.find_one({"username_lower": username_lower}, {"_id": 1}):
            return USERNAME_TAKEN
        if self._users.find_one({"email_lower": email_lower}, {"_id": 1}):
            return EMAIL_TAKEN
        return "user already exists"

    def get_user(self, user_id: str) -> User | None:
        doc = self._users.find_one({"_id": user_id})
        return _user(doc) if doc else None

    def get_user_by_username(self, username: str) -> User | None:
        doc = self._users.find_one({"username_lower": username.lower()})
        return _user(doc) if doc else None

    def count_users(self) -> int:
        return self._users.count_documents({})

    # Refresh tokens ------------------------------------------------------------------------
    def add_refresh_token(self, token: RefreshToken) -> None:
        try:
            self._tokens.insert_one(
                {
                    "_id": token.token_hash,
                    "user_id": token.user_id,
                    "family_id": token.family_id,
                    "issued_at": _encode_time(token.issued_at),
                    "expires_at": _encode_time(token.expires_at),
                    "used_at": _encode_time(token.used_at) if token.used_at else None,
                    "revoked_at": _encode_time(token.revoked_at) if token.revoked_at else None,
                }
            )
        except DuplicateKeyError as exc:
            raise AlreadyExists("refresh token already exists") from exc

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        doc = self._tokens.find_one({"_id": token_hash})
        return _refresh_token(doc) if doc else None

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        # A single-document update is atomic: of concurrent callers exactly one matches.
        result = self._tokens.update_one(
            {"_id": token_hash, "used_at": None}, {"$set": {"used_at": _encode_time(when)}}
        )
        return result.modified_count == 1

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        stamp = _encode_time(when)
        try:
            self._revoked_families.update_one(
                {"_id": family_id}, {"$setOnInsert": {"revoked_at": stamp}}, upsert=True
            )
        except DuplicateKeyError:
            pass  # a concurrent revocation inserted it first: revoked either way
        result = self._tokens.update_many(
            {"family_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": stamp}}
        )
        return result.modified_count

    def is_refresh_family_revoked(self, family_id: str) -> bool:
        return self._revoked_families.find_one({"_id": family_id}, {"_id": 1}) is not None

    def delete_expired_refresh_tokens(self, now: datetime) -> int:
        result = self._tokens.delete_many({"expires_at": {"$lte": _encode_time(now)}})
        return result.deleted_count


def _user(doc: Document) -> User:
    return User(
        id=doc["_id"],
        username=doc["username"],
        email=doc["email"],
        password_hash=doc["password_hash"],
        role=Role(doc["role"]),
        created_at=_required_time(doc["created_at"]),
    )


def _refresh_token(doc: Document) -> RefreshToken:
    return RefreshToken(
        token_hash=doc["_id"],
        user_id=doc["user_id"],
        family_id=doc["family_id"],
        issued_at=_required_time(doc["issued_at"]),
        expires_at=_required_time(doc["expires_at"]),
        used_at=_decode_time(doc.get("used_at")),
        revoked_at=_decode_time(doc.get("revoked_at")),
    )

"""MongoDB adapter of the store port: the scale-out store, shared by any number of servers.

Takes a pymongo `Database` so tests can hand it a mongomock one; `MongoStore.from_url` builds
the real client. Uniqueness lives in indexes (created at start-up), so it holds across servers.

Datetimes: BSON dates are UTC with millisecond precision, so sub-millisecond parts are dropped
on write; reads always come back as tz-aware UTC, whether the client is tz_aware or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from coursecrafter_server.chunk_records import Chunk, ChunkStatus
from coursecrafter_server.domain import (
    AlreadyExists,
    ApiToken,
    Course,
    Job,
    JobStatus,
    RefreshToken,
    Upload,
    UploadStatus,
    User,
    Video,
    VideoStatus,
)
from coursecrafter_server.store.base import UPDATABLE_COURSE_FIELDS
from coursecrafter_server.store.codec import RowCodec
from coursecrafter_server.store.records import Revocation, RevokedFamily, SeenEvent, record_codecs

DEFAULT_DATABASE = "coursecrafter"
SERVER_SELECTION_TIMEOUT_MS = 5000
# MongoDB forgets webhook event ids by itself after this long (delete_events_before stays, for
# parity with SQLite); far beyond any provider's redelivery window.
WEBHOOK_EVENT_TTL_SECONDS = 7 * 24 * 3600

USERNAME_TAKEN = "username is already taken"
EMAIL_TAKEN = "email is already registered"

Document = dict[str, Any]
T = TypeVar("T")


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


# Every record through its row codec (store/records.py): a document field per record field, named
# like it, the record's key as the `_id`; times as naive UTC datetimes, renditions as arrays.
_DOCS = record_codecs(encode_time=_encode_time, decode_time=_decode_time)


class MongoStore:
    def __init__(self, database: Database[Document], *, owns_client: bool = False) -> None:
        self._db = database
        self._owns_client = owns_client
        self._users: Collection[Document] = database["users"]
        self._tokens: Collection[Document] = database["refresh_tokens"]
        # Kept apart from the tokens so a revocation also covers tokens added afterwards.
        self._revoked_families: Collection[Document] = database["revoked_refresh_families"]
        self._revocations: Collection[Document] = database["revoked_tokens"]
        self._courses: Collection[Document] = database["courses"]
        self._videos: Collection[Document] = database["videos"]
        self._uploads: Collection[Document] = database["uploads"]
        self._jobs: Collection[Document] = database["jobs"]
        # The event id is the _id, hence unique: inserting it is the atomic "seen before?".
        self._events: Collection[Document] = database["webhook_events"]
        self._api_tokens: Collection[Document] = database["api_tokens"]
        self._chunks: Collection[Document] = database["job_chunks"]
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
        self._chunks.create_index([("job_id", ASCENDING), ("job_attempt", ASCENDING)],
                                  name="job_chunks_job")
        self._chunks.create_index([("status", ASCENDING), ("updated_at", ASCENDING)],
                                  name="job_chunks_status_updated")
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
        # Revoked access tokens: MongoDB drops them once the tokens are dead anyway.
        self._revocations.create_index(
            [("expires_at", ASCENDING)], expireAfterSeconds=0, name="expires_at_ttl"
        )
        self._courses.create_index(
            [("owner_id", ASCENDING), ("created_at", ASCENDING)], name="owner_created"
        )
        self._videos.create_index(
            [("owner_id", ASCENDING), ("created_at", ASCENDING)], name="owner_created"
        )
        self._videos.create_index([("course_id", ASCENDING)], name="course_id")
        self._videos.create_index([("early_expires_at", ASCENDING)], name="early_expires_at",
                                  sparse=True)
        self._videos.create_index(
            [("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"
        )
        self._courses.create_index(
            [("published", ASCENDING), ("created_at", ASCENDING)], name="published_created"
        )
        # No TTL here: an expired upload must be listed so its storage upload gets aborted.
        self._uploads.create_index(
            [("status", ASCENDING), ("expires_at", ASCENDING)], name="status_expires"
        )
        self._uploads.create_index([("video_id", ASCENDING)], name="video_id")
        # No TTL on jobs: they are the outbox, and the latest one of a video is its history.
        self._jobs.create_index(
            [("status", ASCENDING), ("updated_at", ASCENDING)], name="status_updated"
        )
        self._jobs.create_index(
            [("video_id", ASCENDING), ("created_at", ASCENDING)], name="video_created"
        )
        self._events.create_index(
            [("received_at", ASCENDING)],
            expireAfterSeconds=WEBHOOK_EVENT_TTL_SECONDS,
            name="received_at_ttl",
        )
        # Automation tokens: looked up by the hash of the secret; listed per user. No TTL: an
        # expired token stays listed (as expired) until its owner revokes it.
        self._api_tokens.create_index(
            [("token_hash", ASCENDING)], unique=True, name="token_hash_unique"
        )
        self._api_tokens.create_index(
            [("user_id", ASCENDING), ("created_at", ASCENDING)], name="user_created"
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
            self._users.insert_one(_doc(_DOCS.users, user))
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
        return _first(_DOCS.users, self._users.find_one({"_id": user_id}))

    def get_user_by_username(self, username: str) -> User | None:
        return _first(_DOCS.users, self._users.find_one({"username_lower": username.lower()}))

    def count_users(self) -> int:
        return self._users.count_documents({})

    # Refresh tokens ------------------------------------------------------------------------
    def add_refresh_token(self, token: RefreshToken) -> None:
        _add(self._tokens, _DOCS.refresh_tokens, token, clash="refresh token already exists")

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        return _first(_DOCS.refresh_tokens, self._tokens.find_one({"_id": token_hash}))

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        # A single-document update is atomic: of concurrent callers exactly one matches.
        result = self._tokens.update_one(
            {"_id": token_hash, "used_at": None}, {"$set": {"used_at": _encode_time(when)}}
        )
        return result.modified_count == 1

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        revoked = _DOCS.revoked_refresh_families.encode(RevokedFamily(family_id, when))
        try:
            self._revoked_families.update_one(
                {"_id": family_id}, {"$setOnInsert": revoked}, upsert=True
            )
        except DuplicateKeyError:
            pass  # a concurrent revocation inserted it first: revoked either way
        result = self._tokens.update_many(
            {"family_id": family_id, "revoked_at": None},
            {"$set": {"revoked_at": revoked["revoked_at"]}},
        )
        return result.modified_count

    def is_refresh_family_revoked(self, family_id: str) -> bool:
        return self._revoked_families.find_one({"_id": family_id}, {"_id": 1}) is not None

    def delete_expired_refresh_tokens(self, now: datetime) -> int:
        result = self._tokens.delete_many({"expires_at": {"$lte": _encode_time(now)}})
        return result.deleted_count

    def add_revocation(self, token_id: str, expires_at: datetime) -> None:
        # $max keeps the later expiry of two revocations of one token.
        later = {"$max": _DOCS.revoked_tokens.encode(Revocation(token_id, expires_at))}
        try:
            self._revocations.update_one({"_id": token_id}, later, upsert=True)
        except DuplicateKeyError:  # a concurrent upsert inserted it first: apply ours on top
            self._revocations.update_one({"_id": token_id}, later)

    def any_revoked(self, token_ids: list[str], now: datetime) -> bool:
        query = {"_id": {"$in": token_ids}, "expires_at": {"$gt": _encode_time(now)}}
        return self._revocations.find_one(query, {"_id": 1}) is not None

    def delete_expired_revocations(self, now: datetime) -> int:
        result = self._revocations.delete_many({"expires_at": {"$lte": _encode_time(now)}})
        return result.deleted_count

    # Courses -------------------------------------------------------------------------------
    def add_course(self, course: Course) -> None:
        _add(self._courses, _DOCS.courses, course, clash="course already exists")

    def get_course(self, course_id: str) -> Course | None:
        return _first(_DOCS.courses, self._courses.find_one({"_id": course_id}))

    def list_courses(self, owner_id: str) -> list[Course]:
        cursor = self._courses.find({"owner_id": owner_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return _all(_DOCS.courses, cursor)

    def list_published_courses(self, limit: int = 1000) -> list[Course]:
        if limit <= 0:
            return []
        cursor = self._courses.find({"published": True}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        ).limit(limit)
        return _all(_DOCS.courses, cursor)

    def update_course(self, course: Course) -> None:
        changes = _DOCS.courses.encode(course, only=UPDATABLE_COURSE_FIELDS)
        self._courses.update_one({"_id": course.id}, {"$set": changes})

    def delete_course(self, course_id: str) -> bool:
        # Two writes, no transaction (a standalone server has none): the course goes first, then
        # its videos are detached; the detach runs even when the course was already gone, so
        # calling again repairs what an interrupted call left.
        result = self._courses.delete_one({"_id": course_id})
        self._videos.update_many({"course_id": course_id}, {"$set": {"course_id": None}})
        return result.deleted_count == 1

    # Videos --------------------------------------------------------------------------------
    def add_video(self, video: Video) -> None:
        _add(self._videos, _DOCS.videos, video, clash="video already exists")

    def get_video(self, video_id: str) -> Video | None:
        return _first(_DOCS.videos, self._videos.find_one({"_id": video_id}))

    def list_course_videos(self, course_id: str) -> list[Video]:
        cursor = self._videos.find({"course_id": course_id}).sort(
            [("created_at", DESCENDING), ("_id", DESCENDING)]
        )
        return _all(_DOCS.videos, cursor)

    def list_videos_in_status(
        self, statuses: list[VideoStatus], *, updated_before: datetime, limit: int = 100
    ) -> list[Video]:
        if limit <= 0 or not statuses:
            return []
        query: Document = {
            "status": {"$in": sorted({VideoStatus(s).value for s in statuses})},
            "updated_at": {"$lt": _encode_time(updated_before)},
        }
        cursor = self._videos.find(query).sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
        return _all(_DOCS.videos, cursor.limit(limit))

    def list_videos_early_expired(self, now: datetime, limit: int = 100) -> list[Video]:
        if limit <= 0:
            return []
        # Sparse in effect: only videos that made early outputs carry a non-null time.
        query: Document = {"early_expires_at": {"$ne": None, "$lte": _encode_time(now)}}
        cursor = self._videos.find(query).sort([("early_expires_at", ASCENDING),
                                                ("_id", ASCENDING)])
        return _all(_DOCS.videos, cursor.limit(limit))

    def list_videos(self, owner_id: str, course_id: str | None = None) -> list[Video]:
        query: Document = {"owner_id": owner_id}
        if course_id is not None:
            query["course_id"] = course_id
        cursor = self._videos.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return _all(_DOCS.videos, cursor)

    def update_video(self, video: Video, *, expected_status: VideoStatus | None = None) -> bool:
        query: Document = {"_id": video.id}
        if expected_status is not None:
            query["status"] = VideoStatus(expected_status).value
        # A single-document replace is atomic: of concurrent compare-and-sets exactly one
        # matches. matched, not modified: writing identical values still counts as written.
        result = self._videos.replace_one(query, _DOCS.videos.encode(video))
        return result.matched_count == 1

    def delete_video(self, video_id: str) -> bool:
        return self._videos.delete_one({"_id": video_id}).deleted_count == 1

    # Uploads -------------------------------------------------------------------------------
    def add_upload(self, upload: Upload) -> None:
        _add(self._uploads, _DOCS.uploads, upload, clash="upload already exists")

    def get_upload(self, upload_id: str) -> Upload | None:
        return _first(_DOCS.uploads, self._uploads.find_one({"_id": upload_id}))

    def set_upload_status(
        self, upload_id: str, status: UploadStatus, *, expected: UploadStatus
    ) -> bool:
        result = self._uploads.update_one(
            {"_id": upload_id, "status": UploadStatus(expected).value},
            {"$set": {"status": UploadStatus(status).value}},
        )
        return result.matched_count == 1

    def list_expired_uploads(self, now: datetime, limit: int = 100) -> list[Upload]:
        if limit <= 0:  # MongoDB reads limit 0 as "no limit"
            return []
        cursor = (
            self._uploads.find(
                {"status": UploadStatus.ACTIVE.value, "expires_at": {"$lte": _encode_time(now)}}
            )
            .sort([("expires_at", ASCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        return _all(_DOCS.uploads, cursor)

    # Jobs ----------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        _add(self._jobs, _DOCS.jobs, job, clash="job already exists")

    def get_job(self, job_id: str) -> Job | None:
        return _first(_DOCS.jobs, self._jobs.find_one({"_id": job_id}))

    def get_latest_job(self, video_id: str) -> Job | None:
        docs = _all(_DOCS.jobs, self._jobs.find({"video_id": video_id}).sort(
            [("created_at", DESCENDING), ("_id", DESCENDING)]
        ).limit(1))
        return docs[0] if docs else None

    def update_job(
        self,
        job: Job,
        *,
        expected_status: JobStatus | None = None,
        expected_attempt: int | None = None,
    ) -> bool:
        query: Document = {"_id": job.id}
        if expected_status is not None:
            query["status"] = JobStatus(expected_status).value
        if expected_attempt is not None:
            query["attempt"] = int(expected_attempt)
        # A single-document replace is atomic: of concurrent compare-and-sets exactly one
        # matches. matched, not modified: writing identical values still counts as written.
        return self._jobs.replace_one(query, _DOCS.jobs.encode(job)).matched_count == 1

    def list_jobs(
        self,
        statuses: list[JobStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return _all(_DOCS.jobs, _in_status(
            self._jobs, [JobStatus(s).value for s in statuses], updated_before, heartbeat_before,
            limit))

    # Chunks --------------------------------------------------------------------------------
    def add_chunks(self, chunks: list[Chunk]) -> int:
        inserted = 0
        for chunk in chunks:
            # Upsert that only inserts: a stored chunk is left exactly as it is.
            result = self._chunks.update_one({"_id": chunk.id},
                                             {"$setOnInsert": _CHUNK.encode(chunk)}, upsert=True)
            inserted += result.upserted_id is not None
        return inserted

    def list_chunks(self, job_id: str, job_attempt: int) -> list[Chunk]:
        cursor = self._chunks.find({"job_id": job_id, "job_attempt": job_attempt}) \
            .sort([("index", ASCENDING)])
        return [_CHUNK.decode(doc, doc["_id"]) for doc in cursor]

    def update_chunk(self, chunk: Chunk, *, expected_status: ChunkStatus,
                     expected_attempt: int) -> bool:
        query = {"_id": chunk.id, "status": ChunkStatus(expected_status).value,
                 "attempt": int(expected_attempt)}
        return self._chunks.replace_one(query, _CHUNK.encode(chunk)).matched_count == 1

    def list_chunks_in_status(
        self,
        statuses: list[ChunkStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Chunk]:
        docs = _in_status(self._chunks, [ChunkStatus(s).value for s in statuses],
                          updated_before, heartbeat_before, limit)
        return [_CHUNK.decode(doc, doc["_id"]) for doc in docs]

    # Webhook events ------------------------------------------------------------------------
    def record_event(self, event_id: str, received_at: datetime) -> bool:
        try:
            self._events.insert_one(_doc(_DOCS.webhook_events, SeenEvent(event_id, received_at)))
        except DuplicateKeyError:
            return False
        return True

    def has_event(self, event_id: str) -> bool:
        return self._events.count_documents({"_id": event_id}, limit=1) > 0

    def count_videos_by_status(self) -> dict[VideoStatus, int]:
        return {VideoStatus(status): n for status, n in _count_by(self._videos, "status").items()}

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        return {JobStatus(status): n for status, n in _count_by(self._jobs, "status").items()}

    def delete_events_before(self, when: datetime) -> int:
        result = self._events.delete_many({"received_at": {"$lt": _encode_time(when)}})
        return result.deleted_count

    # Automation tokens ---------------------------------------------------------------------
    def add_api_token(self, token: ApiToken) -> None:
        _add(self._api_tokens, _DOCS.api_tokens, token, clash="token already exists")

    def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        return _first(_DOCS.api_tokens, self._api_tokens.find_one({"token_hash": token_hash}))

    def list_api_tokens(self, user_id: str) -> list[ApiToken]:
        cursor = self._api_tokens.find({"user_id": user_id}).sort(
            [("created_at", ASCENDING), ("_id", ASCENDING)]
        )
        return _all(_DOCS.api_tokens, cursor)

    def delete_api_token(self, token_id: str, user_id: str) -> bool:
        return self._api_tokens.delete_one({"_id": token_id, "user_id": user_id}).deleted_count == 1

    def touch_api_token(self, token_id: str, when: datetime, *, unless_after: datetime) -> bool:
        result = self._api_tokens.update_one(
            {"_id": token_id, "$or": [{"last_used_at": None},
                                      {"last_used_at": {"$lte": _encode_time(unless_after)}}]},
            {"$set": {"last_used_at": _encode_time(when)}},
        )
        return result.modified_count == 1


# Documents through the codecs ------------------------------------------------------------------
def _doc(codec: RowCodec[T], record: T) -> Document:
    """The whole document of a record, its key as the `_id`."""
    return codec.encode(record, key_as="_id")


def _add(collection: Collection[Document], codec: RowCodec[T], record: T, *,
         clash: str) -> None:
    """Insert a new record; raise `AlreadyExists(clash)` when its `_id` (or a unique field) is
    taken."""
    try:
        collection.insert_one(_doc(codec, record))
    except DuplicateKeyError as exc:
        raise AlreadyExists(clash) from exc


def _first(codec: RowCodec[T], doc: Mapping[str, Any] | None) -> T | None:
    return codec.decode(doc, doc["_id"]) if doc else None


def _all(codec: RowCodec[T], docs: Iterable[Mapping[str, Any]]) -> list[T]:
    return [codec.decode(doc, doc["_id"]) for doc in docs]


def _in_status(collection: Collection[Document], statuses: list[str],
               updated_before: datetime | None, heartbeat_before: datetime | None,
               limit: int) -> list[Document]:
    """Documents (jobs or chunks) in one of `statuses`, oldest change first."""
    if limit <= 0 or not statuses:  # MongoDB reads limit 0 as "no limit"
        return []
    query: Document = {"status": {"$in": sorted(set(statuses))}}
    if updated_before is not None:
        query["updated_at"] = {"$lt": _encode_time(updated_before)}
    if heartbeat_before is not None:
        stamp = _encode_time(heartbeat_before)
        # `None` matches a null or missing field: no heartbeat yet counts from updated_at.
        query["$or"] = [
            {"heartbeat_at": {"$lt": stamp}},
            {"heartbeat_at": None, "updated_at": {"$lt": stamp}},
        ]
    cursor = collection.find(query).sort([("updated_at", ASCENDING), ("_id", ASCENDING)])
    return list(cursor.limit(limit))


def _count_by(collection: Collection[Document], field: str) -> dict[str, int]:
    pipeline = [{"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
    return {str(row["_id"]): int(row["n"]) for row in collection.aggregate(pipeline)}


# Chunks through their row codec (store/codec.py): every field but the id (the `_id`).
_CHUNK = RowCodec(Chunk, encode_time=_encode_time, decode_time=_decode_time)

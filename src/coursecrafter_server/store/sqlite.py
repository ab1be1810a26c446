"""SQLite adapter of the store port: the embedded default, one file under COURSECRAFTER_HOME.

Safe for several server processes and threads at once: WAL journal (readers never block the
writer), a busy timeout instead of instant "database is locked", one connection per thread, and
short write transactions opened with BEGIN IMMEDIATE so a read-then-write never has to upgrade
its lock (an upgrade in WAL mode fails at once instead of waiting).

Datetimes are stored as fixed-width UTC ISO-8601 text (`2025-01-02T03:04:05.123456Z`): readable
with the sqlite3 shell, compared correctly as text, and exact to the microsecond.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from coursecrafter_server.store.codec import RowCodec
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

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BUSY_TIMEOUT = 10.0  # seconds a statement waits for another process's write lock

# The schema, one entry per version: migration N (1-based) brings `PRAGMA user_version` from
# N-1 to N. Append a tuple of statements to add tables; never edit one that has shipped.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: accounts and refresh tokens
        """
        CREATE TABLE users (
            id TEXT PRIMARY KEY,
            username TEXT NOT NULL,
            username_lower TEXT NOT NULL,
            email TEXT NOT NULL,
            email_lower TEXT NOT NULL,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """,
        # Lowercased in Python (not COLLATE NOCASE, which folds ASCII only) so that every
        # adapter agrees with `str.lower()` on what counts as the same name.
        "CREATE UNIQUE INDEX users_username_lower ON users (username_lower)",
        "CREATE UNIQUE INDEX users_email_lower ON users (email_lower)",
        """
        CREATE TABLE refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            family_id TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            expires_at TEXT NOT NULL,
            used_at TEXT,
            revoked_at TEXT
        )
        """,
        "CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id)",
        "CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at)",
        # Kept apart from the tokens so a revocation also covers tokens added afterwards.
        """
        CREATE TABLE revoked_refresh_families (
            family_id TEXT PRIMARY KEY,
            revoked_at TEXT NOT NULL
        )
        """,
    ),
    (  # 2: courses, videos, uploads
        # No foreign keys: the other adapters have none either, so the contract (e.g. a video
        # may name a course that is gone) is the same everywhere; delete_course clears
        # videos.course_id itself.
        """
        CREATE TABLE courses (
            id TEXT PRIMARY KEY,
            owner_id TEXT NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL,
            published INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX courses_owner_created ON courses (owner_id, created_at)",
        """
        CREATE TABLE videos (
            id TEXT PRIMARY KEY,
            owner_id TEXT NOT NULL,
            course_id TEXT,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            filename TEXT NOT NULL,
            content_type TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            progress INTEGER NOT NULL,
            phase TEXT,
            error_code TEXT,
            error_message TEXT,
            duration REAL,
            width INTEGER,
            height INTEGER,
            renditions TEXT NOT NULL
        )
        """,
        "CREATE INDEX videos_owner_created ON videos (owner_id, created_at)",
        "CREATE INDEX videos_course ON videos (course_id)",
        """
        CREATE TABLE uploads (
            id TEXT PRIMARY KEY,
            video_id TEXT NOT NULL,
            owner_id TEXT NOT NULL,
            key TEXT NOT NULL,
            storage_upload_id TEXT NOT NULL,
            size INTEGER NOT NULL,
            part_size INTEGER NOT NULL,
            part_count INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX uploads_status_expires ON uploads (status, expires_at)",
        "CREATE INDEX uploads_video ON uploads (video_id)",
    ),
    (  # 3: transcoding jobs (the outbox) and seen webhook events
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            video_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            heartbeat_at TEXT
        )
        """,
        # The sweeper's list_jobs; and get_latest_job (its video_id prefix serves any lookup
        # by video).
        "CREATE INDEX jobs_status_updated ON jobs (status, updated_at)",
        "CREATE INDEX jobs_video_created ON jobs (video_id, created_at)",
        """
        CREATE TABLE webhook_events (
            event_id TEXT PRIMARY KEY,
            received_at TEXT NOT NULL
        )
        """,
        "CREATE INDEX webhook_events_received ON webhook_events (received_at)",
    ),
    (  # 4: the sweeper's look at videos by status; students' list of published courses
        "CREATE INDEX videos_status_updated ON videos (status, updated_at)",
        "CREATE INDEX courses_published_created ON courses (published, created_at)",
    ),
    (  # 5: revoked access tokens (the embedded revocation list; survives a restart)
        """
        CREATE TABLE revoked_tokens (
            token_id TEXT PRIMARY KEY,
            expires_at TEXT NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX revoked_tokens_expires ON revoked_tokens (expires_at)",
    ),
    (  # 6: playable early (an early rendition while processing) and when its outputs may go
        "ALTER TABLE videos ADD COLUMN playable INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE videos ADD COLUMN early_expires_at TEXT",
        "CREATE INDEX videos_early_expires ON videos (early_expires_at)"
        " WHERE early_expires_at IS NOT NULL",
    ),
    (  # 7: automation tokens (`cct_...`): only the SHA-256 of the secret
        """
        CREATE TABLE api_tokens (
            id TEXT PRIMARY KEY,
            user_id TEXT NOT NULL,
            name TEXT NOT NULL,
            token_hash TEXT NOT NULL,
            scope TEXT NOT NULL,
            created_at TEXT NOT NULL,
            expires_at TEXT,
            last_used_at TEXT
        )
        """,
        "CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash)",
        "CREATE INDEX api_tokens_user_created ON api_tokens (user_id, created_at)",
    ),
    (  # 8: the chunks of a chunked transcoding job (chunk_jobs.py), apart from the jobs
        """
        CREATE TABLE job_chunks (
            id TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            job_attempt INTEGER NOT NULL,
            "index" INTEGER NOT NULL,
            kind TEXT NOT NULL,
            start REAL NOT NULL,
            pieces INTEGER NOT NULL,
            audio INTEGER NOT NULL,
            content TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            heartbeat_at TEXT
        )
        """,
        "CREATE INDEX job_chunks_job ON job_chunks (job_id, job_attempt)",
        "CREATE INDEX job_chunks_status_updated ON job_chunks (status, updated_at)",
    ),
]


def _encode_time(value: datetime) -> str:
    """UTC, fixed width; a naive datetime is taken to be UTC already."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value.isoformat(timespec="microseconds") + "Z"


def _decode_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    # Strip the "Z" by hand: fromisoformat only accepts it from Python 3.11 on.
    return datetime.fromisoformat(value.rstrip("Z")).replace(tzinfo=timezone.utc)


# Every record through its row codec (store/records.py): a column per field, named like it; a
# video's renditions as JSON text (readable in the sqlite3 shell, queryable with json_each()).
_ROWS = record_codecs(encode_time=_encode_time, decode_time=_decode_time,
                      encode_nested=lambda items: json.dumps(items, separators=(",", ":")),
                      decode_nested=json.loads)
_CHUNK = RowCodec(Chunk, encode_time=_encode_time, decode_time=_decode_time)
_CHUNK_COLUMNS = ", ".join(f'"{c}"' for c in _CHUNK.fields)


def _create_private_file(path: Path) -> None:
    """Create the database file owner-only; SQLite gives its -wal/-shm files the same mode."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)  # the umask may have taken bits away, never added: make it exact


class SQLiteStore:
    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT):
        # Absolute now, so a later chdir cannot point new threads' connections elsewhere.
        self.path = Path(path).expanduser().absolute()
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._pid = os.getpid()
        self._closed = False

        self.path.parent.mkdir(parents=True, exist_ok=True)
        _create_private_file(self.path)
        conn = self._conn()
        # Switching to WAL skips the busy handler when processes open a new file at the same
        # instant, so retry that (and the migrations with it) by hand within the timeout.
        mode = _retry_while_locked(lambda: _enable_wal(conn), busy_timeout)
        if mode != "wal":
            # E.g. some network filesystems: still correct, but writers block readers.
            log.warning("SQLite at %s could not switch to WAL (journal_mode=%s)", self.path, mode)
        _retry_while_locked(lambda: _migrate(conn), busy_timeout)

    # Connections ---------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("SQLiteStore is closed")
        if os.getpid() != self._pid:
            # Forked child: SQLite connections must not cross a fork; drop (do not close) the
            # parent's and start afresh. A new lock too: the old one may have been held.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._local = threading.local()
            self._connections = []
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,  # autocommit; transactions are explicit below
                check_same_thread=False,  # only so close() may close it from another thread
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            # NORMAL is safe with WAL (no corruption); a power cut may lose the last commits.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A short write transaction that holds the write lock from its first statement."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ping(self) -> None:
        self._conn().execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # Users ---------------------------------------------------------------------------------
    def add_user(self, user: User) -> None:
        username_lower, email_lower = user.username.lower(), user.email.lower()
        with self._write() as conn:
            # Checked one by one inside the write lock so the message names the right field,
            # username first, whatever order SQLite checks its indexes in.
            if conn.execute(
                "SELECT 1 FROM users WHERE username_lower = ?", (username_lower,)
            ).fetchone():
                raise AlreadyExists("username is already taken")
            if conn.execute("SELECT 1 FROM users WHERE email_lower = ?", (email_lower,)).fetchone():
                raise AlreadyExists("email is already registered")
            try:
                _insert(conn, "users", _ROWS.users, user)
            except sqlite3.IntegrityError as exc:  # only the primary key is left to clash
                raise AlreadyExists("user already exists") from exc

    def get_user(self, user_id: str) -> User | None:
        return _first(_ROWS.users, self._conn().execute(
            "SELECT * FROM users WHERE id = ?", (user_id,)))

    def get_user_by_username(self, username: str) -> User | None:
        return _first(_ROWS.users, self._conn().execute(
            "SELECT * FROM users WHERE username_lower = ?", (username.lower(),)))

    def count_users(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM users").fetchone()[0])

    # Refresh tokens ------------------------------------------------------------------------
    def add_refresh_token(self, token: RefreshToken) -> None:
        _add(self._conn(), "refresh_tokens", _ROWS.refresh_tokens, token,
             clash="refresh token already exists")

    def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        return _first(_ROWS.refresh_tokens, self._conn().execute(
            "SELECT * FROM refresh_tokens WHERE token_hash = ?", (token_hash,)))

    def mark_refresh_token_used(self, token_hash: str, when: datetime) -> bool:
        # One statement is atomic: of concurrent callers, exactly one sees rowcount 1.
        cursor = self._conn().execute(
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL",
            (_encode_time(when), token_hash),
        )
        return cursor.rowcount == 1

    def revoke_refresh_family(self, family_id: str, when: datetime) -> int:
        stamp = _encode_time(when)
        with self._write() as conn:
            _insert(conn, "revoked_refresh_families", _ROWS.revoked_refresh_families,
                    RevokedFamily(family_id, when), verb="INSERT OR IGNORE")
            cursor = conn.execute(
                "UPDATE refresh_tokens SET revoked_at = ?"
                " WHERE family_id = ? AND revoked_at IS NULL",
                (stamp, family_id),
            )
            return cursor.rowcount

    def is_refresh_family_revoked(self, family_id: str) -> bool:
        row = (
            self._conn()
            .execute("SELECT 1 FROM revoked_refresh_families WHERE family_id = ?", (family_id,))
            .fetchone()
        )
        return row is not None

    def delete_expired_refresh_tokens(self, now: datetime) -> int:
        cursor = self._conn().execute(
            "DELETE FROM refresh_tokens WHERE expires_at <= ?", (_encode_time(now),)
        )
        return cursor.rowcount

    def add_revocation(self, token_id: str, expires_at: datetime) -> None:
        _insert(self._conn(), "revoked_tokens", _ROWS.revoked_tokens,
                Revocation(token_id, expires_at), upsert=(
                    "ON CONFLICT (token_id) DO UPDATE"
                    " SET expires_at = MAX(expires_at, excluded.expires_at)"))

    def any_revoked(self, token_ids: list[str], now: datetime) -> bool:
        if not token_ids:
            return False
        marks = ", ".join("?" * len(token_ids))
        row = self._conn().execute(
            f"SELECT 1 FROM revoked_tokens WHERE token_id IN ({marks}) AND expires_at > ? LIMIT 1",
            (*token_ids, _encode_time(now)),
        ).fetchone()
        return row is not None

    def delete_expired_revocations(self, now: datetime) -> int:
        cursor = self._conn().execute(
            "DELETE FROM revoked_tokens WHERE expires_at <= ?", (_encode_time(now),)
        )
        return cursor.rowcount

    # Courses -------------------------------------------------------------------------------
    def add_course(self, course: Course) -> None:
        _add(self._conn(), "courses", _ROWS.courses, course, clash="course already exists")

    def get_course(self, course_id: str) -> Course | None:
        return _first(_ROWS.courses, self._conn().execute(
            "SELECT * FROM courses WHERE id = ?", (course_id,)))

    def list_courses(self, owner_id: str) -> list[Course]:
        return _all(_ROWS.courses, self._conn().execute(
            "SELECT * FROM courses WHERE owner_id = ? ORDER BY created_at, id", (owner_id,)))

    def list_published_courses(self, limit: int = 1000) -> list[Course]:
        return _all(_ROWS.courses, self._conn().execute(
            "SELECT * FROM courses WHERE published = 1 ORDER BY created_at, id LIMIT ?",
            (max(limit, 0),)))

    def update_course(self, course: Course) -> None:
        _update(self._conn(), "courses", _ROWS.courses, course, only=UPDATABLE_COURSE_FIELDS)

    def delete_course(self, course_id: str) -> bool:
        with self._write() as conn:
            conn.execute("UPDATE videos SET course_id = NULL WHERE course_id = ?", (course_id,))
            cursor = conn.execute("DELETE FROM courses WHERE id = ?", (course_id,))
            return cursor.rowcount == 1

    # Videos --------------------------------------------------------------------------------
    def add_video(self, video: Video) -> None:
        _add(self._conn(), "videos", _ROWS.videos, video, clash="video already exists")

    def get_video(self, video_id: str) -> Video | None:
        return _first(_ROWS.videos, self._conn().execute(
            "SELECT * FROM videos WHERE id = ?", (video_id,)))

    def list_course_videos(self, course_id: str) -> list[Video]:
        return _all(_ROWS.videos, self._conn().execute(
            "SELECT * FROM videos WHERE course_id = ? ORDER BY created_at DESC, id DESC",
            (course_id,)))

    def list_videos_in_status(
        self, statuses: list[VideoStatus], *, updated_before: datetime, limit: int = 100
    ) -> list[Video]:
        if limit <= 0 or not statuses:  # SQLite reads a negative LIMIT as "no limit"
            return []
        values = sorted({VideoStatus(s).value for s in statuses})
        return _all(_ROWS.videos, self._conn().execute(
            f"SELECT * FROM videos WHERE status IN ({', '.join('?' for _ in values)})"
            " AND updated_at < ? ORDER BY updated_at, id LIMIT ?",
            (*values, _encode_time(updated_before), limit)))

    def list_videos_early_expired(self, now: datetime, limit: int = 100) -> list[Video]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        return _all(_ROWS.videos, self._conn().execute(
            "SELECT * FROM videos WHERE early_expires_at IS NOT NULL AND early_expires_at <= ?"
            " ORDER BY early_expires_at, id LIMIT ?",
            (_encode_time(now), limit)))

    def list_videos(self, owner_id: str, course_id: str | None = None) -> list[Video]:
        if course_id is None:
            rows = self._conn().execute(
                "SELECT * FROM videos WHERE owner_id = ? ORDER BY created_at DESC, id DESC",
                (owner_id,),
            )
        else:
            rows = self._conn().execute(
                "SELECT * FROM videos WHERE owner_id = ? AND course_id = ?"
                " ORDER BY created_at DESC, id DESC",
                (owner_id, course_id),
            )
        return _all(_ROWS.videos, rows)

    def update_video(self, video: Video, *, expected_status: VideoStatus | None = None) -> bool:
        where = {} if expected_status is None else {"status": VideoStatus(expected_status).value}
        return _update(self._conn(), "videos", _ROWS.videos, video, where=where)

    def delete_video(self, video_id: str) -> bool:
        cursor = self._conn().execute("DELETE FROM videos WHERE id = ?", (video_id,))
        return cursor.rowcount == 1

    # Uploads -------------------------------------------------------------------------------
    def add_upload(self, upload: Upload) -> None:
        _add(self._conn(), "uploads", _ROWS.uploads, upload, clash="upload already exists")

    def get_upload(self, upload_id: str) -> Upload | None:
        return _first(_ROWS.uploads, self._conn().execute(
            "SELECT * FROM uploads WHERE id = ?", (upload_id,)))

    def set_upload_status(
        self, upload_id: str, status: UploadStatus, *, expected: UploadStatus
    ) -> bool:
        cursor = self._conn().execute(
            "UPDATE uploads SET status = ? WHERE id = ? AND status = ?",
            (UploadStatus(status).value, upload_id, UploadStatus(expected).value),
        )
        return cursor.rowcount == 1

    def list_expired_uploads(self, now: datetime, limit: int = 100) -> list[Upload]:
        if limit <= 0:  # SQLite reads a negative LIMIT as "no limit"
            return []
        return _all(_ROWS.uploads, self._conn().execute(
            "SELECT * FROM uploads WHERE status = ? AND expires_at <= ?"
            " ORDER BY expires_at, id LIMIT ?",
            (UploadStatus.ACTIVE.value, _encode_time(now), limit)))

    # Jobs ----------------------------------------------------------------------------------
    def add_job(self, job: Job) -> None:
        _add(self._conn(), "jobs", _ROWS.jobs, job, clash="job already exists")

    def get_job(self, job_id: str) -> Job | None:
        return _first(_ROWS.jobs, self._conn().execute(
            "SELECT * FROM jobs WHERE id = ?", (job_id,)))

    def get_latest_job(self, video_id: str) -> Job | None:
        return _first(_ROWS.jobs, self._conn().execute(
            "SELECT * FROM jobs WHERE video_id = ? ORDER BY created_at DESC, id DESC LIMIT 1",
            (video_id,)))

    def update_job(
        self,
        job: Job,
        *,
        expected_status: JobStatus | None = None,
        expected_attempt: int | None = None,
    ) -> bool:
        where: dict[str, object] = {}
        if expected_status is not None:
            where["status"] = JobStatus(expected_status).value
        if expected_attempt is not None:
            where["attempt"] = int(expected_attempt)
        return _update(self._conn(), "jobs", _ROWS.jobs, job, where=where)

    def list_jobs(
        self,
        statuses: list[JobStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Job]:
        return _all(_ROWS.jobs, self._in_status(
            "jobs", [JobStatus(s).value for s in statuses], updated_before, heartbeat_before,
            limit))

    # Chunks --------------------------------------------------------------------------------
    def add_chunks(self, chunks: list[Chunk]) -> int:
        marks = ", ".join("?" for _ in range(len(_CHUNK.fields) + 1))
        with self._write() as conn:
            return sum(conn.execute(
                f"INSERT OR IGNORE INTO job_chunks (id, {_CHUNK_COLUMNS}) VALUES ({marks})",
                (c.id, *_CHUNK.values(c))).rowcount for c in chunks)

    def list_chunks(self, job_id: str, job_attempt: int) -> list[Chunk]:
        rows = self._conn().execute(
            'SELECT * FROM job_chunks WHERE job_id = ? AND job_attempt = ? ORDER BY "index"',
            (job_id, job_attempt))
        return [_CHUNK.decode(dict(row), row["id"]) for row in rows]

    def update_chunk(self, chunk: Chunk, *, expected_status: ChunkStatus,
                     expected_attempt: int) -> bool:
        sets = ", ".join(f'"{c}" = ?' for c in _CHUNK.fields)
        # One statement is atomic: of concurrent compare-and-sets, exactly one matches.
        return self._conn().execute(
            f"UPDATE job_chunks SET {sets} WHERE id = ? AND status = ? AND attempt = ?",
            (*_CHUNK.values(chunk), chunk.id, ChunkStatus(expected_status).value,
             int(expected_attempt))).rowcount == 1

    def list_chunks_in_status(
        self,
        statuses: list[ChunkStatus],
        *,
        updated_before: datetime | None = None,
        heartbeat_before: datetime | None = None,
        limit: int = 100,
    ) -> list[Chunk]:
        rows = self._in_status("job_chunks", [ChunkStatus(s).value for s in statuses],
                               updated_before, heartbeat_before, limit)
        return [_CHUNK.decode(dict(row), row["id"]) for row in rows]

    def _in_status(self, table: str, statuses: list[str], updated_before: datetime | None,
                   heartbeat_before: datetime | None, limit: int) -> list[sqlite3.Row]:
        """Rows of `table` (jobs or chunks) in one of `statuses`, oldest change first; no
        heartbeat yet counts from updated_at."""
        if limit <= 0 or not statuses:  # SQLite reads a negative LIMIT as "no limit"
            return []
        values = sorted(set(statuses))
        sql = f"SELECT * FROM {table} WHERE status IN ({', '.join('?' for _ in values)})"
        params: list[object] = list(values)
        if updated_before is not None:
            sql += " AND updated_at < ?"
            params.append(_encode_time(updated_before))
        if heartbeat_before is not None:
            sql += " AND COALESCE(heartbeat_at, updated_at) < ?"
            params.append(_encode_time(heartbeat_before))
        sql += " ORDER BY updated_at, id LIMIT ?"
        params.append(limit)
        return self._conn().execute(sql, params).fetchall()

    # Webhook events ------------------------------------------------------------------------
    def record_event(self, event_id: str, received_at: datetime) -> bool:
        # One statement is atomic: of concurrent callers with one id, exactly one inserts.
        return _insert(self._conn(), "webhook_events", _ROWS.webhook_events,
                       SeenEvent(event_id, received_at), verb="INSERT OR IGNORE") == 1

    def has_event(self, event_id: str) -> bool:
        row = self._conn().execute(
            "SELECT 1 FROM webhook_events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return row is not None

    def count_videos_by_status(self) -> dict[VideoStatus, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) FROM videos GROUP BY status")
        return {VideoStatus(status): count for status, count in rows}

    def count_jobs_by_status(self) -> dict[JobStatus, int]:
        rows = self._conn().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")
        return {JobStatus(status): count for status, count in rows}

    def delete_events_before(self, when: datetime) -> int:
        cursor = self._conn().execute(
            "DELETE FROM webhook_events WHERE received_at < ?", (_encode_time(when),)
        )
        return cursor.rowcount

    # Automation tokens ---------------------------------------------------------------------
    def add_api_token(self, token: ApiToken) -> None:
        _add(self._conn(), "api_tokens", _ROWS.api_tokens, token,
             clash="token already exists")

    def get_api_token_by_hash(self, token_hash: str) -> ApiToken | None:
        return _first(_ROWS.api_tokens, self._conn().execute(
            "SELECT * FROM api_tokens WHERE token_hash = ?", (token_hash,)))

    def list_api_tokens(self, user_id: str) -> list[ApiToken]:
        return _all(_ROWS.api_tokens, self._conn().execute(
            "SELECT * FROM api_tokens WHERE user_id = ? ORDER BY created_at, id", (user_id,)))

    def delete_api_token(self, token_id: str, user_id: str) -> bool:
        cursor = self._conn().execute(
            "DELETE FROM api_tokens WHERE id = ? AND user_id = ?", (token_id, user_id)
        )
        return cursor.rowcount == 1

    def touch_api_token(self, token_id: str, when: datetime, *, unless_after: datetime) -> bool:
        cursor = self._conn().execute(
            "UPDATE api_tokens SET last_used_at = ?"
            " WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)",
            (_encode_time(when), token_id, _encode_time(unless_after)),
        )
        return cursor.rowcount == 1


# Rows through the codecs ----------------------------------------------------------------------
def _insert(conn: sqlite3.Connection, table: str, codec: RowCodec[T], record: T, *,
            verb: str = "INSERT", upsert: str = "") -> int:
    """Insert the record's row (`verb` may say OR IGNORE; `upsert` an ON CONFLICT clause);
    return how many rows were written."""
    row = codec.encode(record, key_as=codec.key)
    sql = (f"{verb} INTO {table} ({', '.join(map(_quoted, row))})"
           f" VALUES ({', '.join('?' for _ in row)}) {upsert}")
    return conn.execute(sql, tuple(row.values())).rowcount


def _add(conn: sqlite3.Connection, table: str, codec: RowCodec[T], record: T, *,
         clash: str) -> None:
    """Insert a new record; raise `AlreadyExists(clash)` when its key (or a unique column) is
    taken."""
    try:
        _insert(conn, table, codec, record)
    except sqlite3.IntegrityError as exc:
        raise AlreadyExists(clash) from exc


def _update(conn: sqlite3.Connection, table: str, codec: RowCodec[T], record: T, *,
            only: Collection[str] | None = None, where: Mapping[str, object] | None = None,
            ) -> bool:
    """Write the record over the row of its key (just the `only` fields), if the row's columns
    still hold the `where` values (compare-and-set); return whether it was written."""
    row = codec.encode(record, only=only)
    match = {codec.key: getattr(record, codec.key), **(where or {})}
    sql = (f"UPDATE {table} SET {', '.join(f'{_quoted(c)} = ?' for c in row)}"
           f" WHERE {' AND '.join(f'{_quoted(c)} = ?' for c in match)}")
    # One statement is atomic: of concurrent compare-and-sets, exactly one matches.
    return conn.execute(sql, (*row.values(), *match.values())).rowcount == 1


def _quoted(column: str) -> str:
    """A column name as an SQL identifier, so a field may be named like a keyword ("index")."""
    return '"' + column.replace('"', '""') + '"'


def _first(codec: RowCodec[T], rows: sqlite3.Cursor) -> T | None:
    row = rows.fetchone()
    return codec.decode(dict(row), row[codec.key]) if row else None


def _all(codec: RowCodec[T], rows: Iterable[sqlite3.Row]) -> list[T]:
    return [codec.decode(dict(row), row[codec.key]) for row in rows]


def _enable_wal(conn: sqlite3.Connection) -> str:
    mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    if mode == "wal":  # persistent in the file: only its first opener switches it
        return mode
    return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()


def _retry_while_locked(action: Callable[[], T], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            message = str(exc)
            if ("locked" not in message and "busy" not in message) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to `len(MIGRATIONS)`; a no-op (and no write lock) when it is current."""
    target = len(MIGRATIONS)
    if conn.execute("PRAGMA user_version").fetchone()[0] == target:
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > target:
            raise RuntimeError(
                f"database schema version {version} is newer than this CourseCrafter knows"
                f" ({target}): upgrade CourseCrafter"
            )
        for number in range(version + 1, target + 1):
            log.info("applying SQLite migration %d", number)
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
        # DDL and user_version are transactional in SQLite: all of it lands or none.
        conn.execute(f"PRAGMA user_version = {target}")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")

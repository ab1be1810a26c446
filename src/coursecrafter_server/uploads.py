"""Direct-to-storage multipart uploads: the server signs part URLs and records; it never carries
the bytes. One flow for both storage adapters (local directory, S3)."""

from __future__ import annotations

import logging
import math
import re
import unicodedata
import uuid
from collections.abc import Callable
from typing import Protocol
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from coursecrafter_server.domain import (
    DomainError,
    InvalidState,
    NotFound,
    PayloadTooLarge,
    Role,
    UnsupportedMediaType,
    Upload,
    UploadStatus,
    User,
    Video,
    VideoKind,
    VideoStatus,
)
from coursecrafter_worker.storage import keys
from coursecrafter_worker.storage import (
    MAX_PART_NUMBER,
    InvalidPart,
    NoSuchUpload,
    ObjectStorage,
    UploadedPart,
)
from coursecrafter_server import lifecycle
from coursecrafter_server.store.base import CourseStore, UploadStore, VideoStore

log = logging.getLogger(__name__)

MIB = 1024 * 1024
MIN_PART_SIZE = 8 * MIB
FIRST_BATCH = 32  # part URLs handed out with the upload; the client asks for more as it goes
MAX_BATCH = 200

# What may be uploaded, by declared content type. Sources are probed again by the worker.
ATTACHMENT_TYPES = frozenset(
    {
        "application/pdf",
        "text/plain",
        "text/markdown",
        "text/csv",
        "application/zip",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/msword",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.presentation",
        "image/png",
        "image/jpeg",
    }
)


class UploadIncomplete(DomainError):
    status_code = 409
    code = "upload_incomplete"


class SizeMismatch(DomainError):
    status_code = 422
    code = "size_mismatch"


class InvalidPartNumbers(DomainError):
    status_code = 422
    code = "invalid_part_numbers"


class TooManyUploads(DomainError):
    status_code = 429
    code = "too_many_uploads"


class StorageQuotaExceeded(DomainError):
    status_code = 413
    code = "storage_quota_exceeded"


class InvalidContentType(DomainError):
    status_code = 422
    code = "invalid_content_type"


# A media type as RFC 6838 names it (type "/" subtype, restricted-name each) with optional RFC 9110
# parameters. Anything else (CR/LF, spaces inside names, non-ASCII) is refused: the value is stored
# and later sent back as a Content-Type header.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[\t !#-\[\]-~]|\\[\t -~])*"'
_MEDIA_TYPE = re.compile(
    rf"(?P<type>{_RESTRICTED_NAME})/(?P<subtype>{_RESTRICTED_NAME})"
    rf"(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*[ \t]*"
)


def media_type(value: str) -> str:
    """`type/subtype` of a Content-Type value, lower-cased and without parameters; raise
    `InvalidContentType` for anything that is not a media type."""
    match = _MEDIA_TYPE.fullmatch(value.strip(" \t"))
    if match is None:
        raise InvalidContentType(
            f"content_type {value[:100]!r} is not a media type: expected type/subtype such as "
            "video/mp4, optionally followed by ; name=value parameters"
        )
    return f"{match['type']}/{match['subtype']}".lower()


@dataclass(frozen=True)
class PartUrl:
    part_number: int
    url: str


@dataclass(frozen=True)
class StartedUpload:
    upload: Upload
    video: Video
    parts: list[PartUrl]
    url_expires_in: int


def choose_part_size(size: int) -> int:
    """8 MiB, or the smallest whole MiB that keeps the upload within 10,000 parts."""
    needed = math.ceil(size / MAX_PART_NUMBER)
    return max(MIN_PART_SIZE, math.ceil(needed / MIB) * MIB)


def part_length(upload: Upload, number: int) -> int:
    """The exact size of part `number`: the part size, or what remains for the last part."""
    if number == upload.part_count:
        return upload.size - upload.part_size * (upload.part_count - 1)
    return upload.part_size


def safe_filename(name: str) -> str:
    """The last path component, without control characters: a display name, never a path."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().lstrip(".")
    return name[:255] or "upload"


def source_key(video: Video) -> str:
    """Where this record's uploaded bytes go (storage/keys.py)."""
    if video.kind is VideoKind.ATTACHMENT:
        return keys.attachment_key(video.id)
    return keys.source_key(video.id)


def purge_video_storage(storage: ObjectStorage, video_id: str) -> int:
    """Abort the video's open multipart uploads and delete every object under its prefixes,
    whatever state it was in; return how many uploads and objects went."""
    removed = 0
    for prefix in keys.prefixes(video_id):
        for open_upload in storage.list_multipart_uploads(prefix):
            try:
                storage.abort_multipart_upload(open_upload.key, open_upload.upload_id)
                removed += 1
            except NoSuchUpload:  # completed or aborted meanwhile; its object goes below
                pass
        removed += storage.delete_prefix(prefix)
    return removed


def stored_bytes(video: Video) -> int:
    """What a video takes in storage, from its record (no storage round trip): the source until
    the ladder replaces it (sources are deleted after success), then the renditions' bitrates
    times the duration; an attachment is its file. An upload that expired never stored a thing."""
    if video.status is VideoStatus.FAILED and video.error_code == "upload_expired":
        return 0
    if video.kind is VideoKind.VIDEO and video.status is VideoStatus.READY and video.duration:
        outputs = sum(int(r.get("bitrate", 0)) for r in video.renditions) * video.duration / 8
        if outputs > 0:
            return int(outputs)
    return video.size


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"  # pragma: no cover


def _now() -> datetime:
    return datetime.now(timezone.utc)


class UploadingStore(UploadStore, VideoStore, CourseStore, Protocol):
    """Uploads, the videos they fill, and the courses those go into."""


class UploadService:
    def __init__(
        self,
        store: UploadingStore,
        storage: ObjectStorage,
        *,
        max_upload_bytes: int,
        upload_ttl: int,
        url_ttl: int,
        quota_open_uploads: int = 0,
        quota_stored_bytes: int = 0,
    ) -> None:
        self.store = store
        self.storage = storage
        self.max_upload_bytes = max_upload_bytes
        self.upload_ttl = upload_ttl
        self.url_ttl = url_ttl
        # Per instructor; 0 means no limit.
        self.quota_open_uploads = quota_open_uploads
        self.quota_stored_bytes = quota_stored_bytes
        # Set by the app for /metrics: an upload completed (once each), a start refused by quota.
        self.on_completed: Callable[[Upload, Video], None] | None = None
        self.on_quota_refused: Callable[[str], None] | None = None

    # Start -------------------------------------------------------------------------------------
    def start(
        self,
        owner: User,
        *,
        filename: str,
        size: int,
        content_type: str,
        course_id: str | None = None,
        title: str | None = None,
        sha256: str | None = None,
        kind: VideoKind = VideoKind.VIDEO,
    ) -> StartedUpload:
        content_type = media_type(content_type)
        self._check_content(kind, content_type)
        if size <= 0:
            raise SizeMismatch("the file is empty: nothing to upload")
        if size > self.max_upload_bytes:
            raise PayloadTooLarge(
                f"the file is {size} bytes; the limit is {self.max_upload_bytes} bytes"
            )
        self._check_quotas(owner, size)
        if course_id is not None:
            course = self.store.get_course(course_id)
            if course is None or (course.owner_id != owner.id and owner.role is not Role.ADMIN):
                raise NotFound("course not found")
        name = safe_filename(filename)
        now = _now()
        video = Video(
            id=uuid.uuid4().hex,
            owner_id=owner.id,
            course_id=course_id,
            kind=kind,
            title=(title or name.rsplit(".", 1)[0] or name)[:200],
            filename=name,
            content_type=content_type,
            size=size,
            sha256=sha256.lower() if sha256 else None,
            status=VideoStatus.AWAITING_UPLOAD,
            created_at=now,
            updated_at=now,
        )
        key = source_key(video)
        part_size = choose_part_size(size)
        part_count = math.ceil(size / part_size)
        storage_upload_id = self.storage.create_multipart_upload(key, content_type)
        upload = Upload(
            id=uuid.uuid4().hex,
            video_id=video.id,
            owner_id=owner.id,
            key=key,
            storage_upload_id=storage_upload_id,
            size=size,
            part_size=part_size,
            part_count=part_count,
            status=UploadStatus.ACTIVE,
            created_at=now,
            expires_at=now + timedelta(seconds=self.upload_ttl),
        )
        self.store.add_video(video)
        self.store.add_upload(upload)
        log.info("upload %s started: video %s, %d bytes in %d parts", upload.id, video.id, size,
                 part_count)
        first = range(1, min(part_count, FIRST_BATCH) + 1)
        return StartedUpload(upload, video, self._sign(upload, first), self.url_ttl)

    # During --------------------------------------------------------------------------------------
    def sign_parts(self, user: User, upload_id: str, part_numbers: list[int]) -> list[PartUrl]:
        upload = self._active(user, upload_id)
        if not part_numbers:
            part_numbers = list(range(1, min(upload.part_count, MAX_BATCH) + 1))
        if len(part_numbers) > MAX_BATCH:
            raise InvalidPartNumbers(f"at most {MAX_BATCH} part URLs per request")
        bad = [n for n in part_numbers if not 1 <= n <= upload.part_count]
        if bad:
            raise InvalidPartNumbers(
                f"part numbers must be 1..{upload.part_count}; got {bad[:5]}")
        return self._sign(upload, sorted(set(part_numbers)))

    def list_parts(self, user: User, upload_id: str) -> tuple[Upload, list[UploadedPart]]:
        upload = self.get_owned(user, upload_id)
        if upload.status is not UploadStatus.ACTIVE:
            return upload, []
        return upload, self._storage_parts(upload)

    # Finish ------------------------------------------------------------------------------------
    def complete(
        self, user: User, upload_id: str, etags: dict[int, str] | None = None
    ) -> Video:
        upload = self.get_owned(user, upload_id)
        if upload.status is UploadStatus.COMPLETED:
            # A retried complete (lost response, or a crash before the video moved on).
            return self._mark_uploaded(upload)
        if upload.status is not UploadStatus.ACTIVE:
            raise InvalidState(f"the upload was {upload.status.value}; start a new upload")
        try:
            parts = self._storage_parts(upload)
            self._check_parts(upload, parts, etags or {})
            try:
                self.storage.complete_multipart_upload(upload.key, upload.storage_upload_id, parts)
            except InvalidPart as exc:
                raise UploadIncomplete(f"storage refused the parts: {exc}") from exc
        except (InvalidState, NoSuchUpload):
            # Storage has no such multipart upload any more. If an earlier complete assembled the
            # object (and the server died, or another complete raced this one, before recording
            # it), the bytes are all there: finish the job instead of asking for a new upload.
            if not self._assembled(upload):
                raise InvalidState(
                    "storage no longer has this upload; start a new upload") from None
            log.info("upload %s: storage had completed it already; recording that", upload.id)
        if self.store.get_video(upload.video_id) is None:
            # The video was deleted while storage assembled it: what was just assembled must not
            # outlive it.
            purge_video_storage(self.storage, upload.video_id)
            raise NotFound("upload not found")
        info = self.storage.head(upload.key)
        if info is None or info.size != upload.size:
            raise SizeMismatch(
                f"storage holds {info.size if info else 0} bytes; {upload.size} were declared"
            )
        if self.store.set_upload_status(
            upload.id, UploadStatus.COMPLETED, expected=UploadStatus.ACTIVE
        ) and self.on_completed is not None:
            self.on_completed(upload, self._video(upload))
        return self._mark_uploaded(upload)

    def _assembled(self, upload: Upload) -> bool:
        info = self.storage.head(upload.key)
        return info is not None and info.size == upload.size

    def _mark_uploaded(self, upload: Upload) -> Video:
        """The upload is complete: move its video on (once; a repeat returns it as it is)."""
        video = self._video(upload)
        if video.status is not VideoStatus.AWAITING_UPLOAD:
            return video
        # Attachments are stored as they are; videos go on to transcoding.
        status = VideoStatus.READY if video.kind is VideoKind.ATTACHMENT else VideoStatus.UPLOADED
        done = lifecycle.write(self.store, video, status)
        if done is not None:
            log.info("upload %s complete: video %s is %s", upload.id, video.id, status.value)
            return done
        return self._video(upload)

    def abort(self, user: User, upload_id: str) -> None:
        upload = self.get_owned(user, upload_id)
        if upload.status is UploadStatus.COMPLETED:
            raise InvalidState("the upload is complete; delete the video instead")
        self._abort(upload)
        self.store.delete_video(upload.video_id)

    def expire_abandoned(self, now: datetime | None = None) -> int:
        """Abort uploads left active past their expiry and mark their videos failed."""
        expired = self.store.list_expired_uploads(now or _now())
        for upload in expired:
            if self.store.get_video(upload.video_id) is None:
                # Its video was deleted (and a crash or a racing complete left bytes behind).
                self._abort(upload)
                purge_video_storage(self.storage, upload.video_id)
                continue
            if self._assembled(upload):  # completed in storage; the record never heard of it
                self.store.set_upload_status(upload.id, UploadStatus.COMPLETED,
                                             expected=UploadStatus.ACTIVE)
                self._mark_uploaded(upload)  # the job sweep enqueues it from `uploaded`
                log.info("upload %s: found complete in storage at expiry; kept", upload.id)
                continue
            if not self._abort(upload):
                continue
            video = self.store.get_video(upload.video_id)
            if video is not None and video.status is VideoStatus.AWAITING_UPLOAD:
                lifecycle.write(
                    self.store, video, VideoStatus.FAILED, error_code="upload_expired",
                    error_message="the upload was not completed in time; upload the file again")
            log.info("expired abandoned upload %s", upload.id)
        return len(expired)

    # Internals ---------------------------------------------------------------------------------
    def _check_quotas(self, owner: User, size: int) -> None:
        """Per-instructor limits, so one account cannot fill the storage: uploads in progress
        (each holds parts until it completes or expires) and bytes stored, counting this one.
        Read from the store: two starts racing may both pass, by one upload at most each."""
        if not (self.quota_open_uploads or self.quota_stored_bytes):
            return
        videos = self.store.list_videos(owner.id)
        if self.quota_open_uploads:
            open_uploads = sum(v.status is VideoStatus.AWAITING_UPLOAD for v in videos)
            if open_uploads >= self.quota_open_uploads:
                self._refused("open_uploads")
                raise TooManyUploads(
                    f"you have {open_uploads} uploads in progress (the limit is "
                    f"{self.quota_open_uploads}): complete or cancel one (DELETE "
                    "/api/v1/uploads/{id}; `coursecrafter upload` resumes an interrupted one) "
                    "before starting another"
                )
        if self.quota_stored_bytes:
            used = sum(stored_bytes(v) for v in videos)
            if used + size > self.quota_stored_bytes:
                self._refused("stored_bytes")
                raise StorageQuotaExceeded(
                    f"your videos take {_human(used)} of your {_human(self.quota_stored_bytes)} "
                    f"storage quota; this {_human(size)} file does not fit: delete videos you no "
                    "longer need"
                )

    def _refused(self, quota: str) -> None:
        if self.on_quota_refused is not None:
            self.on_quota_refused(quota)

    def get_owned(self, user: User, upload_id: str) -> Upload:
        upload = self.store.get_upload(upload_id)
        if upload is None or (upload.owner_id != user.id and user.role is not Role.ADMIN):
            raise NotFound("upload not found")
        # An upload goes with its video: once the video is deleted, there is nothing to
        # complete, sign or abort (and completing would assemble bytes nobody owns). An aborted
        # upload (whose video `abort` deleted) keeps answering 409 "aborted".
        if upload.status is not UploadStatus.ABORTED and self.store.get_video(
                upload.video_id) is None:
            raise NotFound("upload not found")
        return upload

    def _active(self, user: User, upload_id: str) -> Upload:
        upload = self.get_owned(user, upload_id)
        if upload.status is not UploadStatus.ACTIVE:
            raise InvalidState(f"the upload was {upload.status.value}; start a new upload")
        return upload

    def _video(self, upload: Upload) -> Video:
        video = self.store.get_video(upload.video_id)
        if video is None:
            raise NotFound("video not found")
        return video

    def _sign(self, upload: Upload, numbers: range | list[int]) -> list[PartUrl]:
        # Each URL is bound to its part's exact length: it cannot store more than was declared.
        return [
            PartUrl(n, self.storage.presign_upload_part(
                upload.key, upload.storage_upload_id, n, self.url_ttl,
                content_length=part_length(upload, n)))
            for n in numbers
        ]

    def _storage_parts(self, upload: Upload) -> list[UploadedPart]:
        try:
            return self.storage.list_parts(upload.key, upload.storage_upload_id)
        except NoSuchUpload:
            raise InvalidState("storage no longer has this upload; start a new upload") from None

    def _check_parts(
        self, upload: Upload, parts: list[UploadedPart], etags: dict[int, str]
    ) -> None:
        held = {p.part_number: p for p in parts}
        missing = [n for n in range(1, upload.part_count + 1) if n not in held]
        if missing:
            shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
            raise UploadIncomplete(f"{len(missing)} part(s) missing: {shown}")
        extra = sorted(n for n in held if n > upload.part_count)
        if extra:
            raise UploadIncomplete(f"unexpected part(s) beyond {upload.part_count}: {extra[:5]}")
        for number, part in held.items():
            expected = part_length(upload, number)
            if part.size != expected:
                raise SizeMismatch(
                    f"part {number} has {part.size} bytes; {expected} were expected"
                )
            claimed = etags.get(number)
            if claimed is not None and claimed.strip('"') != part.etag.strip('"'):
                raise UploadIncomplete(
                    f"part {number} in storage is not the part you sent (ETag differs); upload "
                    "it again"
                )

    def _abort(self, upload: Upload) -> bool:
        if not self.store.set_upload_status(
            upload.id, UploadStatus.ABORTED, expected=UploadStatus.ACTIVE
        ):
            return False
        try:
            self.storage.abort_multipart_upload(upload.key, upload.storage_upload_id)
        except NoSuchUpload:
            pass
        return True

    @staticmethod
    def _check_content(kind: VideoKind, content_type: str) -> None:
        if kind is VideoKind.VIDEO:
            major = content_type.split("/")[0]
            if major not in ("video", "audio") and content_type != "application/octet-stream":
                raise UnsupportedMediaType(
                    f"{content_type!r} is not a video or audio type; send slides and notes with "
                    "kind=attachment"
                )
        elif content_type not in ATTACHMENT_TYPES:
            raise UnsupportedMediaType(f"{content_type!r} is not an accepted attachment type")

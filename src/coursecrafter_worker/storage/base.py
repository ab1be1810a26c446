"""The object-storage port: what the application needs from a blob store, and nothing more.

Two adapters implement it: `local.LocalStorage` (a directory, served by the API with HMAC-signed
URLs that mimic S3 multipart) and `s3.S3Storage` (boto3). Both run the same contract tests
(tests/storage/test_storage_contract.py). Domain code sees only this module: no boto3, no HTTP.

Keys are chosen by callers (`uploads/{video_id}/source`, `videos/{video_id}/hls/...`) and are
checked by `validate_key` in every adapter method before anything else happens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from os import PathLike
from typing import BinaryIO, NamedTuple, Protocol, runtime_checkable

#: S3 limits that the local adapter mimics, so the embedded mode fails the way production does.
MIN_PART_SIZE = 5 * 1024 * 1024  # every part but the last
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_NUMBER = 10_000
MAX_KEY_BYTES = 1024
MAX_PRESIGN_SECONDS = 7 * 24 * 3600  # SigV4 limit


# Errors ------------------------------------------------------------------------------------
class StorageError(Exception):
    """Any storage failure (unreachable backend, permission, unexpected response)."""


class InvalidKey(StorageError, ValueError):
    """A key (or prefix) that is empty, absolute, has `.`/`..`/empty segments, a backslash, NUL or
    another control character, or is longer than 1024 UTF-8 bytes."""


class NoSuchUpload(StorageError):
    """The multipart upload does not exist (never did, completed, or aborted)."""


class NoSuchKey(StorageError):
    """The object does not exist."""


class InvalidPart(StorageError):
    """`complete_multipart_upload` named a part that storage does not have, with another ETag, out
    of order, or an empty list. Nothing is lost: the upload and its parts stay as they were."""


class PartTooSmall(InvalidPart):
    """A part other than the last is smaller than the minimum part size (S3 `EntityTooSmall`)."""


# Values ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A part that storage holds. `etag` is quoted like S3's: `"<md5 hex of the part>"`."""

    part_number: int
    size: int
    etag: str


class CompletedPart(NamedTuple):
    """What `complete_multipart_upload` takes; a plain `(part_number, etag)` tuple works too, and
    so does an `UploadedPart` (its `size` is ignored)."""

    part_number: int
    etag: str


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None = None
    content_type: str | None = None
    modified: datetime | None = None  # UTC; set by `list_objects`


@dataclass(frozen=True, slots=True)
class MultipartUploadInfo:
    """An open multipart upload (what `list_multipart_uploads` finds)."""

    key: str
    upload_id: str
    initiated: datetime  # UTC


PartSpec = CompletedPart | UploadedPart | tuple[int, str]


# The port ----------------------------------------------------------------------------------
@runtime_checkable
class ObjectStorage(Protocol):
    # Multipart upload (clients PUT parts straight to pre-signed URLs) -----------------------
    def create_multipart_upload(self, key: str, content_type: str) -> str:
        """Start a multipart upload to `key`; return the storage's upload id."""

    def presign_upload_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int,
        content_length: int | None = None,
    ) -> str:
        """A URL that the client PUTs the raw bytes of part `part_number` (1..10000) to, valid
        for `expires_in` seconds (1..7 days). The response carries the part's `ETag` header.
        Local computation only: an unknown upload shows up when the URL is used (404).

        With `content_length` (0..5 GiB) the URL is bound to that body length, so a URL handed
        to a client cannot be used to store more: a longer body is refused and nothing of it is
        stored (local: 413 `entity_too_large` while it streams; S3: the length is a signed header,
        403 `SignatureDoesNotMatch`). The client must send `Content-Length: <content_length>`."""

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        """Every part storage holds, by ascending part number. `NoSuchUpload` if unknown."""

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartSpec]
    ) -> ObjectInfo:
        """Assemble the listed parts (ascending part numbers) into `key`, atomically.
        `InvalidPart` for a missing part or another ETag (`PartTooSmall` for a non-last part
        under 5 MiB); `NoSuchUpload` if unknown. On error nothing changes."""

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        """Drop the upload and every part. `NoSuchUpload` if unknown."""

    # Objects ------------------------------------------------------------------------------
    def presign_get(self, key: str, expires_in: int, *, download_name: str | None = None) -> str:
        """A URL that GETs the object (HTTP Range supported), valid for `expires_in` seconds.
        With `download_name`, the answer says `Content-Disposition: attachment` with that file
        name (`attachment_disposition`): a browser saves it rather than showing it."""

    def head(self, key: str) -> ObjectInfo | None:
        """Size (and ETag, content type when known) of the object, None if it does not exist."""

    def download_file(self, key: str, local_path: str | PathLike[str]) -> None:
        """Copy the object to a local file (replaced atomically). `NoSuchKey` if missing."""

    def upload_file(
        self, local_path: str | PathLike[str], key: str, content_type: str
    ) -> None:
        """Store a local file as `key` (replacing any object there)."""

    def open_read(self, key: str) -> BinaryIO:
        """A binary stream of the object; the caller closes it. `NoSuchKey` if missing."""

    def delete(self, key: str) -> None:
        """Delete the object; deleting a missing object is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with `prefix` (a plain string prefix, as in S3:
        `videos/v1/` for a "directory"); return how many were deleted. The prefix must not be
        empty."""

    # Listing (reconciliation of storage with the store: finding orphans) -------------------
    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object whose key starts with `prefix` (a plain string prefix, not empty), with
        its `size` and `modified` time, in no promised order. Lazy: pages as it goes."""

    def list_prefixes(self, prefix: str) -> list[str]:
        """The "directories" right under `prefix` (which must end with `/`): each distinct
        `prefix + name + "/"` that some object key starts with, sorted. `videos/` lists
        `videos/{id}/` once per video, however many files each holds."""

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUploadInfo]:
        """The open (neither completed nor aborted) multipart uploads whose key starts with
        `prefix`, with their upload id and when they were started."""

    def ping(self) -> None:
        """Raise `StorageError` if the storage cannot be reached or used."""


# Helpers shared by the adapters --------------------------------------------------------------
def _check_path_like(value: object, what: str, *, allow_trailing_slash: bool) -> str:
    if not isinstance(value, str):
        raise InvalidKey(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidKey(f"{what} must not be empty")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"{what} is longer than {MAX_KEY_BYTES} bytes")
    if value.startswith("/"):
        raise InvalidKey(f"{what} must be relative, got {value!r}")
    if "\\" in value:
        raise InvalidKey(f"{what} must not contain a backslash: {value!r}")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidKey(f"{what} must not contain NUL or control characters: {value!r}")
    segments = value.split("/")
    if allow_trailing_slash and len(segments) > 1 and segments[-1] == "":
        segments = segments[:-1]
    for segment in segments:
        if segment in ("", ".", ".."):
            raise InvalidKey(f"{what} must not contain empty, '.' or '..' segments: {value!r}")
    return value


def validate_key(key: object) -> str:
    """Return `key` if it is a safe storage key, else raise `InvalidKey`.

    Safe means relative, `/`-separated, no empty/`.`/`..` segments (so it maps to exactly one
    file under the local root and means the same thing on S3), no backslash, NUL or control
    characters, at most 1024 UTF-8 bytes.
    """
    return _check_path_like(key, "storage key", allow_trailing_slash=False)


def validate_prefix(prefix: object) -> str:
    """Like `validate_key`, but a trailing `/` is allowed (and the prefix must not be empty)."""
    return _check_path_like(prefix, "storage prefix", allow_trailing_slash=True)


def validate_part_number(part_number: object) -> int:
    if (
        not isinstance(part_number, int)
        or isinstance(part_number, bool)
        or not 1 <= part_number <= MAX_PART_NUMBER
    ):
        raise ValueError(f"part_number must be an integer in 1..{MAX_PART_NUMBER}")
    return part_number


def validate_content_length(content_length: object) -> int | None:
    if content_length is None:
        return None
    if (
        not isinstance(content_length, int)
        or isinstance(content_length, bool)
        or not 0 <= content_length <= MAX_PART_SIZE
    ):
        raise ValueError(f"content_length must be an integer number of bytes in 0..{MAX_PART_SIZE}")
    return content_length


def validate_expires_in(expires_in: object) -> int:
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not 1 <= expires_in <= MAX_PRESIGN_SECONDS
    ):
        raise ValueError(f"expires_in must be an integer number of seconds in 1..{MAX_PRESIGN_SECONDS}")
    return expires_in


def normalize_etag(etag: str) -> str:
    """`"abc"`, `abc` and `W/"abc"` all compare as `abc`."""
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')


def quote_etag(etag: str) -> str:
    return f'"{normalize_etag(etag)}"'


def normalize_parts(parts: Iterable[PartSpec]) -> list[CompletedPart]:
    """Check the list that `complete_multipart_upload` got: not empty, valid part numbers in
    strictly ascending order, string ETags. Raise `InvalidPart` otherwise."""
    result: list[CompletedPart] = []
    for item in parts:
        if isinstance(item, UploadedPart):
            number, etag = item.part_number, item.etag
        else:
            try:
                number, etag = item  # type: ignore[misc]
            except (TypeError, ValueError):
                raise InvalidPart(f"not a (part_number, etag) pair: {item!r}") from None
        try:
            validate_part_number(number)
        except ValueError as exc:
            raise InvalidPart(str(exc)) from None
        if not isinstance(etag, str) or not normalize_etag(etag):
            raise InvalidPart(f"part {number}: the ETag must be a non-empty string")
        if result and number <= result[-1].part_number:
            raise InvalidPart("parts must be listed in strictly ascending part-number order")
        result.append(CompletedPart(number, etag))
    if not result:
        raise InvalidPart("a multipart upload needs at least one part")
    return result


def attachment_disposition(filename: str | None) -> str:
    """`Content-Disposition: attachment` with a file name safe in a header (RFC 6266: an ASCII
    fallback, and the exact name percent-encoded in `filename*`)."""
    from urllib.parse import quote

    name = "".join(c for c in (filename or "") if c.isprintable() and c not in "\\/")[:200]
    if not name.strip(". "):
        return "attachment"
    fallback = "".join(c if c.isascii() and c not in '"%;' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"

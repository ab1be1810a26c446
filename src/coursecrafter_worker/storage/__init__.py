"""Object storage: the `ObjectStorage` port and `open_storage`, which picks the adapter by URL.

    file:///abs/dir          -> LocalStorage (the embedded default; the API serves its URLs)
    s3://bucket[/prefix]     -> S3Storage (boto3; COURSECRAFTER_S3_ENDPOINT_URL for S3-compatibles)

Importing this package pulls in neither boto3 nor FastAPI (workers use it too).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .base import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    MIN_PART_SIZE,
    CompletedPart,
    InvalidKey,
    InvalidPart,
    MultipartUploadInfo,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    ObjectStorage,
    PartTooSmall,
    StorageError,
    UploadedPart,
    attachment_disposition,
    validate_key,
    validate_prefix,
)

__all__ = [
    "attachment_disposition",
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "CompletedPart",
    "InvalidKey",
    "InvalidPart",
    "MultipartUploadInfo",
    "NoSuchKey",
    "NoSuchUpload",
    "ObjectInfo",
    "ObjectStorage",
    "PartTooSmall",
    "StorageError",
    "UploadedPart",
    "open_storage",
    "validate_key",
    "validate_prefix",
]

# S3 bucket names (and the looser names S3-compatible servers accept: dots, underscores).
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,254}")


def open_storage(
    url: str,
    *,
    public_url: str,
    secret: bytes | str,
    s3_endpoint_url: str | None = None,
) -> ObjectStorage:
    """Build the storage that `COURSECRAFTER_STORAGE_URL` names.

    `public_url` and `secret` are what `LocalStorage` signs its URLs with (ignored for S3);
    `s3_endpoint_url` is `COURSECRAFTER_S3_ENDPOINT_URL` (ignored for `file://`).
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("storage URL is empty: use file:///absolute/dir or s3://bucket[/prefix]")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()

    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(
                f"storage URL {url!r} names a host; use file:///absolute/dir (three slashes)"
            )
        if parts.query or parts.fragment:
            raise ValueError(f"storage URL {url!r} must not have a query or fragment")
        path = unquote(parts.path)
        if not path or not Path(path).is_absolute():
            raise ValueError(f"storage URL {url!r} needs an absolute directory: file:///abs/dir")
        from .local import LocalStorage

        return LocalStorage(Path(path), public_url, secret)

    if scheme == "s3":
        bucket = parts.netloc
        if not bucket or not _BUCKET.fullmatch(bucket):
            raise ValueError(f"storage URL {url!r} needs a valid bucket name: s3://bucket[/prefix]")
        if parts.query or parts.fragment:
            raise ValueError(f"storage URL {url!r} must not have a query or fragment")
        prefix = unquote(parts.path).strip("/")
        if prefix:
            try:
                validate_prefix(prefix)
            except InvalidKey as exc:
                raise ValueError(f"storage URL {url!r} has an invalid prefix: {exc}") from None
        from .s3 import S3Storage

        return S3Storage(bucket, prefix=prefix, endpoint_url=s3_endpoint_url or None)

    raise ValueError(
        f"unsupported storage URL {url!r}: use file:///absolute/dir or s3://bucket[/prefix]"
    )

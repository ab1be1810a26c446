"""S3 (or any S3-compatible store: MinIO, Ceph, R2...) through boto3.

Credentials and region come from the standard AWS chain (environment, shared config, instance
role...). `COURSECRAFTER_S3_ENDPOINT_URL` becomes `endpoint_url`; with an endpoint the client uses
path-style addressing, which every S3-compatible server understands. URLs are SigV4 pre-signed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import timezone
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any, BinaryIO

from .base import (
    InvalidKey,
    InvalidPart,
    MultipartUploadInfo,
    NoSuchKey,
    NoSuchUpload,
    ObjectInfo,
    PartSpec,
    PartTooSmall,
    StorageError,
    UploadedPart,
    attachment_disposition,
    normalize_parts,
    quote_etag,
    validate_content_length,
    validate_expires_in,
    validate_key,
    validate_part_number,
    validate_prefix,
)

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        region_name: str | None = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3Storage needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_prefix(self.prefix)
        self.endpoint_url = endpoint_url or None
        # S3's maxima (and delete_objects' limit); tests lower them to exercise paging.
        self._list_parts_page_size = 1000
        self._list_objects_page_size = 1000
        if client is None:
            import boto3
            from botocore.config import Config

            config = Config(
                signature_version="s3v4",
                s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                retries={"mode": "standard", "max_attempts": 5},
                # Only the checksums S3 requires: botocore >= 1.36 otherwise adds CRC32 to
                # requests, which pre-signed part URLs cannot carry and several S3-compatible
                # servers reject.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=region_name, config=config
            )
        self.client = client

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    # Keys ---------------------------------------------------------------------------------
    def _k(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _unk(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    @contextmanager
    def _errors(self, *, key: str | None = None, upload_id: str | None = None) -> Iterator[None]:
        """Translate botocore errors into the port's."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            message = err.get("Message") or str(exc)
            if code == "NoSuchUpload":
                raise NoSuchUpload(f"no such upload {upload_id!r} for {key!r}") from exc
            if code in _NOT_FOUND_CODES:
                raise NoSuchKey(f"no such object {key!r}") from exc
            if code in ("InvalidPart", "InvalidPartOrder"):
                raise InvalidPart(message) from exc
            if code == "EntityTooSmall":
                raise PartTooSmall(message) from exc
            raise StorageError(f"S3 {code or 'error'}: {message}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"S3 unreachable or misconfigured: {exc}") from exc

    # Multipart ----------------------------------------------------------------------------
    def create_multipart_upload(self, key: str, content_type: str) -> str:
        full = self._k(key)
        with self._errors(key=key):
            response = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full, ContentType=content_type
            )
        return str(response["UploadId"])

    def presign_upload_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int,
        content_length: int | None = None,
    ) -> str:
        full = self._k(key)
        validate_part_number(part_number)
        validate_expires_in(expires_in)
        params: dict[str, Any] = {
            "Bucket": self.bucket, "Key": full, "UploadId": upload_id, "PartNumber": part_number,
        }
        # SigV4 signs Content-Length as a header (X-Amz-SignedHeaders=content-length;host): S3
        # refuses a PUT of any other length, so the URL cannot store more than the part.
        if validate_content_length(content_length) is not None:
            params["ContentLength"] = content_length
        with self._errors(key=key, upload_id=upload_id):
            return str(
                self.client.generate_presigned_url(
                    "upload_part",
                    Params=params,
                    ExpiresIn=expires_in,
                    HttpMethod="PUT",
                )
            )

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        full = self._k(key)
        parts: list[UploadedPart] = []
        marker = 0
        with self._errors(key=key, upload_id=upload_id):
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket,
                    Key=full,
                    UploadId=upload_id,
                    MaxParts=self._list_parts_page_size,
                    PartNumberMarker=marker,
                )
                for p in page.get("Parts", []):
                    parts.append(
                        UploadedPart(int(p["PartNumber"]), int(p["Size"]), quote_etag(p["ETag"]))
                    )
                if not page.get("IsTruncated"):
                    break
                next_marker = int(page.get("NextPartNumberMarker") or 0)
                if next_marker <= marker:  # a server that never advances: do not spin
                    raise StorageError("S3 list_parts pagination did not advance")
                marker = next_marker
        parts.sort(key=lambda p: p.part_number)
        return parts

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartSpec]
    ) -> ObjectInfo:
        full = self._k(key)
        normalized = normalize_parts(parts)
        with self._errors(key=key, upload_id=upload_id):
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": p.part_number, "ETag": quote_etag(p.etag)}
                        for p in normalized
                    ]
                },
            )
        info = self.head(key)
        if info is None:  # pragma: no cover - S3 is read-after-write consistent
            raise StorageError(f"completed upload {key!r} is not readable")
        etag = response.get("ETag")
        return ObjectInfo(key, info.size, quote_etag(etag) if etag else info.etag, info.content_type)

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        full = self._k(key)
        with self._errors(key=key, upload_id=upload_id):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)

    # Objects ------------------------------------------------------------------------------
    def presign_get(self, key: str, expires_in: int, *, download_name: str | None = None) -> str:
        full = self._k(key)
        validate_expires_in(expires_in)
        params = {"Bucket": self.bucket, "Key": full}
        if download_name is not None:
            # Signed into the URL: S3 answers with this Content-Disposition.
            params["ResponseContentDisposition"] = attachment_disposition(download_name)
        with self._errors(key=key):
            return str(
                self.client.generate_presigned_url(
                    "get_object",
                    Params=params,
                    ExpiresIn=expires_in,
                    HttpMethod="GET",
                )
            )

    def head(self, key: str) -> ObjectInfo | None:
        full = self._k(key)
        try:
            with self._errors(key=key):
                r = self.client.head_object(Bucket=self.bucket, Key=full)
        except NoSuchKey:
            return None
        etag = r.get("ETag")
        return ObjectInfo(
            key, int(r["ContentLength"]), quote_etag(etag) if etag else None, r.get("ContentType")
        )

    def download_file(self, key: str, local_path: str | PathLike[str]) -> None:
        full = self._k(key)
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        os.close(fd)
        try:
            with self._errors(key=key):
                self.client.download_file(self.bucket, full, tmp_name)
            os.replace(tmp_name, target)
        finally:
            Path(tmp_name).unlink(missing_ok=True)

    def upload_file(self, local_path: str | PathLike[str], key: str, content_type: str) -> None:
        full = self._k(key)
        with self._errors(key=key):
            self.client.upload_file(
                os.fspath(local_path), self.bucket, full, ExtraArgs={"ContentType": content_type}
            )

    def open_read(self, key: str) -> BinaryIO:
        full = self._k(key)
        with self._errors(key=key):
            response = self.client.get_object(Bucket=self.bucket, Key=full)
        return response["Body"]  # botocore StreamingBody: read(), iter_chunks(), close()

    def delete(self, key: str) -> None:
        full = self._k(key)
        with self._errors(key=key):
            self.client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        deleted = 0
        with self._errors(key=prefix):
            paginator = self.client.get_paginator("list_objects_v2")
            pages = paginator.paginate(
                Bucket=self.bucket,
                Prefix=full_prefix,
                PaginationConfig={"PageSize": self._list_objects_page_size},
            )
            for page in pages:
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if not keys:
                    continue
                # A page holds at most 1000 keys: exactly delete_objects' limit.
                r = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True}
                )
                errors = r.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise StorageError(
                        f"could not delete {len(errors)} object(s) under {prefix!r}, e.g. "
                        f"{self._unk(first.get('Key', '?'))!r}: {first.get('Code')} "
                        f"{first.get('Message', '')}".rstrip()
                    )
                deleted += len(keys)
        return deleted

    # Listing ------------------------------------------------------------------------------
    def _full_prefix(self, prefix: str) -> str:
        validate_prefix(prefix)
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        full_prefix = self._full_prefix(prefix)
        with self._errors(key=prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full_prefix,
                PaginationConfig={"PageSize": self._list_objects_page_size},
            )
            for page in pages:
                for o in page.get("Contents", []):
                    etag = o.get("ETag")
                    yield ObjectInfo(
                        self._unk(o["Key"]), int(o["Size"]), quote_etag(etag) if etag else None,
                        modified=o["LastModified"].astimezone(timezone.utc),
                    )

    def list_prefixes(self, prefix: str) -> list[str]:
        if not prefix.endswith("/"):
            raise InvalidKey(f"a prefix to list directories of must end with '/': {prefix!r}")
        full_prefix = self._full_prefix(prefix)
        found: list[str] = []
        with self._errors(key=prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full_prefix, Delimiter="/",
                PaginationConfig={"PageSize": self._list_objects_page_size},
            )
            for page in pages:
                found.extend(self._unk(p["Prefix"]) for p in page.get("CommonPrefixes", []))
        return sorted(found)

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUploadInfo]:
        full_prefix = self._full_prefix(prefix)
        uploads: list[MultipartUploadInfo] = []
        with self._errors(key=prefix):
            pages = self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=full_prefix,
            )
            for page in pages:
                for u in page.get("Uploads", []):
                    uploads.append(MultipartUploadInfo(
                        self._unk(u["Key"]), str(u["UploadId"]),
                        u["Initiated"].astimezone(timezone.utc)))
        return sorted(uploads, key=lambda u: (u.key, u.initiated))

    def ping(self) -> None:
        try:
            with self._errors(key=None):
                self.client.head_bucket(Bucket=self.bucket)
        except NoSuchKey as exc:  # head_bucket answers a bare 404
            raise StorageError(f"S3 bucket {self.bucket!r} does not exist") from exc

"""The embedded object storage: a local directory that mimics S3 multipart uploads.

The API serves it (`coursecrafter_server.api.blobs.blob_router`) through pre-signed URLs that
mimic S3's (signed and checked by `blob_urls.BlobUrlSigner`).

Layout under `root` (every path is resolved and checked to stay under its subtree):

    objects/{key}                   the objects, one file each
    meta/{key}.json                 content type and ETag of the object (with the inode, size and
                                    mtime it describes, so a stale record is ignored)
    multipart/{upload_id}/upload.json              the upload's key and content type
    multipart/{upload_id}/{part:05d}.part|.json    a part and its ETag record
    tmp/                            files being written; renamed into place when complete

Every file appears by an atomic rename of a complete temp file, so a half-written part or object
never counts. Part bodies are streamed to disk; nothing holds a whole part in memory.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import re
import secrets
import shutil
import stat as stat_mod
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path
from typing import BinaryIO

from .blob_urls import BlobUrlSigner
from .base import (
    MAX_PART_SIZE,
    MIN_PART_SIZE,
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
    normalize_etag,
    normalize_parts,
    validate_content_length,
    validate_expires_in,
    validate_key,
    validate_part_number,
    validate_prefix,
)

COPY_CHUNK = 1024 * 1024
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_PART_FILE = re.compile(r"(\d{5})\.part")
_DIGITS = re.compile(r"\d{1,12}")

mimetypes.add_type("application/vnd.apple.mpegurl", ".m3u8")
mimetypes.add_type("video/mp2t", ".ts")
mimetypes.add_type("video/iso.segment", ".m4s")


class EntityTooLarge(StorageError):
    """A part larger than the maximum part size."""


def _md5() -> "hashlib._Hash":
    return hashlib.md5(usedforsecurity=False)


def _is_inside(path: Path, base: Path) -> bool:
    try:
        return path.resolve().is_relative_to(base)
    except (OSError, RuntimeError):  # symlink loops and the like
        return False


class PartWriter:
    """Streams one part to a temp file; `commit()` renames it into the upload's staging dir.

    Use as a context manager (or call `abort()`): an exception before `commit()` deletes the temp
    file, so nothing half-written is ever visible.
    """

    def __init__(
        self, storage: LocalStorage, key: str, upload_id: str, part_number: int,
        max_size: int | None = None,
    ) -> None:
        self._storage = storage
        # The URL's signed length when it has one: never more than the storage's part limit.
        self.max_size = storage.max_part_size if max_size is None else min(
            max_size, storage.max_part_size)
        self.key = key
        self.upload_id = upload_id
        self.part_number = validate_part_number(part_number)
        self._dir = storage._load_upload(key, upload_id)[0]
        fd, name = tempfile.mkstemp(prefix="part-", dir=storage._tmp)
        self._tmp: Path | None = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._md5 = _md5()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._file is None:
            raise StorageError("part writer is closed")
        if self.size + len(data) > self.max_size:
            raise EntityTooLarge(f"this part may hold at most {self.max_size} bytes")
        self._file.write(data)
        self._md5.update(data)
        self.size += len(data)

    def commit(self) -> UploadedPart:
        if self._file is None:
            raise StorageError("part writer is closed")
        try:
            self._file.flush()
            if self._storage.fsync:
                os.fsync(self._file.fileno())
            st = os.fstat(self._file.fileno())
            self._file.close()
            self._file = None
            etag = self._md5.hexdigest()
            record = _record(st, etag=etag)
            part_path = self._dir / f"{self.part_number:05d}.part"
            # The part first, then its record: a reader that sees a record not matching the part
            # file's inode/size/mtime (a crash or a concurrent PUT in between) ignores it and
            # hashes the part instead.
            try:
                os.replace(self._tmp, part_path)
            except FileNotFoundError:
                raise NoSuchUpload(f"upload {self.upload_id!r} was completed or aborted") from None
            self._tmp = None
            try:
                self._storage._write_json(self._dir / f"{self.part_number:05d}.json", record)
            except (FileNotFoundError, NotADirectoryError):
                raise NoSuchUpload(f"upload {self.upload_id!r} was completed or aborted") from None
            return UploadedPart(self.part_number, st.st_size, f'"{etag}"')
        finally:
            self.abort()

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _record(st: os.stat_result, **extra: object) -> dict[str, object]:
    return {"ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns, **extra}


def _record_matches(record: Mapping[str, object] | None, st: os.stat_result) -> bool:
    return (
        record is not None
        and record.get("ino") == st.st_ino
        and record.get("size") == st.st_size
        and record.get("mtime_ns") == st.st_mtime_ns
    )


class LocalStorage:
    def __init__(
        self,
        root: str | PathLike[str],
        public_url: str,
        secret: bytes | str,
        *,
        min_part_size: int = MIN_PART_SIZE,
        max_part_size: int = MAX_PART_SIZE,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(secret, str):
            secret = secret.encode()
        self.urls = BlobUrlSigner(secret, public_url, clock)
        self.public_url = self.urls.public_url
        self.min_part_size = min_part_size
        self.max_part_size = max_part_size
        self.fsync = fsync
        self._clock = clock
        root_path = Path(root).expanduser()
        try:
            root_path.mkdir(parents=True, exist_ok=True)
            self.root = root_path.resolve(strict=True)
            self._objects = self.root / "objects"
            self._meta = self.root / "meta"
            self._multipart = self.root / "multipart"
            self._tmp = self.root / "tmp"
            for d in (self._objects, self._meta, self._multipart, self._tmp):
                d.mkdir(exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot use {root_path} as the storage root: {exc}") from exc

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    # Paths --------------------------------------------------------------------------------
    def _under(self, base: Path, key: str, suffix: str = "") -> Path:
        path = base.joinpath(*key.split("/"))
        if suffix:
            path = path.with_name(path.name + suffix)
        if not _is_inside(path, base):
            raise InvalidKey(f"storage key {key!r} escapes the storage root")
        return path

    def _object_path(self, key: str) -> Path:
        return self._under(self._objects, validate_key(key))

    def _meta_path(self, key: str) -> Path:
        return self._under(self._meta, key, ".json")

    def _upload_dir(self, upload_id: str) -> Path:
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise NoSuchUpload(f"no such upload {upload_id!r}")
        return self._multipart / upload_id

    def _load_upload(self, key: str, upload_id: str) -> tuple[Path, dict[str, object]]:
        validate_key(key)
        directory = self._upload_dir(upload_id)
        try:
            meta = json.loads((directory / "upload.json").read_text("utf-8"))
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchUpload(f"no such upload {upload_id!r} for {key!r}") from None
        except (OSError, ValueError) as exc:
            raise StorageError(f"unreadable upload record {upload_id!r}: {exc}") from exc
        if meta.get("key") != key:
            raise NoSuchUpload(f"no such upload {upload_id!r} for {key!r}")
        return directory, meta

    # Small files --------------------------------------------------------------------------
    def _temp(self, prefix: str) -> tuple[BinaryIO, Path]:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=self._tmp)
        return os.fdopen(fd, "wb"), Path(name)

    def _write_json(self, path: Path, data: Mapping[str, object]) -> None:
        f, tmp = self._temp("json-")
        try:
            with f:
                f.write(json.dumps(data).encode())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _read_json(path: Path) -> dict[str, object] | None:
        try:
            value = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _install(
        self, tmp: Path, st: os.stat_result, key: str, content_type: str, etag: str
    ) -> None:
        """Rename a complete temp file to `key`, then record its content type and ETag."""
        target = self._object_path(key)
        for attempt in range(3):
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
                break
            except FileNotFoundError:
                # A concurrent delete pruned the (empty) parent between mkdir and rename.
                if attempt == 2:
                    raise
            except (NotADirectoryError, FileExistsError, IsADirectoryError) as exc:
                raise StorageError(
                    f"storage key {key!r} conflicts with an existing object (a local directory "
                    "cannot hold both `a` and `a/b`)"
                ) from exc
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        self._write_json(meta, _record(st, content_type=content_type, etag=etag))

    def _prune(self, directory: Path, base: Path) -> None:
        """Remove empty directories from `directory` up to (not including) `base`."""
        while directory != base and directory.is_relative_to(base):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _copy(self, src: BinaryIO, dst: BinaryIO, md5: hashlib._Hash | None = None) -> int:
        total = 0
        while chunk := src.read(COPY_CHUNK):
            dst.write(chunk)
            if md5 is not None:
                md5.update(chunk)
            total += len(chunk)
        return total

    @staticmethod
    def _append(src: BinaryIO, dst: BinaryIO) -> None:
        """Append the rest of `src` to `dst`: in the kernel where it can (copy_file_range, which
        also reflinks on XFS/Btrfs), else through a 1 MiB buffer."""
        dst.flush()
        copy_file_range = getattr(os, "copy_file_range", None)
        if copy_file_range is not None:
            copied = 0
            try:
                while n := copy_file_range(src.fileno(), dst.fileno(), 64 * COPY_CHUNK):
                    copied += n
                return
            except OSError:
                if copied:  # failed half-way: do not guess where the offsets are
                    raise
        while chunk := src.read(COPY_CHUNK):
            dst.write(chunk)
        dst.flush()

    def _finish(self, f: BinaryIO) -> os.stat_result:
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        return os.fstat(f.fileno())

    # URL signing (blob_urls.py) ------------------------------------------------------------
    def verify_url(
        self, method: str, key: str, query: Mapping[str, str]
    ) -> tuple[str, int | None, int | None]:
        """See `BlobUrlSigner.verify`."""
        return self.urls.verify(method, key, query)

    # Multipart ----------------------------------------------------------------------------
    def create_multipart_upload(self, key: str, content_type: str) -> str:
        validate_key(key)
        self._object_path(key)
        upload_id = secrets.token_hex(16)
        directory = self._multipart / upload_id
        try:
            directory.mkdir()
            self._write_json(
                directory / "upload.json",
                {"key": key, "content_type": content_type, "created": time.time()},
            )
        except OSError as exc:
            shutil.rmtree(directory, ignore_errors=True)
            raise StorageError(f"cannot create an upload: {exc}") from exc
        return upload_id

    def presign_upload_part(
        self, key: str, upload_id: str, part_number: int, expires_in: int,
        content_length: int | None = None,
    ) -> str:
        validate_key(key)
        validate_part_number(part_number)
        validate_expires_in(expires_in)
        validate_content_length(content_length)
        if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
            raise NoSuchUpload(f"no such upload {upload_id!r}")
        expires = int(self._clock()) + expires_in
        signature = self.urls.signature("PUT", key, upload_id, part_number, expires, content_length)
        params: dict[str, object] = {"uploadId": upload_id, "partNumber": part_number}
        if content_length is not None:
            params["length"] = content_length
        return self.urls.url(key, {**params, "expires": expires, "signature": signature})

    def open_part_writer(
        self, key: str, upload_id: str, part_number: int, max_size: int | None = None
    ) -> PartWriter:
        """Start writing a part (what the PUT handler streams into), refusing more than
        `max_size` bytes (the URL's signed length). `NoSuchUpload` if unknown."""
        return PartWriter(self, key, upload_id, part_number, max_size)

    def write_part(
        self, key: str, upload_id: str, part_number: int, data: bytes | Iterable[bytes] | BinaryIO
    ) -> UploadedPart:
        """Store a part from bytes, an iterable of chunks or a binary file (tests, tools)."""
        with self.open_part_writer(key, upload_id, part_number) as writer:
            if isinstance(data, (bytes, bytearray, memoryview)):
                writer.write(data)
            elif hasattr(data, "read"):
                while chunk := data.read(COPY_CHUNK):  # type: ignore[union-attr]
                    writer.write(chunk)
            else:
                for chunk in data:  # type: ignore[union-attr]
                    writer.write(chunk)
            return writer.commit()

    def _part_etag(self, directory: Path, number: int, st: os.stat_result, f: BinaryIO | None) -> str:
        """The md5 hex of a part: from its record when the record describes this very file,
        else hashed (and the record repaired)."""
        record = self._read_json(directory / f"{number:05d}.json")
        if _record_matches(record, st) and isinstance(record.get("etag"), str):  # type: ignore[union-attr]
            return str(record["etag"])  # type: ignore[index]
        md5 = _md5()
        opened = f or open(directory / f"{number:05d}.part", "rb")  # noqa: SIM115
        try:
            while chunk := opened.read(COPY_CHUNK):
                md5.update(chunk)
        finally:
            if f is None:
                opened.close()
            else:
                f.seek(0)
        etag = md5.hexdigest()
        try:
            self._write_json(directory / f"{number:05d}.json", _record(st, etag=etag))
        except OSError:
            pass
        return etag

    def list_parts(self, key: str, upload_id: str) -> list[UploadedPart]:
        directory, _ = self._load_upload(key, upload_id)
        parts: list[UploadedPart] = []
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            raise NoSuchUpload(f"no such upload {upload_id!r} for {key!r}") from None
        for entry in entries:
            match = _PART_FILE.fullmatch(entry.name)
            if not match:
                continue
            number = int(match.group(1))
            try:
                with open(entry.path, "rb") as f:
                    st = os.fstat(f.fileno())
                    etag = self._part_etag(directory, number, st, f)
            except FileNotFoundError:  # completed or aborted meanwhile
                continue
            parts.append(UploadedPart(number, st.st_size, f'"{etag}"'))
        parts.sort(key=lambda p: p.part_number)
        return parts

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[PartSpec]
    ) -> ObjectInfo:
        directory, meta = self._load_upload(key, upload_id)
        wanted = normalize_parts(parts)
        out, tmp = self._temp("object-")
        md5s = bytearray()
        expected_size = 0
        try:
            with out:
                for index, part in enumerate(wanted):
                    n = part.part_number
                    try:
                        f = open(directory / f"{n:05d}.part", "rb")  # noqa: SIM115
                    except FileNotFoundError:
                        if not directory.exists():
                            raise NoSuchUpload(f"upload {upload_id!r} was completed or aborted") from None
                        raise InvalidPart(f"part {n} has not been uploaded") from None
                    with f:
                        # Verify and copy from the same open file: a concurrent re-PUT of this
                        # part (which renames a new file over the name) cannot slip other bytes
                        # in after the check. Parts are never modified in place.
                        st = os.fstat(f.fileno())
                        if index < len(wanted) - 1 and st.st_size < self.min_part_size:
                            raise PartTooSmall(
                                f"part {n} is {st.st_size} bytes; every part but the last must "
                                f"be at least {self.min_part_size} bytes"
                            )
                        etag = self._part_etag(directory, n, st, f)
                        if etag != normalize_etag(part.etag):
                            raise InvalidPart(f"part {n}: the ETag does not match the stored part")
                        self._append(f, out)
                        md5s += bytes.fromhex(etag)
                        expected_size += st.st_size
                st = self._finish(out)
            if st.st_size != expected_size:
                raise StorageError(f"assembled {st.st_size} bytes, expected {expected_size}")
            # Claim the upload: exactly one of concurrent complete/abort calls wins this rename.
            claimed = self._tmp / f"done-{upload_id}-{secrets.token_hex(4)}"
            try:
                os.rename(directory, claimed)
            except FileNotFoundError:
                raise NoSuchUpload(f"upload {upload_id!r} was completed or aborted") from None
            try:
                etag = f'"{hashlib.md5(bytes(md5s), usedforsecurity=False).hexdigest()}-{len(wanted)}"'
                self._install(tmp, st, key, str(meta.get("content_type") or ""), etag)
            except BaseException:
                os.rename(claimed, directory)  # give the upload back: nothing is lost
                raise
            shutil.rmtree(claimed, ignore_errors=True)
            return ObjectInfo(key, st.st_size, etag, str(meta.get("content_type") or "") or None)
        except OSError as exc:
            raise StorageError(f"cannot complete upload {upload_id!r}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def abort_multipart_upload(self, key: str, upload_id: str) -> None:
        directory, _ = self._load_upload(key, upload_id)
        claimed = self._tmp / f"abort-{upload_id}-{secrets.token_hex(4)}"
        try:
            os.rename(directory, claimed)
        except FileNotFoundError:
            raise NoSuchUpload(f"upload {upload_id!r} was completed or aborted") from None
        shutil.rmtree(claimed, ignore_errors=True)

    # Objects ------------------------------------------------------------------------------
    def presign_get(self, key: str, expires_in: int, *, download_name: str | None = None) -> str:
        validate_key(key)
        validate_expires_in(expires_in)
        expires = int(self._clock()) + expires_in
        params: dict[str, object] = {
            "expires": expires, "signature": self.urls.signature("GET", key, "", None, expires)}
        if download_name:
            # Unsigned: it only names the saved file; /blobs always answers `attachment`.
            params["filename"] = download_name
        return self.urls.url(key, params)

    def stat_object(self, key: str) -> tuple[Path, ObjectInfo]:
        """The file and info of an object (what the GET handler serves). `NoSuchKey` if missing."""
        path = self._object_path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchKey(f"no such object {key!r}") from None
        if not stat_mod.S_ISREG(st.st_mode):
            raise NoSuchKey(f"no such object {key!r}")
        record = self._read_json(self._meta_path(key))
        etag = content_type = None
        if _record_matches(record, st):
            etag = record.get("etag") or None  # type: ignore[union-attr]
            content_type = record.get("content_type") or None  # type: ignore[union-attr]
        if content_type is None:
            content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        return path, ObjectInfo(key, st.st_size, etag, content_type)  # type: ignore[arg-type]

    def head(self, key: str) -> ObjectInfo | None:
        try:
            return self.stat_object(key)[1]
        except NoSuchKey:
            return None

    def open_read(self, key: str) -> BinaryIO:
        path = self._object_path(key)
        try:
            return open(path, "rb")  # noqa: SIM115
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NoSuchKey(f"no such object {key!r}") from None

    def download_file(self, key: str, local_path: str | PathLike[str]) -> None:
        target = Path(local_path)
        with self.open_read(key) as src:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as dst:
                    self._copy(src, dst)
                os.replace(name, target)
            finally:
                Path(name).unlink(missing_ok=True)

    def upload_file(self, local_path: str | PathLike[str], key: str, content_type: str) -> None:
        validate_key(key)
        self._object_path(key)
        out, tmp = self._temp("object-")
        try:
            md5 = _md5()
            with out, open(local_path, "rb") as src:
                self._copy(src, out, md5)
                st = self._finish(out)
            self._install(tmp, st, key, content_type, f'"{md5.hexdigest()}"')
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not Path(local_path).exists():
                raise
            raise StorageError(f"cannot store {key!r}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def delete(self, key: str) -> None:
        path = self._object_path(key)
        meta = self._meta_path(key)
        if path.is_dir() and not path.is_symlink():
            return  # a "directory" of other keys, not an object
        try:
            path.unlink(missing_ok=True)
        except NotADirectoryError:  # a parent is an object: no such key
            return
        meta.unlink(missing_ok=True)
        self._prune(path.parent, self._objects)
        self._prune(meta.parent, self._meta)

    def delete_prefix(self, prefix: str) -> int:
        validate_prefix(prefix)
        directory, _, name_start = prefix.rpartition("/")
        base = self._under(self._objects, directory) if directory else self._objects
        if not base.is_dir() or base.is_symlink():
            return 0
        meta_base = self._meta.joinpath(*directory.split("/")) if directory else self._meta
        deleted = 0

        def drop(file: Path) -> None:
            nonlocal deleted
            file.unlink(missing_ok=True)
            deleted += 1
            rel = file.relative_to(self._objects)
            self._meta.joinpath(rel.parent, rel.name + ".json").unlink(missing_ok=True)

        for entry in list(os.scandir(base)):
            if not entry.name.startswith(name_start):
                continue
            if entry.is_dir(follow_symlinks=False):
                for dirpath, _dirs, files in os.walk(entry.path, topdown=False):
                    for name in files:
                        drop(Path(dirpath, name))
                    for name in _dirs:
                        try:
                            os.rmdir(Path(dirpath, name))
                        except OSError:
                            pass
                try:
                    os.rmdir(entry.path)
                except OSError:
                    pass
                shutil.rmtree(meta_base / entry.name, ignore_errors=True)
            else:
                drop(Path(entry.path))
        self._prune(base, self._objects)
        self._prune(meta_base, self._meta)
        return deleted

    # Listing ------------------------------------------------------------------------------
    def _listing_base(self, prefix: str) -> tuple[Path | None, str]:
        """The directory a prefix's keys live in (None if there is none) and the start of the
        names in it that match."""
        validate_prefix(prefix)
        directory, _, name_start = prefix.rpartition("/")
        base = self._under(self._objects, directory) if directory else self._objects
        if not base.is_dir() or base.is_symlink():
            return None, name_start
        return base, name_start

    def _listed(self, path: Path) -> ObjectInfo | None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # deleted while we listed
            return None
        if not stat_mod.S_ISREG(st.st_mode):
            return None
        modified = datetime.fromtimestamp(st.st_mtime, timezone.utc)
        return ObjectInfo(path.relative_to(self._objects).as_posix(), st.st_size, modified=modified)

    def list_objects(self, prefix: str) -> Iterator[ObjectInfo]:
        base, name_start = self._listing_base(prefix)
        if base is None:
            return
        for entry in list(os.scandir(base)):
            if not entry.name.startswith(name_start):
                continue
            paths: Iterable[Path]
            if entry.is_dir(follow_symlinks=False):
                paths = (Path(d, f) for d, _, files in os.walk(entry.path) for f in files)
            else:
                paths = (Path(entry.path),)
            for path in paths:
                if (info := self._listed(path)) is not None:
                    yield info

    def list_prefixes(self, prefix: str) -> list[str]:
        if not prefix.endswith("/"):
            raise InvalidKey(f"a prefix to list directories of must end with '/': {prefix!r}")
        base, _ = self._listing_base(prefix)
        if base is None:
            return []
        found = []
        for entry in os.scandir(base):
            # Only "directories" that hold an object: an empty one left by a delete is no key.
            if entry.is_dir(follow_symlinks=False) and any(
                files for _, _, files in os.walk(entry.path)
            ):
                found.append(f"{prefix}{entry.name}/")
        return sorted(found)

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUploadInfo]:
        validate_prefix(prefix)
        uploads = []
        for entry in os.scandir(self._multipart):
            if not _UPLOAD_ID.fullmatch(entry.name):
                continue
            meta = self._read_json(Path(entry.path, "upload.json"))
            key = meta.get("key") if meta else None
            if not isinstance(key, str) or not key.startswith(prefix):
                continue
            created = meta.get("created")  # type: ignore[union-attr]
            if not isinstance(created, (int, float)):
                continue
            initiated = datetime.fromtimestamp(created, timezone.utc)
            uploads.append(MultipartUploadInfo(key, entry.name, initiated))
        return sorted(uploads, key=lambda u: (u.key, u.initiated))

    def ping(self) -> None:
        try:
            for d in (self._objects, self._meta, self._multipart, self._tmp):
                if not d.is_dir():
                    raise StorageError(f"storage directory {d} is missing")
            f, tmp = self._temp("ping-")
            f.close()
            tmp.unlink()
        except OSError as exc:
            raise StorageError(f"storage root {self.root} is not usable: {exc}") from exc

    def purge_stale(self, older_than: float = 24 * 3600) -> int:
        """Delete leftovers of crashed writes (temp files) and multipart uploads not touched for
        `older_than` seconds, like an S3 lifecycle rule. Returns how many entries were removed."""
        cutoff = time.time() - older_than
        removed = 0
        for base in (self._tmp, self._multipart):
            for entry in list(os.scandir(base)):
                try:
                    newest = entry.stat(follow_symlinks=False).st_mtime
                    if entry.is_dir(follow_symlinks=False):
                        for sub in os.scandir(entry.path):
                            newest = max(newest, sub.stat(follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue
                if newest >= cutoff:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed

"""HTTP face of `LocalStorage`: the pre-signed URLs it hands out point here.

    PUT /blobs/{key}?uploadId=..&partNumber=..&expires=..&signature=..   (raw part bytes)
        200 with the part's `ETag` header, like S3's UploadPart
    GET /blobs/{key}?expires=..&signature=..                              (HTTP Range supported)

Errors are `{"error": {"code", "message"}}`: 400 `invalid_key`, 403 `signature_invalid` /
`url_expired`, 404 `no_such_upload` / `no_such_key`, 413 `entity_too_large`.

Mount it at the application root (`app.include_router(blob_router(get_storage))`), since the URLs
are `{public_url}/blobs/...`, and only when the storage is a `LocalStorage`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from coursecrafter_worker.storage.base import (
    InvalidKey,
    NoSuchKey,
    NoSuchUpload,
    attachment_disposition,
    validate_key,
)
from coursecrafter_worker.storage.blob_urls import SignatureInvalid, UrlExpired
from coursecrafter_worker.storage.local import EntityTooLarge, LocalStorage, PartWriter

#: Body bytes gathered before one (threaded) disk write: bounds memory per request.
WRITE_BUFFER = 1024 * 1024


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _check(
    storage: Any, method: str, key: str, request: Request
) -> tuple[str, int | None, int | None] | JSONResponse:
    if not isinstance(storage, LocalStorage):
        return _error(404, "not_found", "this server does not serve blobs")
    try:
        validate_key(key)
    except InvalidKey as exc:
        return _error(400, "invalid_key", str(exc))
    try:
        return storage.verify_url(method, key, request.query_params)
    except UrlExpired as exc:
        return _error(403, "url_expired", str(exc))
    except SignatureInvalid as exc:
        return _error(403, "signature_invalid", str(exc))


def blob_router(storage_getter: Callable[..., LocalStorage]) -> APIRouter:
    """Routes serving `LocalStorage` blobs. `storage_getter` is a FastAPI dependency (a plain
    zero-argument callable works, so does one taking `request: Request`)."""
    router = APIRouter(include_in_schema=False)

    @router.put("/blobs/{key:path}")
    async def put_part(
        key: str, request: Request, storage: LocalStorage = Depends(storage_getter)
    ) -> Response:
        checked = _check(storage, "PUT", key, request)
        if isinstance(checked, Response):
            return checked
        upload_id, part_number, length = checked
        assert part_number is not None
        # A URL bound to a length (what the API hands out) stores at most that many bytes.
        limit = storage.max_part_size if length is None else min(length, storage.max_part_size)
        too_large = _error(413, "entity_too_large", f"this part URL accepts at most {limit} bytes")

        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return too_large

        try:
            writer: PartWriter = await run_in_threadpool(
                storage.open_part_writer, key, upload_id, part_number, limit
            )
        except NoSuchUpload as exc:
            return _error(404, "no_such_upload", str(exc))
        try:
            buffer = bytearray()
            received = 0
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:  # chunked or lying body: stop before writing any of it
                    return too_large
                buffer += chunk
                if len(buffer) >= WRITE_BUFFER:
                    await run_in_threadpool(writer.write, buffer)
                    buffer = bytearray()
            if buffer:
                await run_in_threadpool(writer.write, buffer)
            del buffer
            part = await run_in_threadpool(writer.commit)
        except EntityTooLarge:
            return too_large
        except NoSuchUpload as exc:
            return _error(404, "no_such_upload", str(exc))
        except ClientDisconnect:
            return Response(status_code=400)
        finally:
            writer.abort()  # no-op after commit; drops the temp file otherwise
        return Response(status_code=200, headers={"ETag": part.etag})

    @router.api_route("/blobs/{key:path}", methods=["GET", "HEAD"])
    async def get_blob(
        key: str, request: Request, storage: LocalStorage = Depends(storage_getter)
    ) -> Response:
        # HEAD is answered with a GET signature (headers of what the same URL would GET).
        checked = _check(storage, "GET", key, request)
        if isinstance(checked, Response):
            return checked
        try:
            path, info = await run_in_threadpool(storage.stat_object, key)
        except NoSuchKey as exc:
            return _error(404, "no_such_key", str(exc))
        # Never shown inline from the API's origin: a browser saves it (players fetch() it, which
        # ignores the header); the name is the one `presign_get(download_name=)` put in the URL.
        headers = {"Cache-Control": "private, max-age=3600",
                   "Content-Disposition": attachment_disposition(
                       request.query_params.get("filename"))}
        if info.etag:
            headers["ETag"] = info.etag
        return FileResponse(path, media_type=info.content_type, headers=headers)

    return router

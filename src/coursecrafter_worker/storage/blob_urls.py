"""Signed URLs of the local storage: what `LocalStorage` hands out and the API's `/blobs` routes
check. They mimic S3's pre-signed URLs:

    {public_url}/blobs/{key}?[uploadId=..&partNumber=..&[length=..&]]expires=<unix s>&signature=<hex>

    signature = hex HMAC-SHA256(secret, "coursecrafter-blob-v1\\n<METHOD>\\n<key>\\n<uploadId>\\n
                                        <partNumber>\\n<expires>[\\n<length>]")

(uploadId and partNumber empty for GET; the length line only for a part URL bound to a length,
whose PUT then may carry at most that many bytes). The key in the string is the decoded key; keys
cannot contain newlines, and upload ids are hex, so the string is unambiguous.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from urllib.parse import quote, urlencode

from .base import InvalidKey, StorageError, validate_key

SIGNATURE_VERSION = "coursecrafter-blob-v1"
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_DIGITS = re.compile(r"\d{1,12}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


class SignatureInvalid(StorageError):
    """A URL whose signature is missing, malformed, or not ours for this method/key/upload/part."""


class UrlExpired(StorageError):
    """A correctly signed URL past its `expires` time."""


class BlobUrlSigner:
    def __init__(self, secret: bytes, public_url: str, clock: Callable[[], float] = time.time):
        if len(secret) < 16:
            raise ValueError("LocalStorage needs a secret of at least 16 bytes to sign URLs")
        if not public_url.startswith(("http://", "https://")):
            raise ValueError(f"public_url must be an http(s) URL, got {public_url!r}")
        self.public_url = public_url.rstrip("/")
        self._secret = secret
        self._clock = clock

    def signature(
        self, method: str, key: str, upload_id: str, part_number: int | None, expires: int,
        length: int | None = None,
    ) -> str:
        lines = [
            SIGNATURE_VERSION,
            method.upper(),
            key,
            upload_id,
            "" if part_number is None else str(part_number),
            str(expires),
        ]
        if length is not None:  # a 7th line: a URL stripped of its length no longer verifies
            lines.append(str(length))
        canonical = "\n".join(lines)
        return hmac.new(self._secret, canonical.encode("utf-8"), hashlib.sha256).hexdigest()

    def url(self, key: str, params: dict[str, object]) -> str:
        return f"{self.public_url}/blobs/{quote(key, safe='/')}?{urlencode(params)}"

    def verify(
        self, method: str, key: str, query: Mapping[str, str]
    ) -> tuple[str, int | None, int | None]:
        """Check the query of a `/blobs/{key}` request. Return `(upload_id, part_number,
        length)` for PUT (length None when the URL is not bound to one), `("", None, None)` for
        GET. Raise `SignatureInvalid` or `UrlExpired`."""
        method = method.upper()
        signature = query.get("signature") or ""
        expires_text = query.get("expires") or ""
        upload_id = query.get("uploadId")
        part_text = query.get("partNumber")
        length_text = query.get("length")
        length: int | None = None
        if not _HEX64.fullmatch(signature) or not _DIGITS.fullmatch(expires_text):
            raise SignatureInvalid("the URL is not signed (signature and expires are required)")
        part_number: int | None = None
        try:
            validate_key(key)
        except InvalidKey:
            raise SignatureInvalid("no URL is signed for this key") from None
        if method == "PUT":
            if (
                not upload_id
                or not _UPLOAD_ID.fullmatch(upload_id)
                or not part_text
                or not _DIGITS.fullmatch(part_text)
            ):
                raise SignatureInvalid("a part URL needs a valid uploadId and partNumber")
            part_number = int(part_text)
            if length_text is not None:
                if not _DIGITS.fullmatch(length_text):
                    raise SignatureInvalid("the part URL's length is not a number")
                length = int(length_text)
        elif upload_id is not None or part_text is not None or length_text is not None:
            raise SignatureInvalid("uploadId, partNumber and length are only valid on a part upload")
        expected = self.signature(
            method, key, upload_id or "", part_number, int(expires_text), length
        )
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise SignatureInvalid("the URL signature does not match")
        if int(expires_text) < self._clock():
            raise UrlExpired("the URL has expired")
        return upload_id or "", part_number, length


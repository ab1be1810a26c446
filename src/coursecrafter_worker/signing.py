"""Webhook signatures: `CourseCrafter-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, "t.body")>`."""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "CourseCrafter-Signature"
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The signature is missing, malformed, wrong, or its timestamp is too far from now."""


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_mac(secret, t, body)}"


def verify(
    secret: bytes, header: str | None, body: bytes, *, now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    if not header:
        raise SignatureError("missing signature")
    fields: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        fields.setdefault(key, []).append(value)
    try:
        timestamp = int(fields["t"][0])
    except (KeyError, ValueError):
        raise SignatureError("malformed signature header") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise SignatureError("signature timestamp is outside the allowed window")
    expected = _mac(secret, timestamp, body)
    # Any of several v1 values may match (lets a secret be rotated without downtime).
    # Bytes, not str: compare_digest raises TypeError on non-ASCII text (a forged header).
    given = [v.encode("utf-8", "replace") for v in fields.get("v1", [])]
    if not any(hmac.compare_digest(expected.encode(), g) for g in given):
        raise SignatureError("signature does not match")

"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies"): a client that
has logged in to an account before shows a cookie signed for that account, and its failed
logins then count against that device only. A stranger's guessing locks out untrusted clients
of the account at worst, never a device its owner has used."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from coursecrafter_server.auth.keys import SigningKey

COOKIE_NAME = "coursecrafter_device"
COOKIE_PATH = "/api/v1/auth"  # sent to the login route only, never to the rest of the API
COOKIE_MAX_AGE = 180 * 24 * 3600


def device_key(signing_key: SigningKey) -> bytes:
    return signing_key.derived_secret(b"coursecrafter device cookie v1")


class DeviceCookies:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, username: str, nonce: str) -> str:
        message = f"{username.lower()}\n{nonce}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, username: str) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._sign(username, nonce)}"

    def device_of(self, cookie: str | None, username: str) -> str | None:
        """The device id when `cookie` was issued for `username` (any case), else None."""
        if not cookie or len(cookie) > 200 or cookie.count(".") != 1:
            return None
        nonce, signature = cookie.split(".")
        if not hmac.compare_digest(signature.encode(), self._sign(username, nonce).encode()):
            return None
        return nonce

"""Viewer cookies: how a watch page's HTML can already hold what its player needs first.

Without one, a watch page opened afresh learns who is watching (and the lecture's playback URL)
from a session refresh, one API round trip after its script has run, and the first frame waits for
it. A viewer cookie is set beside the session's refresh cookie and says, signed, "user U of session
family F, until T"; the server reads it when it answers `/watch/{id}` and puts the viewer and the
lecture's record in the page (docs/rest.md "Watch pages").

It is no credential for the API: it is sent to `/watch/` pages only (`Path=/watch`, HttpOnly), and
it opens nothing but what the same user's session could read through the API. It dies with its
session: signing out or a refresh token's reuse revokes the family, which `AuthService.viewer`
checks on every page, and it never outlives the refresh cookie it was issued with. `SameSite=Lax`
(the refresh cookie is Strict): a link from a course site (another site) to a watch page is a
top-level GET, and it should start as fast; the page is a safe GET whose answer another site can
neither read (no CORS on pages) nor frame (`frame-ancestors 'none'`)."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

COOKIE_NAME = "coursecrafter_viewer"
COOKIE_PATH = "/watch"

_COOKIE = re.compile(r"^([A-Za-z0-9_-]{1,64})\.([A-Za-z0-9_-]{1,64})\.(\d{1,12})\.([0-9a-f]{64})$")


@dataclass(frozen=True)
class Viewer:
    user_id: str
    family_id: str
    expires: int


class ViewerCookies:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, user_id: str, family_id: str, expires: int) -> str:
        message = f"viewer\n{user_id}\n{family_id}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def issue(self, user_id: str, family_id: str, expires: int) -> str:
        return f"{user_id}.{family_id}.{expires}.{self._sign(user_id, family_id, expires)}"

    def read(self, cookie: str | None, now: float) -> Viewer | None:
        """The viewer a cookie was issued for while it lasts; None for anything else."""
        match = _COOKIE.match(cookie or "")
        if match is None:
            return None
        user_id, family_id, expires_text, signature = match.groups()
        expires = int(expires_text)
        expected = self._sign(user_id, family_id, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()) or expires <= now:
            return None
        return Viewer(user_id, family_id, expires)

"""RS256 access tokens: issue and verify exactly as docs/architecture.md "Auth" says."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

import jwt

from coursecrafter_server.auth.keys import SigningKey
from coursecrafter_server.domain import InvalidToken, Role, User

ALGORITHM = "RS256"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "exp", "iat", "jti"]
# Clock skew allowed between servers; a token is accepted this long after its `exp`, so a
# revocation must outlive `exp` by as much.
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    jti: str
    role: Role
    exp: int
    family: str | None = None  # the refresh family the token was issued with (`fam` claim)


class AccessTokenService:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str, ttl: int) -> None:
        self._key = key
        self._public_key = key.public_key  # derived once, not per request
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def issue(self, user: User, now: datetime | None = None, family_id: str | None = None) -> str:
        issued = int((now or datetime.now(timezone.utc)).timestamp())
        claims: dict[str, object] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user.id,
            "iat": issued,
            "exp": issued + self.ttl,
            "jti": uuid.uuid4().hex,
            "role": user.role.value,
        }
        if family_id:
            # Lets one revocation entry cut off every access token of a session (reuse, logout).
            claims["fam"] = family_id
        return jwt.encode(
            claims,
            self._key.private_key,
            algorithm=ALGORITHM,
            headers={"kid": self._key.kid, "typ": TOKEN_TYPE},
        )

    def verify(self, token: str) -> AccessClaims:
        """Raise InvalidToken for anything but a well-formed, current token of ours."""
        try:
            # One parse: pyjwt validates the base64 text character by character in Python, so
            # reading the header separately first cost ~40 % of the check. The algorithm list is
            # pinned: `alg: none` and HS256-with-the-public-key both fail here.
            decoded = jwt.api_jwt.decode_complete(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=LEEWAY_SECONDS,
            )
            header, claims = decoded["header"], decoded["payload"]
            if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
                raise InvalidToken("access token has the wrong type or algorithm")
            if header.get("kid") != self._key.kid:
                raise InvalidToken("access token was signed by an unknown key")
            return AccessClaims(
                sub=str(claims["sub"]),
                jti=str(claims["jti"]),
                role=Role(claims.get("role", "")),
                exp=int(claims["exp"]),
                family=str(claims["fam"]) if claims.get("fam") else None,
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("access token has expired") from None
        except (jwt.PyJWTError, ValueError, KeyError):
            raise InvalidToken("access token is invalid") from None

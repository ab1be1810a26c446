"""Accounts and sessions: register, login, refresh with rotation and reuse detection, logout."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

from coursecrafter_server.auth.devices import DeviceCookies
from coursecrafter_server.auth.passwords import PasswordHasherService, check_password_strength
from coursecrafter_server.auth.tokens import LEEWAY_SECONDS, AccessClaims, AccessTokenService
from coursecrafter_server.auth.viewer_cookies import ViewerCookies
from coursecrafter_server.domain import (
    AlreadyExists,
    InvalidCredentials,
    InvalidToken,
    RateLimited,
    RefreshToken,
    Role,
    User,
)
from coursecrafter_server.limits.base import RateLimiter, RevocationList
from coursecrafter_server.store.base import RefreshTokenStore, UserStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class LoginResult:
    tokens: TokenPair
    device_cookie: str  # a fresh device cookie for this account (OWASP: one per success)


@dataclass(frozen=True)
class RateLimits:
    login_per_address: str  # every attempt, trusted or not: a flood guard
    login_per_account: str  # failures of untrusted clients, whatever their address
    refresh_per_address: str
    refresh_per_account: str
    login_failures_per_account_address: str
    login_failures_per_address: str
    login_failures_per_device: str
    register_per_address: str


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _family_marker(family_id: str) -> str:
    return f"fam:{family_id}"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class AccountStore(UserStore, RefreshTokenStore, Protocol):
    """Accounts and their refresh tokens."""


class AuthService:
    def __init__(
        self,
        store: AccountStore,
        tokens: AccessTokenService,
        passwords: PasswordHasherService,
        revocations: RevocationList,
        limiter: RateLimiter,
        limits: RateLimits,
        refresh_ttl: int,
        devices: DeviceCookies,
        viewers: ViewerCookies,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.passwords = passwords
        self.revocations = revocations
        self.limiter = limiter
        self.limits = limits
        self.refresh_ttl = refresh_ttl
        self.devices = devices
        self.viewers = viewers

    # Accounts --------------------------------------------------------------------------------
    def register(
        self, username: str, email: str, password: str, role: Role, *,
        client_address: str | None = None, conceal_taken_email: bool = False,
    ) -> User:
        """With `client_address`, attempts count against the registration limit of that address
        (each costs an argon2 hash and probes names). With `conceal_taken_email`, an email that is
        already registered gets the same answer as a new account (no account is created), so
        registration cannot tell whether someone has an account; a taken username stays an error
        because the caller has to pick another one."""
        if client_address is not None:
            self._limit(self.limits.register_per_address, f"register:addr:{client_address}",
                        hit=True)
        check_password_strength(password, username=username, email=email)
        user = User(
            id=uuid.uuid4().hex,
            username=username,
            email=email,
            password_hash=self.passwords.hash(password),  # before the store: same time either way
            role=role,
            created_at=_now(),
        )
        try:
            self.store.add_user(user)
        except AlreadyExists:
            if not conceal_taken_email or self.store.get_user_by_username(username) is not None:
                raise
            log.info("registration with an email that is already registered answered as created")
            return user  # never stored
        log.info("registered user %s (%s)", user.id, role.value)
        return user

    # Sessions ----------------------------------------------------------------------------------
    def login(
        self, username: str, password: str, client_address: str, device_cookie: str | None = None
    ) -> LoginResult:
        self._limit(self.limits.login_per_address, f"login:addr:{client_address}", hit=True)
        account = username.lower()
        device = self.devices.device_of(device_cookie, account)
        # A device that logged in to this account before answers only for its own failures;
        # every other client is limited per (account, address), per address and per account.
        if device is not None:
            failure_limits = [(self.limits.login_failures_per_device, f"login:dev:{device}")]
        else:
            failure_limits = [
                (self.limits.login_failures_per_account_address,
                 f"login:acct-addr:{account}:{client_address}"),
                (self.limits.login_failures_per_address, f"login:fail-addr:{client_address}"),
                (self.limits.login_per_account, f"login:acct:{account}"),
            ]
        for limit, key in failure_limits:
            self._limit(limit, key, hit=False)
        user = self.store.get_user_by_username(username)
        # Always run one argon2 verification, so timing does not tell whether the user exists.
        if not self.passwords.verify(user.password_hash if user else None, password) or not user:
            for limit, key in failure_limits:
                self._limit(limit, key, hit=True, quiet=True)
            raise InvalidCredentials("wrong username or password")
        if self.passwords.needs_rehash(user.password_hash):
            log.info("password hash of user %s uses old parameters", user.id)
        return LoginResult(self._issue(user, family_id=uuid.uuid4().hex),
                           self.devices.issue(account))

    def refresh(self, refresh_token: str, client_address: str) -> TokenPair:
        self._limit(self.limits.refresh_per_address, f"refresh:addr:{client_address}", hit=True)
        now = _now()
        stored = self.store.get_refresh_token(hash_refresh_token(refresh_token))
        if stored is None:
            raise InvalidToken("refresh token is invalid")
        # Per account as well: many addresses replaying one stolen family get nowhere either.
        self._limit(self.limits.refresh_per_account, f"refresh:acct:{stored.user_id}", hit=True)
        if stored.revoked_at is not None or self.store.is_refresh_family_revoked(stored.family_id):
            raise InvalidToken("refresh token has been revoked; log in again")
        if stored.expires_at <= now:
            raise InvalidToken("refresh token has expired; log in again")
        # Compare-and-set: of two concurrent presentations exactly one wins; the other is reuse.
        if not self.store.mark_refresh_token_used(stored.token_hash, now):
            self.store.revoke_refresh_family(stored.family_id, now)
            self._revoke_family_access(stored.family_id, now)
            log.warning("refresh token reuse detected; family of user %s revoked", stored.user_id)
            raise InvalidToken("refresh token was already used; all sessions of it are revoked")
        user = self.store.get_user(stored.user_id)
        if user is None:
            raise InvalidToken("refresh token is invalid")
        pair = self._issue(user, family_id=stored.family_id)
        # A reuse may have revoked the family between our check and our insert: re-check after.
        if self.store.is_refresh_family_revoked(stored.family_id):
            raise InvalidToken("refresh token has been revoked; log in again")
        return pair

    def logout(self, refresh_token: str | None, access: AccessClaims | None) -> None:
        now = _now()
        if refresh_token:
            stored = self.store.get_refresh_token(hash_refresh_token(refresh_token))
            # Only the owner of the access token may end a family by presenting its refresh token.
            if stored is not None and (access is None or stored.user_id == access.sub):
                self.store.revoke_refresh_family(stored.family_id, now)
                self._revoke_family_access(stored.family_id, now)
        if access is not None:
            # Until the token stops verifying, leeway included (not only until its `exp`).
            self.revocations.revoke(access.jti, access.exp + LEEWAY_SECONDS)
            if access.family:
                self._revoke_family_access(access.family, now)

    def authenticate(self, access_token: str) -> tuple[User, AccessClaims]:
        claims = self.tokens.verify(access_token)
        ids = (claims.jti, _family_marker(claims.family)) if claims.family else (claims.jti,)
        if self.revocations.is_revoked(*ids):  # one lookup for the token and its session
            raise InvalidToken("access token has been revoked")
        user = self.store.get_user(claims.sub)
        if user is None:
            raise InvalidToken("access token is invalid")
        return user, claims

    # Watch pages ------------------------------------------------------------------------------
    def viewer_cookie(self, claims: AccessClaims) -> str | None:
        """The viewer cookie of a session just signed in or refreshed: it lasts as long as the
        refresh token issued with it."""
        if not claims.family:
            return None
        expires = int(_now().timestamp()) + self.refresh_ttl
        return self.viewers.issue(claims.sub, claims.family, expires)

    def viewer(self, cookie: str | None) -> User | None:
        """Who a watch page's viewer cookie names, while its session lives; None otherwise."""
        seen = self.viewers.read(cookie, _now().timestamp())
        if seen is None or self.store.is_refresh_family_revoked(seen.family_id):
            return None
        return self.store.get_user(seen.user_id)

    # Internals -------------------------------------------------------------------------------
    def _issue(self, user: User, family_id: str) -> TokenPair:
        now = _now()
        secret = secrets.token_urlsafe(32)
        self.store.add_refresh_token(
            RefreshToken(
                token_hash=hash_refresh_token(secret),
                user_id=user.id,
                family_id=family_id,
                issued_at=now,
                expires_at=now + timedelta(seconds=self.refresh_ttl),
            )
        )
        return TokenPair(
            access_token=self.tokens.issue(user, now, family_id=family_id),
            refresh_token=secret,
            expires_in=self.tokens.ttl,
        )

    def _revoke_family_access(self, family_id: str, now: datetime) -> None:
        # Every access token of the family was issued before now, so all are dead by then.
        until = int(now.timestamp()) + self.tokens.ttl + LEEWAY_SECONDS + 1
        self.revocations.revoke(_family_marker(family_id), until)

    def _limit(self, limit: str, key: str, *, hit: bool, quiet: bool = False) -> None:
        wait = self.limiter.hit(limit, key) if hit else self.limiter.check(limit, key)
        if wait is not None and not quiet:
            raise RateLimited(
                f"too many attempts; try again in {wait} s", headers={"Retry-After": str(wait)}
            )

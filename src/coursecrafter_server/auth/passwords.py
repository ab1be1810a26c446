"""argon2id password hashing, and the checks a new password must pass."""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from coursecrafter_server.domain import WeakPassword

MIN_LENGTH = 8
MAX_LENGTH = 256  # bounds the hashing work an attacker can ask of us

# The most common passwords of public breach corpora: refused outright (NIST SP 800-63B 5.1.1.2).
_COMMON = frozenset(
    """password password1 password123 123456 1234567 12345678 123456789 1234567890 qwerty
    qwerty123 qwertyuiop abc123 111111 000000 iloveyou admin admin123 welcome letmein monkey
    dragon sunshine princess football baseball master shadow trustno1 passw0rd 1q2w3e4r
    zaq12wsx superman starwars whatever changeme secret123 coursecrafter""".split()
)


class PasswordHasherService:
    def __init__(self, time_cost: int = 3, memory_kib: int = 64 * 1024, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        # Each hash in flight holds `memory_kib`; more than one per core only queues work, so a
        # burst of logins waits here instead of growing memory by 64 MiB per request.
        self._slots = threading.BoundedSemaphore(os.cpu_count() or 2)
        # Verified against when the user does not exist, so both paths cost the same.
        self._dummy_hash = self._hasher.hash("dummy password for timing equalisation")

    def hash(self, password: str) -> str:
        with self._slots:
            return self._hasher.hash(password)

    def verify(self, password_hash: str | None, password: str) -> bool:
        try:
            with self._slots:
                verified = self._hasher.verify(password_hash or self._dummy_hash, password)
            return verified and password_hash is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)


def check_password_strength(password: str, *, username: str, email: str) -> None:
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password must be at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _COMMON:
        raise WeakPassword("password is too common")
    if len(set(password)) < 4:
        raise WeakPassword("password needs more variety")
    if lowered in {username.lower(), email.lower(), email.split("@")[0].lower()}:
        raise WeakPassword("password must not be your username or email")

"""argon2id password hashing, and the checks a new password must pass."""

from __future__ import annotations

import os
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from coursecrafter_server.domain import WeakPassword

MIN_LENGTH = 8
MAX_LENGTH = 256  # bounds the hashing work an attacker can ask of us
# zxcvbn's score (0-4) a new password must reach: 3 is "safely unguessable", about 10^8 guesses
# or more, which online guessing under our rate limits never gets through.
MIN_SCORE = 3
# zxcvbn's cost grows quickly with length and it refuses more than this; a longer password is
# judged by its first characters (a lower bound on its strength).
_ESTIMATE_CHARS = 72
# Words of this service a password must not lean on (NIST SP 800-63B 5.1.1.2: context-specific).
_SERVICE_WORDS = ["coursecrafter", "course", "crafter", "lecture", "instructor"]


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
    """NIST SP 800-63B 5.1.1.2: at least 8 characters, no composition rules, and not a common,
    guessable or context-specific password (judged by the zxcvbn estimator, which knows breach
    corpora, dictionaries, keyboard patterns, dates and l33t substitutions)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"password must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"password must be at most {MAX_LENGTH} characters")
    local_part = email.split("@")[0]
    if password.lower() in {username.lower(), email.lower(), local_part.lower()}:
        raise WeakPassword("password must not be your username or email")
    result = zxcvbn(password[:_ESTIMATE_CHARS],
                    user_inputs=[username, email, local_part, *_SERVICE_WORDS])
    if result["score"] < MIN_SCORE:
        feedback = result.get("feedback") or {}
        advice = " ".join([feedback.get("warning") or "", *(feedback.get("suggestions") or [])])
        raise WeakPassword("password is too easy to guess: "
                           + (advice.strip() or "Add another word or two. Uncommon words are better."))

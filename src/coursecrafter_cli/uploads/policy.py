"""The public knobs of an upload: how hard it retries, and what it reports."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any



@dataclass(frozen=True)
class RetryPolicy:
    """How hard one part (or one API call of the upload) is retried.

    ``attempts`` in all; between attempts ``min(maximum, initial * 2**(n-1))`` seconds plus a
    random jitter of up to ``jitter`` times that (so parallel parts do not retry in lockstep),
    at least the server's ``Retry-After``.  A 403 is retried at once the first time (a freshly
    signed URL usually fixes it).
    """

    attempts: int = 7
    initial: float = 0.5
    maximum: float = 20.0
    jitter: float = 0.5
    api_attempts: int = 4  #: for the upload's API calls (sign, list parts, complete)

    def delay(self, attempt: int, *, retry_after: float | None = None, immediate: bool = False) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        if immediate:
            return 0.0
        base = min(self.maximum, self.initial * (2 ** (attempt - 1)))
        wait = base + random.uniform(0, self.jitter * base)
        if retry_after is not None:
            wait = max(wait, min(retry_after, 300.0))
        return wait


@dataclass(frozen=True)
class UploadEvent:
    """Something worth telling the user: ``kind`` names it, ``message`` says it in words,
    ``data`` has the details (ids, counts...)."""

    kind: str
    message: str
    data: Mapping[str, Any] = field(default_factory=dict)

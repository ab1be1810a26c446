"""Worker settings (docs/configuration.md): environment variables `COURSECRAFTER_*`, also read
from `.env`. Built by `get_worker_settings()`, never at import time. The fields the server shares
(broker, storage, public URL, webhook secret, attempts, heartbeat, FFmpeg timeout, work dir) are
`common_settings.SharedSettings`'.

Secrets the embedded server generates into `COURSECRAFTER_HOME` are picked up from there when the
variables are unset, so a worker on the same machine needs no extra configuration:

- the webhook secret: `COURSECRAFTER_WEBHOOK_SECRET`, else `{home}/webhook_secret`;
- the local-storage signing secret: `COURSECRAFTER_BLOB_SIGNING_SECRET`, else
  `{home}/blob_signing_secret` (only used by a `file://` storage; the worker never hands out
  URLs, so without it a throw-away secret is used).
"""

from __future__ import annotations

import secrets

from pydantic import Field, SecretStr

from coursecrafter_worker.common_settings import SharedSettings


class ConfigError(ValueError):
    """A setting is missing or unusable; the message says which variable to set."""


class WorkerSettings(SharedSettings):
    """What only a `coursecrafter-worker` reads, on top of the shared fields."""

    blob_signing_secret: SecretStr | None = None

    concurrency: int = Field(1, ge=1)
    webhook_max_elapsed: float = Field(300.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)

    def resolved_webhook_secret(self) -> bytes:
        if self.webhook_secret is not None and self.webhook_secret.get_secret_value():
            return self.webhook_secret.get_secret_value().encode()
        path = self.home / "webhook_secret"
        if path.is_file():
            secret = path.read_bytes().strip()
            if secret:
                return secret
        raise ConfigError(
            "set COURSECRAFTER_WEBHOOK_SECRET (the server's webhook secret; an embedded server on "
            f"this machine writes it to {path}, which does not exist)"
        )

    def resolved_blob_secret(self) -> bytes:
        if self.blob_signing_secret is not None and self.blob_signing_secret.get_secret_value():
            return self.blob_signing_secret.get_secret_value().encode()
        path = self.home / "blob_signing_secret"
        if path.is_file():
            secret = path.read_bytes().strip()
            if len(secret) >= 16:
                return secret
        return secrets.token_hex(32).encode()


def get_worker_settings(**overrides: object) -> WorkerSettings:
    """Build settings from the environment and `.env`; keyword overrides win."""
    return WorkerSettings(**overrides)  # type: ignore[arg-type]

"""Worker settings (DESIGN.md "Configuration"): environment variables `COURSECRAFTER_*`, also read
from `.env`. Built by `get_worker_settings()`, never at import time.

Secrets the embedded server generates into `COURSECRAFTER_HOME` are picked up from there when the
variables are unset, so a worker on the same machine needs no extra configuration:

- the webhook secret: `COURSECRAFTER_WEBHOOK_SECRET`, else `{home}/webhook_secret`;
- the local-storage signing secret: `COURSECRAFTER_BLOB_SIGNING_SECRET`, else
  `{home}/blob_signing_secret` (only used by a `file://` storage; the worker never hands out
  URLs, so without it a throw-away secret is used).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigError(ValueError):
    """A setting is missing or unusable; the message says which variable to set."""


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("coursecrafter", appauthor=False))


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COURSECRAFTER_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=_default_home)
    broker_url: SecretStr | None = None  # may carry a password
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    webhook_secret: SecretStr | None = None
    blob_signing_secret: SecretStr | None = None

    max_attempts: int = Field(3, ge=1)
    concurrency: int = Field(1, ge=1)
    # Job directories (a full copy of each source). Private: `{home}/work` unless set; never a
    # shared temp dir another user could have made (coursecrafter_worker.workdir).
    work_dir: Path = Field(None, validate_default=True)  # type: ignore[assignment]
    ffmpeg_timeout: float | None = 4 * 3600.0
    heartbeat_interval: float = Field(10.0, gt=0)
    webhook_max_elapsed: float = Field(300.0, gt=0)
    shutdown_grace: float = Field(10.0, ge=0)

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("work_dir", mode="before")
    @classmethod
    def _work_dir_in_home(cls, value: object, info: ValidationInfo) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return Path(info.data.get("home") or _default_home()) / "work"
        return value

    @field_validator("broker_url", "storage_url", "s3_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def broker(self) -> str | None:
        return self.broker_url.get_secret_value() if self.broker_url else None

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.home / "blobs").resolve().as_uri()

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

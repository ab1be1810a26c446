"""The settings server and worker share: one base class, so a variable means the same (and has
the same type) on both sides. `coursecrafter_server.settings.Settings` and
`coursecrafter_worker.settings.WorkerSettings` extend it; neither is built at import time.

Imports neither FastAPI nor the store (the server imports it; see tests/test_import_direction.py).
"""

from __future__ import annotations

from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(platformdirs.user_data_dir("coursecrafter", appauthor=False))


class SharedSettings(BaseSettings):
    """Environment variables `COURSECRAFTER_*`, also read from `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="COURSECRAFTER_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=default_home)
    broker_url: SecretStr | None = None  # amqp://user:password@...: a secret, never logged
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    webhook_secret: SecretStr | None = None

    max_attempts: int = Field(3, ge=1)
    heartbeat_interval: float = Field(10.0, gt=0)
    ffmpeg_timeout: float | None = 4 * 3600.0
    # Target chunk length of a long source transcoded across workers (0: never chunk); the
    # default is measured (docs/benchmarks.md "Chunked transcoding").
    chunk_seconds: float = Field(120.0, ge=0)
    # Job directories (a full copy of each source). Private: `{home}/work` unless set; never a
    # shared temp dir another user could have made (coursecrafter_worker.workdir).
    work_dir: Path = Field(None, validate_default=True)  # type: ignore[assignment]

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("broker_url", "storage_url", "s3_endpoint_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("work_dir", mode="before")
    @classmethod
    def _work_dir_in_home(cls, value: object, info: ValidationInfo) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return Path(info.data.get("home") or default_home()) / "work"
        return value

    @property
    def broker(self) -> str | None:
        """The broker URL in clear (to connect with), or None: in-process transcoders."""
        return self.broker_url.get_secret_value() if self.broker_url else None

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.home / "blobs").resolve().as_uri()

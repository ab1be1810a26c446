"""Server settings: one pydantic-settings class, built by `get_settings()`, never at import time."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("coursecrafter", appauthor=False))


class Settings(BaseSettings):
    """Every variable of DESIGN.md "Configuration", read from the environment and `.env`."""

    model_config = SettingsConfigDict(
        env_prefix="COURSECRAFTER_", env_file=".env", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=_default_home)
    database_url: str | None = None
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    broker_url: str | None = None
    redis_url: str | None = None
    public_url: str = "http://127.0.0.1:8000"
    jwt_private_key_file: Path | None = None
    webhook_secret: SecretStr | None = None

    registration: Literal["open", "closed"] = "open"

    # Token lifetimes (seconds).
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600

    # Rate limits in the `limits` notation ("N/period"). Login attempts count per client address;
    # failed logins count per account, so a user's own successful logins never lock them out.
    login_rate_limit_address: str = "30/minute"
    login_rate_limit_account: str = "10/15 minutes"
    refresh_rate_limit_address: str = "60/minute"
    # A client refreshes about once per access-token lifetime; this leaves room for many devices.
    refresh_rate_limit_account: str = "30/minute"

    # argon2id cost (argon2-cffi's defaults: RFC 9106 low-memory profile). Tune to the hardware.
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4

    # Uploads
    max_upload_bytes: int = 20 * 1024**3
    upload_ttl: int = 24 * 3600  # an upload not completed by then is aborted by the sweeper
    upload_url_ttl: int = 3600  # pre-signed part URLs; clients ask for fresh ones on 403
    playback_url_ttl: int = 6 * 3600
    sweep_interval: float = 60.0
    # Per-instructor quotas (0: no limit), so one account cannot fill the storage. Open uploads:
    # started and neither completed, cancelled nor expired. Stored bytes: sources still kept,
    # transcoded outputs (bitrates x duration) and attachments, uploads in progress included.
    quota_open_uploads: int = 100
    quota_stored_bytes: int = 500 * 1024**3
    # Storage-vs-store reconciliation: what storage holds under uploads/, videos/ or attachments/
    # {id}/ for a video the store has no record of (a crash between deleting a record and its
    # bytes, a worker still writing for a deleted video) is removed once older than
    # `orphan_grace` seconds (a new upload exists in storage a moment before its record). Run
    # every `orphan_sweep_interval` seconds; 0 turns it off (e.g. a bucket shared with another
    # deployment's database).
    orphan_grace: float = 3600.0
    orphan_sweep_interval: float = 900.0

    # Transcoding jobs
    # In-process transcoders (embedded mode only); 0 runs none, jobs then wait in `queued`.
    transcode_concurrency: int = 1
    max_attempts: int = 3
    republish_after: float = 30.0  # a job not confirmed by the queue for this long is re-published
    heartbeat_timeout: float = 120.0  # a worker silent for this long has lost its job
    heartbeat_interval: float = 10.0
    ffmpeg_timeout: float = 4 * 3600.0

    # Requests with a larger body are refused with 413 before they are read.
    max_json_body_bytes: int = 1024 * 1024

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def jwt_issuer(self) -> str:
        return self.public_url

    @property
    def jwt_audience(self) -> str:
        return "coursecrafter-api"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'coursecrafter.sqlite3'}"

    @property
    def resolved_storage_url(self) -> str:
        return self.storage_url or (self.home / "blobs").resolve().as_uri()

    @property
    def public_url_is_local(self) -> bool:
        host = urlparse(self.public_url).hostname or ""
        return host in {"127.0.0.1", "localhost", "::1"} or host.startswith("127.")


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]

"""Server settings: one pydantic-settings class, built by `get_settings()`, never at import time."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from coursecrafter_worker.common_settings import SharedSettings


class Settings(SharedSettings):
    """Every server variable of docs/configuration.md, read from the environment and `.env`; the
    fields the worker reads too (broker, storage, public URL, webhook secret, attempts, heartbeat,
    FFmpeg timeout, work dir) come from `SharedSettings`, so they mean the same on both sides."""

    database_url: str | None = None
    redis_url: str | None = None
    jwt_private_key_file: Path | None = None

    registration: Literal["open", "closed"] = "open"

    # Token lifetimes (seconds).
    access_token_ttl: int = 15 * 60
    refresh_token_ttl: int = 30 * 24 * 3600

    # Rate limits in the `limits` notation ("N/period"), following OWASP's device-cookie scheme
    # (README "Security"). Every login attempt counts per client address (a flood guard). Failed
    # logins from a client without a device cookie for the account count per (account, address),
    # per address and per account; one from a client holding that cookie counts only per device,
    # so a stranger's guessing never locks a user out of a device they logged in from before.
    login_rate_limit_address: str = "30/minute"
    login_failure_limit_account_address: str = "10/15 minutes"
    login_failure_limit_address: str = "60/hour"
    login_rate_limit_account: str = "50/hour"
    login_failure_limit_device: str = "10/15 minutes"
    # Each registration costs an argon2 hash and probes which usernames exist.
    register_rate_limit_address: str = "20/hour"
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
    # Life of a playback token (seconds); it is minted per quarter of this, so it lives 1-1.25x.
    # Values under a minute are for tests (the browser test of playback across an expiry uses 5 s);
    # a viewer then renews the URL every few segments.
    playback_url_ttl: int = Field(default=6 * 3600, ge=5)
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
    republish_after: float = 30.0  # a job not confirmed by the queue for this long is re-published
    heartbeat_timeout: float = 120.0  # a worker silent for this long has lost its job

    @property
    def resolved_work_dir(self) -> Path:
        # The embedded transcoders' job directories: the shared `work_dir` (`{home}/work`).
        return self.work_dir

    # When set, /metrics answers only `Authorization: Bearer <metrics_token>` (401 otherwise).
    metrics_token: SecretStr | None = None

    # Comma-separated addresses/CIDRs whose X-Forwarded-For/-Proto are believed (none: the
    # connecting address is the client, even on loopback).
    trusted_proxies: str = ""

    # Requests with a larger body are refused with 413 before they are read.
    max_json_body_bytes: int = 1024 * 1024
    # The request line and headers together (uvicorn's h11 parser refuses more, at once, with 400
    # and a closed connection), and how many header fields (431).
    max_header_bytes: int = Field(32 * 1024, ge=4096)
    max_header_count: int = Field(100, ge=16)
    # An API body must arrive whole within this many seconds; a /blobs/ part may not stall longer.
    body_read_timeout: float = Field(30.0, gt=0)

    # Browser origins (scheme://host[:port]) allowed to call the API and fetch playback files and
    # /blobs; comma-separated in the environment. Empty: no CORS headers at all.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("metrics_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        entries = [item.strip() for item in value.split(",") if item.strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"COURSECRAFTER_TRUSTED_PROXIES: {entry!r} is not an address "
                                 "or CIDR") from None
        return ",".join(entries)

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [item for item in self.trusted_proxies.split(",") if item]

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.split(",")
        return tuple(o.strip().rstrip("/") for o in value if o.strip())  # type: ignore[union-attr]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            parsed = urlparse(origin)
            if origin != "*" and (parsed.scheme not in ("http", "https") or not parsed.netloc
                                  or parsed.path or parsed.query or parsed.fragment):
                raise ValueError(f"{origin!r} is not an origin like https://app.example.edu")
        return value

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
    def public_url_is_local(self) -> bool:
        # Parsed, never prefix-matched: "127.courses.example.com" is a public name.
        try:
            host = (urlparse(self.public_url).hostname or "").rstrip(".").lower()
        except ValueError:
            return False
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def get_settings(**overrides: object) -> Settings:
    """Build settings from the environment; keyword overrides win (tests, CLI flags)."""
    return Settings(**overrides)  # type: ignore[arg-type]

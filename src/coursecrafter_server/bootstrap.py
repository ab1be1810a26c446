"""The one place that wires adapters to ports, chosen by the settings' URLs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from coursecrafter_server.auth.api_tokens import ApiTokenService
from coursecrafter_server.auth.devices import DeviceCookies, device_key
from coursecrafter_server.auth.viewer_cookies import ViewerCookies
from coursecrafter_server.auth.keys import SigningKey, load_signing_key
from coursecrafter_server.auth.passwords import PasswordHasherService
from coursecrafter_server.auth.service import AuthService, RateLimits
from coursecrafter_server.auth.tokens import AccessTokenService
from coursecrafter_server.courses import CourseService
from coursecrafter_server.jobs import JobService
from coursecrafter_worker.queue.base import JobQueue
from coursecrafter_server.playback import PlaybackService, PlaybackSigner
from coursecrafter_server.limits.base import RateLimiter, RevocationList
from coursecrafter_server.secrets_files import load_or_create, random_secret
from coursecrafter_server.settings import Settings
from coursecrafter_worker.storage import ObjectStorage, open_storage
from coursecrafter_server.store import Store, open_store
from coursecrafter_server.uploads import UploadService
from coursecrafter_server.videos import VideoService

log = logging.getLogger(__name__)


class UnsafeSettings(RuntimeError):
    """Raised at start-up for settings that would be unsafe in production."""


@dataclass
class Container:
    settings: Settings
    store: Store
    storage: ObjectStorage
    signing_key: SigningKey
    revocations: RevocationList
    limiter: RateLimiter
    auth: AuthService
    courses: CourseService
    uploads: UploadService
    videos: VideoService
    queue: JobQueue
    jobs: JobService
    playback: PlaybackService
    webhook_secret: bytes
    api_tokens: ApiTokenService = None  # type: ignore[assignment]  # built from the store

    def __post_init__(self) -> None:
        if self.api_tokens is None:
            self.api_tokens = ApiTokenService(self.store)

    def close(self) -> None:
        self.queue.close()
        self.store.close()


def check_production_safety(settings: Settings, key: SigningKey) -> None:
    if settings.public_url_is_local:
        return
    problems = []
    if key.generated:
        problems.append("the JWT key was generated (set COURSECRAFTER_JWT_PRIVATE_KEY_FILE)")
    if settings.webhook_secret is None:
        problems.append("the webhook secret was generated (set COURSECRAFTER_WEBHOOK_SECRET)")
    if problems:
        raise UnsafeSettings(
            f"refusing to serve {settings.public_url} with " + " and ".join(problems)
            + "; generated secrets are only for a local server"
        )


def _limits_adapters(settings: Settings, store: Store) -> tuple[RevocationList, RateLimiter]:
    if settings.redis_url:
        from coursecrafter_server.limits.redis import RedisRateLimiter, RedisRevocationList

        return RedisRevocationList(settings.redis_url), RedisRateLimiter(settings.redis_url)
    from coursecrafter_server.limits.memory import LimitsRateLimiter
    from coursecrafter_server.limits.store import StoreRevocationList

    # In the store, not in memory: a logout must survive a restart of the one server process.
    return StoreRevocationList(store), LimitsRateLimiter()


def _queue(settings: Settings) -> JobQueue:
    if settings.broker:
        from coursecrafter_worker.queue.rabbitmq import RabbitMQQueue

        # A short publish timeout: a request must not hang on a broker that is down; the job
        # stays in the outbox and the sweeper publishes it later.
        return RabbitMQQueue(
            settings.broker, max_attempts=settings.max_attempts, publish_timeout=3
        )
    from coursecrafter_worker.queue.inprocess import InProcessQueue

    return InProcessQueue(max_attempts=settings.max_attempts)


def build_container(settings: Settings) -> Container:
    settings.home.mkdir(parents=True, exist_ok=True)
    key = load_signing_key(settings.jwt_private_key_file, settings.home)
    check_production_safety(settings, key)
    store = open_store(settings.resolved_database_url)
    # Signs the local adapter's part and download URLs (unused by S3) and playback tokens.
    blob_secret = load_or_create(settings.home / "blob_signing_secret", random_secret)
    storage = open_storage(
        settings.resolved_storage_url,
        public_url=settings.public_url,
        secret=blob_secret,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    webhook_secret = (
        settings.webhook_secret.get_secret_value().encode()
        if settings.webhook_secret
        else load_or_create(settings.home / "webhook_secret", random_secret)
    )
    queue = _queue(settings)
    revocations, limiter = _limits_adapters(settings, store)
    auth = AuthService(
        store=store,
        tokens=AccessTokenService(
            key,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=settings.access_token_ttl,
        ),
        passwords=PasswordHasherService(
            time_cost=settings.argon2_time_cost,
            memory_kib=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
        ),
        revocations=revocations,
        limiter=limiter,
        limits=RateLimits(
            login_per_address=settings.login_rate_limit_address,
            login_per_account=settings.login_rate_limit_account,
            refresh_per_address=settings.refresh_rate_limit_address,
            refresh_per_account=settings.refresh_rate_limit_account,
            login_failures_per_account_address=settings.login_failure_limit_account_address,
            login_failures_per_address=settings.login_failure_limit_address,
            login_failures_per_device=settings.login_failure_limit_device,
            register_per_address=settings.register_rate_limit_address,
        ),
        refresh_ttl=settings.refresh_token_ttl,
        devices=DeviceCookies(device_key(key)),
        viewers=ViewerCookies(key.derived_secret(b"coursecrafter viewer cookie v1")),
    )
    jobs = JobService(
        store,
        storage,
        queue,
        callback_url=f"{settings.public_url}/api/v1/internal/jobs/events",
        max_attempts=settings.max_attempts,
        republish_after=settings.republish_after,
        heartbeat_timeout=settings.heartbeat_timeout,
        early_grace=settings.playback_url_ttl,
    )
    return Container(
        settings=settings,
        store=store,
        storage=storage,
        signing_key=key,
        revocations=revocations,
        limiter=limiter,
        auth=auth,
        courses=CourseService(store),
        uploads=UploadService(
            store,
            storage,
            max_upload_bytes=settings.max_upload_bytes,
            upload_ttl=settings.upload_ttl,
            url_ttl=settings.upload_url_ttl,
            quota_open_uploads=settings.quota_open_uploads,
            quota_stored_bytes=settings.quota_stored_bytes,
        ),
        videos=VideoService(store, storage, url_ttl=settings.playback_url_ttl,
                            on_delete=jobs.cancel),
        queue=queue,
        jobs=jobs,
        playback=PlaybackService(
            store, storage,
            PlaybackSigner(blob_secret, api_url=settings.public_url, ttl=settings.playback_url_ttl),
        ),
        webhook_secret=webhook_secret,
    )

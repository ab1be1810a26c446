"""Liveness, readiness, JWKS."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from coursecrafter_server.api.deps import ContainerDep

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    status: str
    checks: dict[str, str]


@router.get("/readyz", response_model=Readiness, responses={
    503: {"model": Readiness, "description": "a dependency is unreachable"}})
def readyz(container: ContainerDep) -> JSONResponse:
    checks: dict[str, str] = {}
    probes = {"store": container.store.ping, "storage": container.storage.ping}
    if container.settings.redis_url:
        probes["redis"] = container.revocations.ping
    if container.settings.broker_url:
        probes["broker"] = container.queue.ping  # type: ignore[attr-defined]
    for name, probe in probes.items():
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; say which and why
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )


jwks_router = APIRouter(tags=["auth"])


@jwks_router.get("/.well-known/jwks.json")
def jwks(container: ContainerDep) -> dict[str, list[dict[str, Any]]]:
    return {"keys": [container.signing_key.public_jwk()]}

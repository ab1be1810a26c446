"""Liveness, readiness, metrics, JWKS."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from coursecrafter_server.api.deps import ContainerDep
from coursecrafter_server.api.schemas import ErrorResponse
from coursecrafter_server.domain import InvalidToken
from coursecrafter_server.metrics import CONTENT_TYPE

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
    if container.settings.broker:
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


def _require_metrics_token(request: Request, container: ContainerDep) -> None:
    """With COURSECRAFTER_METRICS_TOKEN set, only `Authorization: Bearer <it>` may scrape."""
    token = container.settings.metrics_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    # Constant time, and on bytes: compare_digest refuses non-ASCII str.
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
        raise InvalidToken("a valid metrics token is required",
                           headers={"WWW-Authenticate": "Bearer"})


@router.get("/metrics", response_class=Response, dependencies=[Depends(_require_metrics_token)],
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
                       401: {"model": ErrorResponse}})
def metrics(request: Request) -> Response:
    """The pipeline's state (videos and jobs by status, queue depth, oldest waiting job) and this
    process's HTTP traffic, in Prometheus text format. Needs `Authorization: Bearer
    <COURSECRAFTER_METRICS_TOKEN>` when that is set."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)


jwks_router = APIRouter(tags=["auth"])


@jwks_router.get("/.well-known/jwks.json")
def jwks(container: ContainerDep) -> dict[str, list[dict[str, Any]]]:
    return {"keys": [container.signing_key.public_jwk()]}

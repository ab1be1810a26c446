"""The "framework floor" of bench/auth_latency.py: the auth endpoints' shapes, none of their work.

Same request and response models as the real API (imported from `coursecrafter_server.api.schemas`),
the same chain of FastAPI dependencies with the same sync/async nature (each sync dependency and
handler is run in the threadpool, as in the real server), served by uvicorn with the real
server's settings (1 worker, access log off, proxy headers on). What it leaves out is the work:
no argon2, no RSA signing or verification, no store, no rate limiter, no revocation list, and no
body-size middleware. The tokens it hands out are static strings of the real tokens' sizes, so the
bytes on the wire match too.

    python bench/bare_app.py --port 8123     # GET /healthz, POST /login, POST /refresh, GET /me

Two routes are not mirrors but references for what the sync dependency chain itself costs:
`GET /me-onehop` has the same chain with the trivial dependencies (container, auth service,
current user) and the handler as `async def`, so that only the session dependency, the one that
would do blocking work, runs in the threadpool; `GET /me-async` is the same response from an
`async def` handler with only the (async) bearer-header dependency, no threadpool hop at all.
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coursecrafter_server.api.schemas import LoginRequest, RefreshRequest, TokenResponse, UserOut
from coursecrafter_server.domain import Role


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _static_access_token() -> str:
    """A JWT-shaped string as long as a real RS256 access token of the server (never verified)."""
    header = {"alg": "RS256", "kid": _b64(secrets.token_bytes(32)), "typ": "at+jwt"}
    claims = {
        "iss": "http://127.0.0.1:65535",
        "aud": "coursecrafter-api",
        "sub": secrets.token_hex(16),
        "iat": 1_700_000_000,
        "exp": 1_700_000_900,
        "jti": secrets.token_hex(16),
        "role": "instructor",
    }
    signature = secrets.token_bytes(256)  # RS256 with a 2048-bit key
    return ".".join(
        [_b64(json.dumps(header).encode()), _b64(json.dumps(claims).encode()), _b64(signature)]
    )


ACCESS_TOKEN = _static_access_token()
REFRESH_TOKEN = secrets.token_urlsafe(32)
EXPIRES_IN = 15 * 60
USER: dict[str, Any] = {
    "id": secrets.token_hex(16),
    "username": "bench-user",
    "email": "bench-user@example.com",
    "role": Role.INSTRUCTOR,
}


class _Container:
    """Stands in for the server's wired container: the dependencies hand it around, nothing more."""


_bearer = HTTPBearer(auto_error=False)


async def get_container(request: Request) -> _Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[_Container, Depends(get_container)]


async def get_auth(container: ContainerDep) -> _Container:
    return container


AuthDep = Annotated[_Container, Depends(get_auth)]


def get_session(
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[dict[str, Any], None]:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return USER, None


Session = Annotated[tuple[dict[str, Any], None], Depends(get_session)]


async def get_current_user(session: Session) -> dict[str, Any]:
    return session[0]


CurrentUser = Annotated[dict[str, Any], Depends(get_current_user)]


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]


def _pair() -> TokenResponse:
    return TokenResponse(access_token=ACCESS_TOKEN, refresh_token=REFRESH_TOKEN, expires_in=EXPIRES_IN)


app = FastAPI(title="bare auth floor")
app.state.container = _Container()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/login")
def login(body: LoginRequest, auth: AuthDep, address: ClientAddress) -> TokenResponse:
    return _pair()


@app.post("/refresh")
def refresh(body: RefreshRequest, auth: AuthDep, address: ClientAddress) -> TokenResponse:
    return _pair()


@app.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut(**user)


@app.get("/me-async")
async def me_async(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserOut:
    """Not a mirror: /me without the sync dependency chain (no threadpool hop), for reference."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return UserOut(**USER)


async def _async_get_container(request: Request) -> _Container:
    return request.app.state.container  # type: ignore[no-any-return]


async def _async_get_auth(
    container: Annotated[_Container, Depends(_async_get_container)],
) -> _Container:
    return container


def _one_hop_session(  # sync: the one place that would do blocking work (token check, store)
    auth: Annotated[_Container, Depends(_async_get_auth)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[dict[str, Any], None]:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    return USER, None


async def _async_current_user(
    session: Annotated[tuple[dict[str, Any], None], Depends(_one_hop_session)],
) -> dict[str, Any]:
    return session[0]


@app.get("/me-onehop")
async def me_onehop(user: Annotated[dict[str, Any], Depends(_async_current_user)]) -> UserOut:
    """Not a mirror: /me's chain with the trivial dependencies async, one threadpool hop left."""
    return UserOut(**user)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    # The settings of coursecrafter_server.main.run, with one worker.
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        log_level=args.log_level,
        access_log=False,
        proxy_headers=True,
    )


if __name__ == "__main__":
    main()

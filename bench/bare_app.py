"""The "framework floor" of bench/auth_latency.py: the auth endpoints' shapes, none of their work.

Same request and response models as the real API (imported from `coursecrafter_server.api.schemas`),
the same chain of FastAPI dependencies with the same sync/async nature (each sync dependency and
handler is run in the threadpool, as in the real server), served by uvicorn with the real
server's settings (1 worker, access log off, proxy headers on). What it leaves out is the work:
no argon2, no RSA signing or verification, no store, no rate limiter, no revocation list, and no
body-size middleware. The tokens it hands out are static strings of the real tokens' sizes, so the
bytes on the wire match too.

    python bench/bare_app.py --port 8123     # GET /healthz, POST /login, POST /refresh, GET /me,
                                             # GET /videos/{video_id}

`GET /videos/{video_id}` (the floor of bench/api_latency.py) mirrors the real route's chain: the
instructor-role check (async) on top of the /me chain, the async `get_videos` dependency and the
sync handler, so two threadpool hops (session, handler) as in the real server, and returns one `VideoOut` built at
import time with the field sizes of a ready 1080p video with four renditions. No JWT, no store
lookup, no URL signing.

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
from datetime import datetime, timezone
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coursecrafter_server.api.routes.videos import Rendition, VideoOut
from coursecrafter_server.api.schemas import (
    LoginRequest,
    RefreshRequest,
    TokenResponse,
    UserOut,
)
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


# --------------------------------------------------------------------------------------------
# GET /videos/{video_id}

# Title and filename are the ones bench/api_latency.py gives the real server's video, so the two
# bodies differ only where the real record's numbers do (size, duration, ...).
VIDEO_TITLE = "Lecture 07: Gradient descent and its variants"
VIDEO_FILENAME = "lecture-07-gradient-descent.mp4"


def _static_video() -> VideoOut:
    """A ready 1080p lecture with the real server's four-rung ladder, its URLs of real lengths."""
    video_id = secrets.token_hex(16)
    origin = "http://127.0.0.1:65535"  # a bench server's public URL: loopback, 5-digit port
    expires = 1_700_000_000
    created = datetime(2024, 3, 4, 10, 15, 30, 123456, tzinfo=timezone.utc)
    return VideoOut(
        id=video_id, kind="video", course_id=secrets.token_hex(16), title=VIDEO_TITLE,
        filename=VIDEO_FILENAME, content_type="video/mp4", size=734_003_200, status="ready",
        progress=100, phase=None, error=None, duration=3125.458, width=1920, height=1080,
        renditions=[Rendition(height=h, bitrate=b) for h, b in
                    ((1080, 5_128_000), (720, 2_928_000), (480, 1_528_000), (360, 928_000))],
        playback_url=(f"{origin}/api/v1/playback/{video_id}/master.m3u8"
                      f"?expires={expires}&token={secrets.token_hex(32)}"),
        poster_url=(f"{origin}/blobs/videos/{video_id}/poster.jpg"
                    f"?expires={expires}&signature={secrets.token_hex(32)}"),
        download_url=None,
        created_at=created, updated_at=created.replace(minute=17),
    )


VIDEO = _static_video()


async def require_instructor(user: CurrentUser) -> dict[str, Any]:
    """The role check of the real `InstructorUser` (async, on the event loop)."""
    if user["role"] not in (Role.INSTRUCTOR, Role.ADMIN):
        raise HTTPException(403, "this needs the role instructor or admin")
    return user


InstructorUser = Annotated[dict[str, Any], Depends(require_instructor)]


async def get_videos(container: ContainerDep) -> _Container:  # async, as the real one
    return container


Videos = Annotated[_Container, Depends(get_videos)]


@app.get("/videos/{video_id}")
def get_video(
    video_id: str, user: InstructorUser, videos: Videos, container: ContainerDep
) -> VideoOut:  # sync, as the real handler: the third threadpool hop
    return VIDEO


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

"""/session: sign-in for the browser app. The refresh token lives only in an HttpOnly cookie scoped
to this path (never in JavaScript's reach); the access token is returned in the body and kept in
the page's memory. Rotation, reuse detection and rate limits are the auth service's, as for
/auth/login and /auth/refresh.

A cookie is sent by the browser on its own, so these routes need CSRF protection: the cookie is
`SameSite=Strict`, every call must carry `X-CourseCrafter-CSRF: 1` (a custom header forces a CORS
preflight on any cross-site request, which this API never grants for /session), and a request
whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is refused.

A refresh may name a video (`{"video_id"}`): the answer then carries that video's record too, so
a watch page opened afresh learns its playback URL in the same round trip as its access token
(the first frame waits on nothing else from the API)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from coursecrafter_server.api.deps import AuthDep, ClientAddress, ContainerDep
from coursecrafter_server.api.routes.videos import VideoOut, video_out
from coursecrafter_server.api.schemas import ErrorResponse, LoginRequest, UserOut
from coursecrafter_server.auth import devices, viewer_cookies
from coursecrafter_server.auth.service import TokenPair
from coursecrafter_server.bootstrap import Container
from coursecrafter_server.domain import DomainError, Forbidden, InvalidToken, User

PATH = "/api/v1/session"
COOKIE = "coursecrafter_refresh"
CSRF_HEADER = "X-CourseCrafter-CSRF"

_optional_bearer = HTTPBearer(auto_error=False)
OptionalBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]
_errors = {code: {"model": ErrorResponse} for code in (400, 401, 403, 413, 422, 429)}
_no_bearer = {"security": [{}]}  # the cookie is the credential here, not a bearer token


class CsrfFailed(Forbidden):
    code = "csrf_failed"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


async def check_csrf(request: Request) -> None:
    """A dependency: refuse cross-site calls (403 `csrf_failed`) before anything is read."""
    if request.headers.get(CSRF_HEADER) != "1":
        raise CsrfFailed(f"this call needs the header {CSRF_HEADER}: 1")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise CsrfFailed("cross-site calls are refused")
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {_origin(str(request.base_url)),
                   _origin(request.app.state.container.settings.public_url)}
        if origin.lower() not in allowed:
            raise CsrfFailed("calls from another origin are refused")


router = APIRouter(prefix="/session", tags=["session"], dependencies=[Depends(check_csrf)])


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserOut


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    video_id: str | None = Field(default=None, max_length=64)


class RefreshedOut(SessionOut):
    # The video the refresh named; null when none was named or this user cannot read it (a GET
    # /videos/{id} then says why).
    video: VideoOut | None = None


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or \
        request.app.state.container.settings.public_url.startswith("https:")


def _answer(pair: TokenPair, auth: AuthDep, request: Request, response: Response) -> SessionOut:
    user = _set_cookie(pair, auth, request, response)
    return SessionOut(access_token=pair.access_token, expires_in=pair.expires_in,
                      user=UserOut.of(user))


def _set_cookie(pair: TokenPair, auth: AuthDep, request: Request, response: Response) -> User:
    user, claims = auth.authenticate(pair.access_token)
    max_age = request.app.state.container.settings.refresh_token_ttl
    response.set_cookie(COOKIE, pair.refresh_token, max_age=max_age, path=PATH,
                        secure=_secure(request), httponly=True, samesite="strict")
    # Watch pages read it to hold their viewer and lecture in the HTML (auth/viewer_cookies.py).
    viewer = auth.viewer_cookie(claims)
    if viewer is not None:
        response.set_cookie(viewer_cookies.COOKIE_NAME, viewer, max_age=max_age,
                            path=viewer_cookies.COOKIE_PATH, secure=_secure(request),
                            httponly=True, samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    return user


def _forget(response: Response, request: Request) -> None:
    response.delete_cookie(COOKIE, path=PATH, secure=_secure(request), httponly=True,
                           samesite="strict")
    response.delete_cookie(viewer_cookies.COOKIE_NAME, path=viewer_cookies.COOKIE_PATH,
                           secure=_secure(request), httponly=True, samesite="lax")


@router.post("", responses=_errors, openapi_extra=_no_bearer)
def sign_in(body: LoginRequest, auth: AuthDep, address: ClientAddress, request: Request,
            response: Response) -> SessionOut:
    """Sign in: the refresh token is set as an HttpOnly cookie; the access token is returned.
    The browser's device cookie (README "Security": a stranger's guesses never lock it out) is
    scoped to this path, as the CLI's is to /auth."""
    result = auth.login(body.username, body.password, address,
                        request.cookies.get(devices.COOKIE_NAME))
    answer = _answer(result.tokens, auth, request, response)
    response.set_cookie(
        devices.COOKIE_NAME, result.device_cookie, max_age=devices.COOKIE_MAX_AGE, path=PATH,
        httponly=True, samesite="strict", secure=_secure(request),
    )
    return answer


@router.post("/refresh", responses=_errors, openapi_extra=_no_bearer)
def refresh(auth: AuthDep, address: ClientAddress, request: Request, response: Response,
            container: ContainerDep, body: RefreshIn | None = None) -> RefreshedOut:
    """A fresh access token for the cookie's session; the cookie is rotated. With
    `{"video_id"}`, the answer also carries that video's record (`video`, null when this user
    cannot read it), as `GET /videos/{video_id}` would return it."""
    token = request.cookies.get(COOKIE)
    try:
        if not token or len(token) > 512:
            raise InvalidToken("no browser session; sign in")
        pair = auth.refresh(token, address)
    except InvalidToken as exc:  # a 401 names its scheme (RFC 9110); the cookie is a bearer's
        exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
        raise
    user = _set_cookie(pair, auth, request, response)
    answer = RefreshedOut(access_token=pair.access_token, expires_in=pair.expires_in,
                          user=UserOut.of(user))
    if body is not None and body.video_id is not None:
        answer.video = _readable_video(container, user, body.video_id)
    return answer


def _readable_video(container: Container, user: User, video_id: str) -> VideoOut | None:
    try:
        return video_out(container.videos.get_readable(user, video_id), container)
    except DomainError:  # not found, not published...: the page's GET tells the user why
        return None


def watch_page_state(container: Container, viewer_cookie: str | None,
                     video_id: str) -> dict[str, object] | None:
    """What a watch page's HTML holds for the viewer its cookie names (auth/viewer_cookies.py):
    the user and the lecture's record (null when this user cannot read it), as a refresh naming
    the video would answer them; None without a live viewer cookie."""
    user = container.auth.viewer(viewer_cookie)
    if user is None:
        return None
    video = _readable_video(container, user, video_id) if len(video_id) <= 64 else None
    return {"user": UserOut.of(user).model_dump(mode="json"),
            "video": video.model_dump(mode="json") if video is not None else None}


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, responses=_errors,
               openapi_extra=_no_bearer)
def sign_out(auth: AuthDep, bearer: OptionalBearer, request: Request,
             container: ContainerDep) -> Response:
    """Sign out: the cookie's refresh family and the presented access token are revoked."""
    claims = None
    if bearer is not None:
        try:
            claims = auth.authenticate(bearer.credentials)[1]
        except InvalidToken:
            claims = None  # an expired access token must not stop a sign-out
    token = request.cookies.get(COOKIE)
    auth.logout(token if token and len(token) <= 512 else None, claims)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _forget(response, request)
    return response

"""/session: sign-in for the browser app. The refresh token lives only in an HttpOnly cookie scoped
to this path (never in JavaScript's reach); the access token is returned in the body and kept in
the page's memory. Rotation, reuse detection and rate limits are the auth service's, as for
/auth/login and /auth/refresh.

A cookie is sent by the browser on its own, so these routes need CSRF protection: the cookie is
`SameSite=Strict`, every call must carry `X-CourseCrafter-CSRF: 1` (a custom header forces a CORS
preflight on any cross-site request, which this API never grants for /session), and a request
whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is refused."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from coursecrafter_server.api.deps import AuthDep, ClientAddress, ContainerDep
from coursecrafter_server.api.schemas import ErrorResponse, LoginRequest, UserOut
from coursecrafter_server.auth.service import TokenPair
from coursecrafter_server.domain import Forbidden, InvalidToken

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


def _answer(pair: TokenPair, auth: AuthDep, request: Request, response: Response) -> SessionOut:
    user = auth.authenticate(pair.access_token)[0]
    secure = request.url.scheme == "https" or \
        request.app.state.container.settings.public_url.startswith("https:")
    response.set_cookie(
        COOKIE, pair.refresh_token, max_age=request.app.state.container.settings.refresh_token_ttl,
        path=PATH, secure=secure, httponly=True, samesite="strict",
    )
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(access_token=pair.access_token, expires_in=pair.expires_in,
                      user=UserOut.of(user))


def _forget(response: Response, request: Request) -> None:
    secure = request.url.scheme == "https" or \
        request.app.state.container.settings.public_url.startswith("https:")
    response.delete_cookie(COOKIE, path=PATH, secure=secure, httponly=True, samesite="strict")


@router.post("", responses=_errors, openapi_extra=_no_bearer)
def sign_in(body: LoginRequest, auth: AuthDep, address: ClientAddress, request: Request,
            response: Response) -> SessionOut:
    """Sign in: the refresh token is set as an HttpOnly cookie; the access token is returned."""
    # login() answers tokens and a device cookie (OWASP device cookies, for the REST login at
    # /api/v1/auth); the browser session keeps only the tokens.
    return _answer(auth.login(body.username, body.password, address).tokens, auth, request,
                   response)


@router.post("/refresh", responses=_errors, openapi_extra=_no_bearer)
def refresh(auth: AuthDep, address: ClientAddress, request: Request,
            response: Response) -> SessionOut:
    """A fresh access token for the cookie's session; the cookie is rotated."""
    token = request.cookies.get(COOKIE)
    try:
        if not token or len(token) > 512:
            raise InvalidToken("no browser session; sign in")
        return _answer(auth.refresh(token, address), auth, request, response)
    except InvalidToken as exc:  # a 401 names its scheme (RFC 9110); the cookie is a bearer's
        exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
        raise


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

"""/auth: register, login, refresh, logout, me."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Depends, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coursecrafter_server.api.deps import AuthDep, ClientAddress, ContainerDep, CurrentUser
from coursecrafter_server.api.schemas import (
    ErrorResponse,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    UserOut,
)
from coursecrafter_server.auth import devices
from coursecrafter_server.auth.service import TokenPair
from coursecrafter_server.domain import Forbidden, InvalidToken, Role

router = APIRouter(prefix="/auth", tags=["auth"])
_optional_bearer = HTTPBearer(auto_error=False)
OptionalBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_optional_bearer)]

_errors = {code: {"model": ErrorResponse} for code in (400, 401, 409, 413, 422, 429)}
# The bearer token is optional on these (an empty requirement in OpenAPI): FastAPI alone would
# document it as required.
_optional_auth = {"security": [{}]}


def _tokens(pair: TokenPair) -> TokenResponse:
    return TokenResponse(
        access_token=pair.access_token, refresh_token=pair.refresh_token, expires_in=pair.expires_in
    )


@router.post("/register", status_code=status.HTTP_201_CREATED,
             responses={**_errors, 403: {"model": ErrorResponse}}, openapi_extra=_optional_auth)
def register(body: RegisterRequest, auth: AuthDep, container: ContainerDep,
             bearer: OptionalBearer, address: ClientAddress) -> UserOut:
    caller = auth.authenticate(bearer.credentials)[0] if bearer else None
    is_admin = caller is not None and caller.role is Role.ADMIN
    if container.settings.registration == "closed" and not is_admin:
        raise Forbidden("registration is closed; ask an administrator for an account")
    if body.role not in (None, Role.INSTRUCTOR) and not is_admin:
        raise Forbidden("only an administrator can create accounts with that role")
    # Admins create accounts for others: no limit, and they may learn that an email is taken.
    user = auth.register(body.username, body.email, body.password, body.role or Role.INSTRUCTOR,
                         client_address=None if is_admin else address,
                         conceal_taken_email=not is_admin)
    return UserOut.of(user)


@router.post("/login", responses=_errors)
def login(body: LoginRequest, auth: AuthDep, container: ContainerDep, address: ClientAddress,
          response: Response,
          device: Annotated[str | None, Cookie(alias=devices.COOKIE_NAME)] = None) -> TokenResponse:
    result = auth.login(body.username, body.password, address, device)
    response.set_cookie(
        devices.COOKIE_NAME, result.device_cookie, max_age=devices.COOKIE_MAX_AGE,
        path=devices.COOKIE_PATH, httponly=True, samesite="strict",
        secure=container.settings.public_url.startswith("https://"),
    )
    return _tokens(result.tokens)


@router.post("/refresh", responses=_errors)
def refresh(body: RefreshRequest, auth: AuthDep, address: ClientAddress) -> TokenResponse:
    return _tokens(auth.refresh(body.refresh_token, address))


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=_errors,
             openapi_extra=_optional_auth)
def logout(auth: AuthDep, bearer: OptionalBearer, body: LogoutRequest | None = None) -> Response:
    claims = None
    if bearer is not None:
        try:
            claims = auth.authenticate(bearer.credentials)[1]
        except InvalidToken:
            claims = None  # an expired access token must not stop a logout
    auth.logout(body.refresh_token if body else None, claims)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me", responses=_errors)
def me(user: CurrentUser) -> UserOut:
    return UserOut.of(user)

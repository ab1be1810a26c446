"""FastAPI dependencies: the container, the current user, role checks.

Dependencies that do no I/O are `async def`, so they run on the event loop instead of taking a
round trip through the thread pool (measured in bench/auth_latency.py)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from coursecrafter_server.auth.service import AuthService
from coursecrafter_server.auth.tokens import AccessClaims
from coursecrafter_server.bootstrap import Container
from coursecrafter_server.auth.api_tokens import is_api_token
from coursecrafter_server.domain import Forbidden, InvalidToken, Role, TokenScope, User

_bearer = HTTPBearer(auto_error=False,
                     description="RS256 access token from /auth/login, or an automation token (cct_...)")


async def get_container(request: Request) -> Container:
    return request.app.state.container  # type: ignore[no-any-return]


ContainerDep = Annotated[Container, Depends(get_container)]


async def get_auth(container: ContainerDep) -> AuthService:
    return container.auth


AuthDep = Annotated[AuthService, Depends(get_auth)]


def get_session(
    auth: AuthDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> tuple[User, AccessClaims]:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise InvalidToken("missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    try:
        return auth.authenticate(credentials.credentials)
    except InvalidToken as exc:
        exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
        raise


Session = Annotated[tuple[User, AccessClaims], Depends(get_session)]


# What an automation token may call, by scope: (method, route template under /api/v1). Everything
# else is 403, so a route added later is closed to tokens until someone opens it here.
_READ_ROUTES = frozenset({
    ("GET", "/auth/me"),
    ("GET", "/courses"),
    ("GET", "/courses/{course_id}"),
    ("GET", "/videos"),
    ("GET", "/videos/{video_id}"),
})
TOKEN_SCOPE_ROUTES: dict[TokenScope, frozenset[tuple[str, str]]] = {
    TokenScope.READ: _READ_ROUTES,
    TokenScope.UPLOAD: _READ_ROUTES | {
        ("POST", "/uploads"),
        ("POST", "/uploads/{upload_id}/parts"),
        ("GET", "/uploads/{upload_id}/parts"),
        ("POST", "/uploads/{upload_id}/complete"),
        ("DELETE", "/uploads/{upload_id}"),
    },
}


_API_PREFIX = "/api/v1"


def _route_of(request: Request) -> tuple[str, str] | None:
    """(method, route template without /api/v1) of an API request; None outside the API."""
    template = str(getattr(request.scope.get("route"), "path", ""))
    if not template or not request.url.path.startswith(_API_PREFIX + "/"):
        return None
    # FastAPI gives the template with or without the include prefix, depending on its version.
    if template.startswith(_API_PREFIX + "/"):
        template = template[len(_API_PREFIX):]
    return request.method.upper(), template


def get_current_user(
    request: Request,
    container: ContainerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The caller: from an access token (JWT), or from an automation token (`cct_...`), whose
    scope must allow this route (403 otherwise)."""
    if credentials is not None and credentials.scheme.lower() == "bearer" \
            and is_api_token(credentials.credentials):
        try:
            user, token = container.api_tokens.authenticate(credentials.credentials)
        except InvalidToken as exc:
            exc.headers.setdefault("WWW-Authenticate", 'Bearer error="invalid_token"')
            raise
        if _route_of(request) not in TOKEN_SCOPE_ROUTES[token.scope]:
            raise Forbidden(f"an automation token with the {token.scope.value} scope cannot do "
                            "this; use a normal login")
        request.state.api_token = token
        return user
    return get_session(container.auth, credentials)[0]


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_login_user(request: Request, user: CurrentUser) -> User:
    """As CurrentUser, but a normal login only: an automation token is refused (403)."""
    if getattr(request.state, "api_token", None) is not None:
        raise Forbidden("automation tokens cannot do this; use a normal login")
    return user


LoginUser = Annotated[User, Depends(get_login_user)]


def require_role(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that lets through only users holding one of `roles` (403 otherwise)."""

    async def dependency(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(r.value for r in roles)}")
        return user

    return dependency


InstructorUser = Annotated[User, Depends(require_role(Role.INSTRUCTOR, Role.ADMIN))]
AdminUser = Annotated[User, Depends(require_role(Role.ADMIN))]


async def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


ClientAddress = Annotated[str, Depends(client_address)]

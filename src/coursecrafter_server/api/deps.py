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
from coursecrafter_server.domain import Forbidden, InvalidToken, Role, User

_bearer = HTTPBearer(auto_error=False, description="RS256 access token from /auth/login")


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


async def get_current_user(session: Session) -> User:
    return session[0]


CurrentUser = Annotated[User, Depends(get_current_user)]


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

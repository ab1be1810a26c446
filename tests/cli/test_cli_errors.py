"""Mapping of error responses to the exception tree."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from coursecrafter_cli import (
    APIError,
    AuthenticationError,
    Client,
    Conflict,
    CourseCrafterError,
    MemoryCredentialStore,
    NotFound,
    NotLoggedIn,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
)
from coursecrafter_cli.errors import error_from_response


def client_answering(response: httpx.Response) -> Client:
    return Client(
        "http://api.test",
        credential_store=MemoryCredentialStore(),
        transport=httpx.MockTransport(lambda request: response),
    )


def err(status: int, code: str, message: str, **extra: object) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, **extra}})


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (400, APIError),
        (401, AuthenticationError),
        (403, PermissionDenied),
        (404, NotFound),
        (409, Conflict),
        (422, ValidationError),
        (429, RateLimited),
        (500, ServerError),
        (503, ServerError),
    ],
)
def test_status_to_exception(status: int, exc_type: type[APIError]) -> None:
    with client_answering(err(status, "some_code", "something happened")) as cc:
        with pytest.raises(exc_type) as info:
            cc.register("alice", "a@example.com", "pw")
    exc = info.value
    assert type(exc) is exc_type
    assert (exc.status_code, exc.code, exc.message) == (status, "some_code", "something happened")
    assert str(exc) == "something happened"
    assert isinstance(exc, CourseCrafterError)


def test_validation_fields() -> None:
    """Field details are kept, and the CLI lists the ones the message does not already say."""
    fields = [{"field": "password", "message": "too short"}]
    with client_answering(err(422, "weak_password", "password too weak", fields=fields)) as cc:
        with pytest.raises(ValidationError) as info:
            cc.register("alice", "a@example.com", "pw")
    assert info.value.fields == fields


@pytest.mark.parametrize(
    ("header", "expected"),
    [("7", 7.0), (None, None), ("soon", None)],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    headers = {"Retry-After": header} if header else {}
    response = httpx.Response(429, headers=headers,
                              json={"error": {"code": "rate_limited", "message": "slow down"}})
    exc = error_from_response(response)
    assert isinstance(exc, RateLimited) and exc.retry_after == expected
    assert "retry_after" in repr(exc)


def test_retry_after_http_date() -> None:
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    exc = error_from_response(httpx.Response(429, headers={"Retry-After": when}))
    assert isinstance(exc, RateLimited) and 100 < (exc.retry_after or 0) <= 120


def test_non_json_error_body() -> None:
    exc = error_from_response(httpx.Response(502, text="<html>Bad gateway</html>"))
    assert isinstance(exc, ServerError)
    assert (exc.code, exc.message) == ("http_502", "Bad Gateway")


def test_not_logged_in_is_an_authentication_error() -> None:
    exc = NotLoggedIn()
    assert isinstance(exc, AuthenticationError) and exc.status_code == 401
    assert "coursecrafter login" in str(exc)


def test_non_json_success_body_is_a_clear_error() -> None:
    with client_answering(httpx.Response(201, text="<html>hello</html>")) as cc:
        with pytest.raises(CourseCrafterError, match="not JSON"):
            cc.register("alice", "a@example.com", "pw")


def test_timeouts_are_transport_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with Client("http://api.test", credential_store=MemoryCredentialStore(),
                transport=httpx.MockTransport(handler)) as cc:
        with pytest.raises(TransportError, match="cannot reach the CourseCrafter server at "
                                                 "http://api.test: timed out"):
            cc.register("alice", "a@example.com", "pw")


def test_cli_report_lists_fields_not_in_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    from coursecrafter_cli.commands.common import ExitCode, report

    exc = ValidationError(422, "validation_error", "invalid request",
                          details={"fields": [{"field": "title", "message": "too long"}]})
    assert report(exc) is ExitCode.ERROR
    assert capsys.readouterr().err == "error: invalid request\n  title: too long\n"

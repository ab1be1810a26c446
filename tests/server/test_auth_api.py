"""Accounts and tokens through the HTTP API, as a client sees them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from coursecrafter_server.api.deps import InstructorUser
from coursecrafter_server.domain import Role

PASSWORD = "correct horse battery"


def register(api, username="alice", email=None, password=PASSWORD):
    return api.post(
        "/api/v1/auth/register",
        json={"username": username, "email": email or f"{username}@example.edu", "password": password},
    )


def login(api, username="alice", password=PASSWORD):
    return api.post("/api/v1/auth/login", json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


@pytest.fixture
def tokens(api) -> dict:
    assert register(api).status_code == 201
    response = login(api)
    assert response.status_code == 200
    return response.json()


def container_of(api):
    return api.app.state.container


# Register --------------------------------------------------------------------------------------
def test_register_creates_an_instructor_without_leaking_the_hash(api):
    response = register(api)
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "alice" and body["email"] == "alice@example.edu"
    assert body["role"] == "instructor" and body["id"]
    assert "password" not in response.text and "argon2" not in response.text


def test_a_taken_username_is_409(api):
    assert register(api).status_code == 201
    error = assert_error(register(api, "ALICE", "other@example.edu"), 409, "conflict")
    assert "username" in error["message"]


def test_a_taken_email_is_not_revealed(api):
    first = register(api)
    assert first.status_code == 201
    # Same answer as a new account, so nobody learns that alice@example.edu has one...
    again = register(api, "bob", "Alice@Example.edu")
    assert again.status_code == 201, again.text
    assert again.json()["username"] == "bob" and again.json()["id"] != first.json()["id"]
    assert set(again.json()) == set(first.json())
    # ...but no account was made, and alice's is intact.
    assert_error(login(api, "bob"), 401, "invalid_credentials")
    assert login(api).status_code == 200
    assert register(api, "bob", "bob@example.edu").status_code == 201  # the name is still free


def test_an_admin_is_told_the_email_is_taken(app_factory):
    api = app_factory()
    container_of(api).auth.register("root", "root@example.edu", "admin pass 2026!", Role.ADMIN)
    admin = login(api, "root", "admin pass 2026!").json()["access_token"]
    assert register(api).status_code == 201
    response = api.post("/api/v1/auth/register", headers=bearer(admin), json={
        "username": "bob", "email": "alice@example.edu", "password": PASSWORD})
    assert "email" in assert_error(response, 409, "conflict")["message"]


@pytest.mark.parametrize("password", ["short", "password123", "aaaaaaaaaaaa", "alice",
                                      "Password1!", "qwerty12345", "alice2026!", "Alice@example.edu",
                                      "coursecrafter1", "iloveyou2"])
def test_weak_password_is_refused(api, password):
    error = assert_error(register(api, password=password), 422, "weak_password")
    assert "password" in error["message"]
    assert_error(login(api, password=password), 401)  # no account was made


def test_weak_password_message_says_why_in_words(api):
    message = assert_error(register(api, password="qwerty12345"), 422)["message"]
    assert message.startswith("password is too easy to guess: ")
    assert "common" in message


def test_long_passphrases_need_no_composition(api):
    # NIST SP 800-63B: no rules on character classes; length and unguessability are what count.
    assert register(api, password="lecture hall forty two").status_code == 201
    assert register(api, "bob", password="x7#Qm2!vR9").status_code == 201


def test_registration_is_limited_per_address(app_factory):
    api = app_factory(register_rate_limit_address="3/hour")
    statuses = [register(api, f"user{i}").status_code for i in range(3)]
    statuses.append(register(api, "user3").status_code)
    assert statuses == [201, 201, 201, 429]
    response = register(api, "user4")
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


def test_empty_password_is_422_naming_the_field(api):
    error = assert_error(register(api, password=""), 422, "validation_error")
    assert error["fields"][0]["field"] == "password"


def test_malformed_json_is_422_not_500(api):
    response = api.post(
        "/api/v1/auth/register",
        content=b'{"username": "alice", "email": ',
        headers={"content-type": "application/json"},
    )
    assert_error(response, 422, "validation_error")


def test_missing_and_invalid_fields_are_named(api):
    response = api.post("/api/v1/auth/register", json={"username": "a b", "email": "nope"})
    error = assert_error(response, 422, "validation_error")
    assert {f["field"] for f in error["fields"]} == {"username", "email", "password"}


def test_oversized_body_is_413_before_it_is_read(api):
    huge = {"username": "alice", "email": "a@example.edu", "password": "x" * (2 * 1024 * 1024)}
    assert_error(api.post("/api/v1/auth/register", json=huge), 413, "payload_too_large")


def test_oversized_chunked_body_is_413(api):
    def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = api.post(
        "/api/v1/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, "payload_too_large")


def test_closed_registration_leaves_accounts_to_admins(app_factory):
    api = app_factory(registration="closed")
    assert_error(register(api), 403, "forbidden")
    container_of(api).auth.register("root", "root@example.edu", "admin pass 2026!", Role.ADMIN)
    admin = login(api, "root", "admin pass 2026!").json()["access_token"]
    response = api.post(
        "/api/v1/auth/register",
        json={"username": "stu", "email": "stu@example.edu", "password": PASSWORD, "role": "student"},
        headers=bearer(admin),
    )
    assert response.status_code == 201 and response.json()["role"] == "student"


def test_only_admins_choose_a_role(api):
    response = api.post(
        "/api/v1/auth/register",
        json={"username": "eve", "email": "eve@example.edu", "password": PASSWORD, "role": "admin"},
    )
    assert_error(response, 403, "forbidden")


# Login -----------------------------------------------------------------------------------------
def test_login_returns_a_token_pair(tokens):
    assert tokens["token_type"] == "bearer"
    assert 60 <= tokens["expires_in"] <= 3600
    assert tokens["access_token"].count(".") == 2 and tokens["refresh_token"]


def test_wrong_password_and_unknown_user_get_the_same_answer(api):
    assert register(api).status_code == 201
    wrong = assert_error(login(api, password="not the password"), 401, "invalid_credentials")
    unknown = assert_error(login(api, username="mallory"), 401, "invalid_credentials")
    assert wrong == unknown


def test_login_runs_argon2_even_for_unknown_users(api):
    """Timing safety: both paths do one full argon2 verification (see bench for the measurement)."""
    service = container_of(api).auth.passwords
    calls = []

    class CountingHasher:
        def __init__(self, inner):
            self.inner = inner

        def verify(self, hashed, password):
            calls.append(hashed)
            return self.inner.verify(hashed, password)

    service._hasher = CountingHasher(service._hasher)
    login(api, username="nobody")
    assert len(calls) == 1 and calls[0].startswith("$argon2id$")


def test_username_is_case_insensitive_at_login(api):
    register(api)
    assert login(api, username="ALICE").status_code == 200


def test_refresh_token_is_stored_only_as_a_hash(api, tokens):
    store = container_of(api).store
    digest = hashlib.sha256(tokens["refresh_token"].encode()).hexdigest()
    assert store.get_refresh_token(digest) is not None
    assert store.get_refresh_token(tokens["refresh_token"]) is None


# Me and token verification ---------------------------------------------------------------------
def test_me_returns_the_account(api, tokens):
    response = api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.json() == {
        "id": response.json()["id"], "username": "alice", "email": "alice@example.edu",
        "role": "instructor",
    }


def test_missing_token_is_401_with_www_authenticate(api):
    response = api.get("/api/v1/auth/me")
    assert_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(api, tokens) -> tuple[dict, dict]:
    token = tokens["access_token"]
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def _sign(api, header: dict, claims: dict) -> str:
    key = container_of(api).signing_key.private_key
    return jwt.encode(claims, key, algorithm="RS256", headers=header)


def _forged(kind: str, api, tokens) -> str:
    header, claims = _claims(api, tokens)
    now = int(time.time())
    if kind == "expired":
        return _sign(api, header, {**claims, "iat": now - 3600, "exp": now - 1800})
    if kind == "tampered":
        head, payload, sig = tokens["access_token"].split(".")
        data = json.loads(base64.urlsafe_b64decode(payload + "=="))
        data["role"] = "admin"
        return ".".join([head, _b64(json.dumps(data).encode()), sig])
    if kind == "alg_none":
        unsigned = {**header, "alg": "none"}
        return f"{_b64(json.dumps(unsigned).encode())}.{_b64(json.dumps(claims).encode())}."
    if kind == "hs256_public_key":
        public_pem = container_of(api).signing_key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        head = _b64(json.dumps({**header, "alg": "HS256"}).encode())
        body = _b64(json.dumps(claims).encode())
        sig = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(sig)}"
    if kind == "wrong_aud":
        return _sign(api, header, {**claims, "aud": "another-api"})
    if kind == "wrong_iss":
        return _sign(api, header, {**claims, "iss": "https://evil.example"})
    if kind == "no_jti":
        return _sign(api, header, {k: v for k, v in claims.items() if k != "jti"})
    if kind == "wrong_typ":
        return _sign(api, {**header, "typ": "JWT"}, claims)
    if kind == "unknown_kid":
        return _sign(api, {**header, "kid": "someone-else"}, claims)
    if kind == "garbage":
        return "not.a.jwt"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["expired", "tampered", "alg_none", "hs256_public_key", "wrong_aud", "wrong_iss", "no_jti",
     "wrong_typ", "unknown_kid", "garbage"],
)
def test_bad_access_tokens_are_401(api, tokens, kind):
    forged = _forged(kind, api, tokens)
    assert_error(api.get("/api/v1/auth/me", headers=bearer(forged)), 401, "invalid_token")


def test_expired_token_says_so(api, tokens):
    error = assert_error(
        api.get("/api/v1/auth/me", headers=bearer(_forged("expired", api, tokens))), 401
    )
    assert "expired" in error["message"]


def test_access_token_header_and_claims_match_the_design(api, tokens):
    header, claims = _claims(api, tokens)
    assert header["alg"] == "RS256" and header["typ"] == "at+jwt" and header["kid"]
    assert {"iss", "aud", "sub", "exp", "iat", "jti", "role"} <= set(claims)
    assert claims["role"] == "instructor" and 0 < claims["exp"] - claims["iat"] <= 3600


def test_jwks_publishes_the_key_that_verifies_tokens(api, tokens):
    jwks = api.get("/.well-known/jwks.json").json()
    header, _ = _claims(api, tokens)
    (key,) = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key
    public = jwt.PyJWK(key).key
    claims = jwt.decode(
        tokens["access_token"], public, algorithms=["RS256"], audience="coursecrafter-api"
    )
    assert claims["role"] == "instructor"


# Refresh rotation and reuse detection ----------------------------------------------------------
def refresh(api, token):
    return api.post("/api/v1/auth/refresh", json={"refresh_token": token})


def test_refresh_rotates_the_token(api, tokens):
    response = refresh(api, tokens["refresh_token"])
    assert response.status_code == 200
    rotated = response.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert api.get("/api/v1/auth/me", headers=bearer(rotated["access_token"])).status_code == 200
    assert refresh(api, rotated["refresh_token"]).status_code == 200


def test_replayed_refresh_token_kills_the_whole_family(api, tokens):
    rotated = refresh(api, tokens["refresh_token"]).json()
    error = assert_error(refresh(api, tokens["refresh_token"]), 401, "invalid_token")
    assert "already used" in error["message"]
    # The legitimate holder's newer token is dead too: the thief cannot keep a session alive.
    assert_error(refresh(api, rotated["refresh_token"]), 401, "invalid_token")


def test_a_reuse_also_cuts_off_the_familys_access_tokens(api, tokens):
    other = login(api).json()
    rotated = refresh(api, tokens["refresh_token"]).json()
    assert_error(refresh(api, tokens["refresh_token"]), 401, "invalid_token")  # the replay
    # Neither the thief's nor the victim's access tokens of that family keep working until
    # they expire; another session of the same user is untouched.
    for access in (tokens["access_token"], rotated["access_token"]):
        error = assert_error(api.get("/api/v1/auth/me", headers=bearer(access)), 401)
        assert "revoked" in error["message"]
    assert api.get("/api/v1/auth/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_ends_every_access_token_of_the_session(api, tokens):
    rotated = refresh(api, tokens["refresh_token"]).json()
    response = api.post("/api/v1/auth/logout", json={"refresh_token": rotated["refresh_token"]},
                        headers=bearer(rotated["access_token"]))
    assert response.status_code == 204
    # The access token issued before the rotation belongs to the ended session too.
    assert_error(api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])), 401)


def test_other_sessions_survive_a_reuse_in_one_family(api, tokens):
    other = login(api).json()
    refresh(api, tokens["refresh_token"])
    refresh(api, tokens["refresh_token"])
    assert refresh(api, other["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_401(api):
    assert_error(refresh(api, "made-up-token"), 401, "invalid_token")


def test_expired_refresh_token_is_401(app_factory):
    api = app_factory(refresh_token_ttl=-1)
    register(api)
    error = assert_error(refresh(api, login(api).json()["refresh_token"]), 401, "invalid_token")
    assert "expired" in error["message"]


# Logout ----------------------------------------------------------------------------------------
def test_logout_revokes_refresh_family_and_access_token(api, tokens):
    rotated = refresh(api, tokens["refresh_token"]).json()
    response = api.post(
        "/api/v1/auth/logout",
        json={"refresh_token": rotated["refresh_token"]},
        headers=bearer(rotated["access_token"]),
    )
    assert response.status_code == 204
    error = assert_error(api.get("/api/v1/auth/me", headers=bearer(rotated["access_token"])), 401)
    assert "revoked" in error["message"]
    assert_error(refresh(api, rotated["refresh_token"]), 401, "invalid_token")


def test_a_logged_out_token_stays_refused_through_the_expiry_leeway(app_factory):
    # Tokens verify up to LEEWAY_SECONDS past `exp` (clock skew), so the revocation must last
    # that long too, or the token comes back to life for those seconds.
    api = app_factory(access_token_ttl=1)
    register(api)
    access = login(api).json()["access_token"]
    assert api.post("/api/v1/auth/logout", json={}, headers=bearer(access)).status_code == 204
    time.sleep(2.2)  # past `exp`, inside the leeway
    error = assert_error(api.get("/api/v1/auth/me", headers=bearer(access)), 401)
    assert "revoked" in error["message"]


def test_logout_does_not_let_one_user_end_anothers_session(api, tokens):
    register(api, "bob")
    bob = login(api, "bob").json()
    api.post(
        "/api/v1/auth/logout",
        json={"refresh_token": tokens["refresh_token"]},
        headers=bearer(bob["access_token"]),
    )
    assert refresh(api, tokens["refresh_token"]).status_code == 200


# Rate limits -----------------------------------------------------------------------------------
def test_failed_logins_hold_back_untrusted_clients_of_the_account(app_factory):
    api = app_factory(login_rate_limit_account="3/minute")
    register(api)
    for _ in range(3):
        assert login(api, password="wrong password!").status_code == 401
    response = login(api)  # a client without a device cookie for alice waits, right password too
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= 60
    register(api, "bob")
    assert login(api, "bob").status_code == 200  # other accounts are untouched


def test_logins_are_limited_per_address(app_factory):
    api = app_factory(login_rate_limit_address="5/minute")
    register(api)
    statuses = [login(api, username=f"user{i}").status_code for i in range(6)]
    assert statuses == [401] * 5 + [429]


def test_refresh_is_limited_per_address(app_factory):
    api = app_factory(refresh_rate_limit_address="2/minute")
    statuses = [refresh(api, "x").status_code for _ in range(3)]
    assert statuses == [401, 401, 429]


def test_refresh_is_limited_per_account_whatever_the_address(app_factory):
    api = app_factory(refresh_rate_limit_account="2/minute")
    register(api)
    token = login(api).json()["refresh_token"]
    for address in ("10.0.0.1", "10.0.0.2"):
        response = api.post("/api/v1/auth/refresh", json={"refresh_token": token},
                            headers={"X-Forwarded-For": address})
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
    limited = api.post("/api/v1/auth/refresh", json={"refresh_token": token},
                       headers={"X-Forwarded-For": "10.0.0.3"})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) > 0
    register(api, "bob")  # another account is not held back by alice's limit
    assert refresh(api, login(api, "bob").json()["refresh_token"]).status_code == 200


# Roles, errors, health -------------------------------------------------------------------------
def test_require_role_gives_403_to_a_known_user_without_the_role(api):

    @api.app.get("/test-only/instructors")
    def instructors_only(user: InstructorUser) -> dict:
        return {"ok": user.username}

    container_of(api).auth.register("stu", "stu@example.edu", PASSWORD, Role.STUDENT)
    student = login(api, "stu").json()["access_token"]
    assert_error(api.get("/test-only/instructors", headers=bearer(student)), 403, "forbidden")
    register(api)
    teacher = login(api).json()["access_token"]
    assert api.get("/test-only/instructors", headers=bearer(teacher)).json() == {"ok": "alice"}
    assert_error(api.get("/test-only/instructors"), 401)


def test_unknown_route_uses_the_error_shape(api):
    assert_error(api.get("/api/v1/nope"), 404, "not_found")
    assert_error(api.delete("/api/v1/auth/me"), 405, "method_not_allowed")


def test_health_and_readiness(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/api/v1/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"store": "ok", "storage": "ok"}


def test_openapi_lists_the_auth_routes(api):
    paths = api.get("/openapi.json").json()["paths"]
    for path in ("/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/auth/refresh",
                 "/api/v1/auth/logout", "/api/v1/auth/me"):
        assert path in paths


def test_generated_secrets_are_refused_for_a_public_url(settings_factory):
    from coursecrafter_server.bootstrap import UnsafeSettings, build_container

    with pytest.raises(UnsafeSettings, match="COURSECRAFTER_JWT_PRIVATE_KEY_FILE"):
        build_container(settings_factory(public_url="https://video.school.example"))


@pytest.mark.parametrize("public_url", [
    "https://127.courses.example.com", "http://127.0.0.1.nip.io:8000", "https://localhost.example",
    "http://[::2]:8000",
])
def test_names_that_only_look_local_need_real_secrets(settings_factory, public_url):
    from coursecrafter_server.bootstrap import UnsafeSettings, build_container

    with pytest.raises(UnsafeSettings, match="COURSECRAFTER_WEBHOOK_SECRET"):
        build_container(settings_factory(public_url=public_url))


@pytest.mark.parametrize("public_url", [
    "http://127.0.0.1:8000", "http://127.3.4.5", "http://localhost:9000", "http://[::1]:8000",
    "http://LOCALHOST.",
])
def test_loopback_urls_may_use_generated_secrets(settings_factory, public_url):
    from coursecrafter_server.bootstrap import build_container

    build_container(settings_factory(public_url=public_url)).close()


def test_generated_key_file_is_private_and_reused(settings_factory, home):
    from coursecrafter_server.bootstrap import build_container

    first = build_container(settings_factory())
    key_file = home / "jwt_private_key.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert build_container(settings_factory()).signing_key.kid == first.signing_key.kid

"""A logout in the embedded mode (no Redis) must outlive the server process."""

from __future__ import annotations

from pathlib import Path

import httpx
from livesupport import start_live_server

PASSWORD = "lecture hall 42"


def test_logout_survives_a_server_restart(tmp_path: Path):
    home = tmp_path / "home"
    first = start_live_server(home)
    try:
        api = f"{first.url}/api/v1"
        assert httpx.post(f"{api}/auth/register", json={
            "username": "ada", "email": "ada@example.edu", "password": PASSWORD}).status_code == 201
        out = httpx.post(f"{api}/auth/login", json={"username": "ada", "password": PASSWORD}).json()
        kept = httpx.post(f"{api}/auth/login", json={"username": "ada", "password": PASSWORD}).json()
        auth = {"Authorization": f"Bearer {out['access_token']}"}
        assert httpx.post(f"{api}/auth/logout", json={"refresh_token": out["refresh_token"]},
                          headers=auth).status_code == 204
    finally:
        first.stop()
    # Same home and public URL (the token issuer), a new process.
    second = start_live_server(home, {"COURSECRAFTER_PUBLIC_URL": first.url})
    try:
        me = httpx.get(f"{second.url}/api/v1/auth/me", headers=auth)
        assert me.status_code == 401 and "revoked" in me.json()["error"]["message"]
        # Only the ended session: the other one still works after the restart.
        other = {"Authorization": f"Bearer {kept['access_token']}"}
        assert httpx.get(f"{second.url}/api/v1/auth/me", headers=other).status_code == 200
    finally:
        second.stop()

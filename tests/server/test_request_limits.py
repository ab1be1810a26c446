"""A real server refuses oversized request heads and stalled bodies without keeping anyone else
waiting."""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit

import httpx
import pytest
from livesupport import start_live_server

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server = start_live_server(tmp_path_factory.mktemp("limits") / "home", {
        "COURSECRAFTER_TRANSCODE_CONCURRENCY": "0",
        "COURSECRAFTER_BODY_READ_TIMEOUT": "1",
    })
    yield server
    server.stop()


def connect(live) -> socket.socket:
    url = urlsplit(live.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=30)
    return sock


def read_answer(sock: socket.socket) -> bytes:
    """Everything the server says until it closes (b"" if it just hangs up or resets)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_a_huge_header_is_refused_before_it_ends_while_others_are_served(live):
    sock = connect(live)
    sent = 0
    served: list[int] = []
    try:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        # Never end the header: a server that reads it all waits for more and this test's
        # recv times out instead of seeing the refusal.
        try:
            while sent < 2 * MIB:
                sock.sendall(b"a" * 65536)
                sent += 65536
                if sent == MIB:  # meanwhile, someone else is answered
                    served.append(httpx.get(live.url + "/healthz", timeout=30).status_code)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused mid-way: the connection is already closed
        answer = read_answer(sock)
    finally:
        sock.close()
    assert answer == b"" or answer.split(b" ", 2)[1] in (b"400", b"431"), answer[:200]
    assert served in ([], [200])
    assert httpx.get(live.url + "/healthz", timeout=30).status_code == 200


def test_too_many_header_fields_are_431(live):
    headers = {f"x-h{i}": "1" for i in range(150)}
    response = httpx.get(live.url + "/healthz", headers=headers, timeout=30)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "request_header_fields_too_large"
    assert httpx.get(live.url + "/healthz", headers=dict(list(headers.items())[:50]),
                     timeout=30).status_code == 200


def signed_part_path(live) -> str:
    """The path of a real pre-signed part URL of a fresh upload."""
    password = "correct horse battery"
    httpx.post(live.url + "/api/v1/auth/register", json={
        "username": "ada", "email": "ada@example.edu", "password": password}, timeout=30)
    token = httpx.post(live.url + "/api/v1/auth/login", json={
        "username": "ada", "password": password}, timeout=30).json()["access_token"]
    upload = httpx.post(live.url + "/api/v1/uploads", headers={"Authorization": f"Bearer {token}"},
                        json={"filename": "l.mp4", "size": 1000, "content_type": "video/mp4"},
                        timeout=30)
    assert upload.status_code in (200, 201), upload.text
    url = urlsplit(upload.json()["parts"][0]["url"])
    return f"{url.path}?{url.query}"


@pytest.mark.parametrize("kind", ["api", "blob"])
def test_a_stalled_body_is_408_while_others_are_served(live, kind):
    if kind == "api":
        head = "POST /api/v1/auth/login"
    else:
        head = f"PUT {signed_part_path(live)}"
    sock = connect(live)
    try:
        sock.sendall(f"{head} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 1000\r\n\r\n{\"user".encode())
        answered = threading.Event()
        result: dict[str, bytes] = {}

        def wait_for_answer() -> None:
            result["answer"] = read_answer(sock)
            answered.set()

        threading.Thread(target=wait_for_answer, daemon=True).start()
        assert httpx.get(live.url + "/healthz", timeout=30).status_code == 200
        assert answered.wait(60), "the server kept waiting for the rest of the body"
    finally:
        sock.close()
    answer = result["answer"]
    assert answer.split(b" ", 2)[1] == b"408", answer[:300]
    assert b"request_timeout" in answer

"""Oversized request bodies, sent as an attacker would: to the unauthenticated login.

A declared Content-Length over the limit is refused before one byte is read; a chunked
body is cut off as soon as it passes the limit, so memory stays bounded whatever is sent.
The ASGI driver below plays the server, so the tests can count what the application read;
one test runs a real uvicorn and speaks HTTP/1.1 over a socket.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import Request
from fastapi.testclient import TestClient

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.store import Store

LOGIN = "/api/v1/auth/login"
MiB = 1024 * 1024
LIMIT = 1 * MiB
UPLOAD_LIMIT = 4 * MiB
CHUNK = b"a" * (64 * 1024)


@dataclass
class Exchange:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    reads: int = 0  # body chunks the application asked for

    def problem(self) -> dict[str, Any]:
        assert self.headers["content-type"] == "application/problem+json"
        problem: dict[str, Any] = json.loads(self.body)
        return problem


def exchange(
    app: Any,
    path: str,
    *,
    total: int,
    headers: dict[str, str] | None = None,
    declare_length: bool = False,
    give_up_after: int | None = None,
) -> Exchange:
    """POST ``total`` bytes in 64 KiB chunks, chunked unless ``declare_length``.

    The chunks are one bytes object sent again and again: the driver itself holds 64 KiB,
    whatever ``total`` is. After ``give_up_after`` reads the client disconnects.
    """
    result = Exchange()
    sent = 0
    all_headers = {"host": "testserver", "content-type": "application/json", **(headers or {})}
    if declare_length:
        all_headers["content-length"] = str(total)
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in all_headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent >= total or (give_up_after is not None and result.reads >= give_up_after):
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        result.reads += 1
        chunk = CHUNK[: total - sent]
        sent += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": sent < total}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            result.status = message["status"]
            result.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            result.body += message.get("body", b"")

    # A thread of its own: the browser tests' Playwright keeps an event loop running in
    # this one for the whole session.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, app(scope, receive, send)).result()
    return result


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    """No database is touched: every body here is refused before a route runs."""
    settings = Settings(data_dir=tmp_path, max_body_bytes=LIMIT, max_upload_bytes=UPLOAD_LIMIT)
    store = Store(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path / "blobs")
    application = create_app(settings, store)
    yield application
    store.dispose()


def test_a_declared_200_mb_login_body_is_refused_unread(app: Any) -> None:
    result = exchange(app, LOGIN, total=200 * MiB, declare_length=True, give_up_after=64)
    assert result.status == 413
    assert result.reads == 0
    problem = result.problem()
    assert (problem["code"], problem["limit"]) == ("CONTENT_TOO_LARGE", LIMIT)
    assert result.headers["connection"] == "close"


def test_a_chunked_body_is_cut_off_when_it_passes_the_limit(app: Any) -> None:
    result = exchange(app, LOGIN, total=200 * MiB, give_up_after=1024)
    assert result.status == 413
    assert result.problem()["code"] == "CONTENT_TOO_LARGE"
    assert result.reads == LIMIT // len(CHUNK) + 1  # the limit, and the chunk that passed it


def test_a_body_longer_than_it_declared_is_cut_off_too(app: Any) -> None:
    result = exchange(
        app, LOGIN, total=200 * MiB, headers={"content-length": "10"}, give_up_after=1024
    )
    assert result.status == 413
    assert result.reads == LIMIT // len(CHUNK) + 1


def test_streaming_50_mb_at_the_login_costs_no_50_mb(app: Any) -> None:
    exchange(app, LOGIN, total=2 * LIMIT)  # the first request builds the app's machinery
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = exchange(app, LOGIN, total=50 * MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - before < 8 * MiB, f"{(peak - before) / MiB:.1f} MiB"
    assert result.status == 413


def test_a_form_read_for_its_csrf_token_is_limited_too(app: Any) -> None:
    # A cookie request whose token is not in a header: the form body is read to find it.
    cookie_form = {
        "content-type": "application/x-www-form-urlencoded",
        "cookie": "crmsync_session=crms_whatever",
        "origin": "http://testserver",
    }
    result = exchange(
        app, "/api/v1/accounts", total=200 * MiB, headers=cookie_form, give_up_after=1024
    )
    assert result.status == 413
    assert result.reads == LIMIT // len(CHUNK) + 1


def test_routes_marked_for_uploads_take_more(app: Any) -> None:
    from crmsync.api.limits import upload_route

    @app.post("/api/v1/uploads/{name}", openapi_extra=upload_route())
    async def upload(name: str, request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    with TestClient(app, raise_server_exceptions=False) as client:
        spec = client.get("/api/v1/openapi.json").json()
        assert spec["paths"]["/api/v1/uploads/{name}"]["post"]["x-crmsync-upload"] is True
        big = b"a" * (2 * LIMIT)
        taken = client.post("/api/v1/uploads/report.pdf", content=big)
        assert (taken.status_code, taken.json()) == (200, {"size": 2 * LIMIT})
        too_big = client.post("/api/v1/uploads/report.pdf", content=b"a" * (UPLOAD_LIMIT + 1))
        assert (too_big.status_code, too_big.json()["limit"]) == (413, UPLOAD_LIMIT)
        elsewhere = client.post(LOGIN, content=big)
        assert (elsewhere.status_code, elsewhere.json()["limit"]) == (413, LIMIT)


def test_bodies_under_the_limit_go_through(client: TestClient) -> None:
    padded = {"username": "admin-acme", "password": "admin-password", "_": "x" * (4 * MiB)}
    response = client.post(
        LOGIN, content=json.dumps(padded), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422  # read and parsed: an unknown field, not a size
    login = client.post(LOGIN, json={"username": "admin-acme", "password": "admin-password"})
    assert login.status_code == 200


@pytest.fixture
def served(app: Any) -> Iterator[tuple[str, int]]:
    """The app under a real uvicorn, in a thread of this process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield sock.getsockname()
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        sock.close()


def _read_response(conn: socket.socket) -> bytes:
    """Status line, headers and body, until the server closes the connection."""
    conn.settimeout(20)
    data = b""
    while True:
        try:
            part = conn.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
    return data


def _request_head(address: tuple[str, int], extra: str) -> bytes:
    host = f"{address[0]}:{address[1]}"
    return (
        f"POST {LOGIN} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_uvicorn_refuses_a_declared_200_mb_body_without_waiting_for_it(
    served: tuple[str, int],
) -> None:
    with socket.create_connection(served, timeout=20) as conn:
        conn.sendall(_request_head(served, f"Content-Length: {200 * MiB}\r\n"))
        response = _read_response(conn)  # not one byte of the body was sent
    assert response.startswith(b"HTTP/1.1 413 ")
    assert b"CONTENT_TOO_LARGE" in response


def test_uvicorn_cuts_off_a_chunked_body_over_the_limit(served: tuple[str, int]) -> None:
    frame = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n"
    with socket.create_connection(served, timeout=20) as conn:
        conn.sendall(_request_head(served, "Transfer-Encoding: chunked\r\n"))
        for _ in range(50 * MiB // len(CHUNK)):
            # Stop sending as soon as the server has answered, as a client would.
            if select.select([conn], [], [], 0)[0]:
                break
            try:
                conn.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
        response = _read_response(conn)
    assert response.startswith(b"HTTP/1.1 413 "), response[:200]
    assert b"CONTENT_TOO_LARGE" in response

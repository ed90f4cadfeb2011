"""`crmsync init && crmsync serve` as a new user runs them: a real process, real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    env = {
        **os.environ,
        "CRMSYNC_DATA_DIR": str(tmp_path / "data"),
        "CRMSYNC_ADMIN_PASSWORD": "admin-password",
    }
    crmsync = [sys.executable, "-m", "crmsync"]
    subprocess.run([*crmsync, "init"], env=env, check=True, cwd=tmp_path, timeout=120)
    port = _free_port()
    process = subprocess.Popen(
        [*crmsync, "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            process.kill()
            raise AssertionError(process.communicate()[0].decode(errors="replace"))
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_admin_creates_records_a_second_user_cannot_see(served: str) -> None:
    api = httpx.Client(base_url=f"{served}/api/v1", timeout=10)
    token = api.post("/auth/login", json={"username": "admin", "password": "admin-password"})
    admin = {"Authorization": f"Bearer {token.json()['token']}"}
    account = api.post("/accounts", json={"name": "Fabrikam"}, headers=admin).json()
    contact = api.post(
        "/contacts",
        json={"last_name": "Buyer", "email1": "buyer@fabrikam.test", "account_id": account["id"]},
        headers=admin,
    ).json()
    email = api.post(
        "/emails",
        json={
            "subject": "Quote",
            "regarding_type": "account",
            "regarding_id": account["id"],
            "parties": [
                {"participation": "to", "party_type": "contact", "party_id": contact["id"]}
            ],
        },
        headers=admin,
    )
    assert email.status_code == 201, email.text
    created = api.post(
        "/users", json={"username": "viewer", "password": "viewer-password"}, headers=admin
    )
    assert created.status_code == 201
    login = api.post("/auth/login", json={"username": "viewer", "password": "viewer-password"})
    viewer = {"Authorization": f"Bearer {login.json()['token']}"}
    assert api.get(f"/emails/{email.json()['id']}", headers=viewer).status_code == 404
    assert api.get(f"/accounts/{account['id']}/timeline", headers=viewer).status_code == 404
    assert api.get("/emails", headers=viewer).json()["items"] == []
    assert (
        api.get(f"/accounts/{account['id']}/timeline", headers=admin).json()["items"][0]["subject"]
        == "Quote"
    )
    assert httpx.get(f"{served}/docs").status_code == 200

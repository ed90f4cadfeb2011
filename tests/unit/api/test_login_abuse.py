"""Password guessing, as an attacker would try it: throttled, and no username oracle."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crmsync.api import sessions
from crmsync.crm import auth, throttle
from crmsync.crm.db import utcnow
from tests.conftest import Org

API = "/api/v1"


def _login(client: TestClient, username: str, password: str) -> int:
    body = {"username": username, "password": password}
    return client.post(f"{API}/auth/login", json=body).status_code


def test_guessing_locks_the_account_even_for_the_right_password(
    client: TestClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every guess at one instant: on a slow machine 120 logins outlast the first lock
    # (1 s), and the guess after it would rightly get as far as the password.
    frozen = utcnow()
    monkeypatch.setattr(sessions, "utcnow", lambda: frozen)
    statuses = [_login(client, "admin-acme", f"guess-{n}") for n in range(120)]
    free = throttle.ACCOUNT_POLICY.free_failures
    assert statuses[: free + 1] == [401] * (free + 1)
    assert set(statuses[free + 1 :]) == {429}
    right = client.post(
        f"{API}/auth/login", json={"username": "admin-acme", "password": "admin-password"}
    )
    assert right.status_code == 429
    assert right.headers["content-type"] == "application/problem+json"
    assert int(right.headers["retry-after"]) >= 1
    assert right.json()["code"] == "TOO_MANY_ATTEMPTS"


def test_a_locked_account_does_not_lock_out_the_others(client: TestClient, org: Org) -> None:
    for n in range(throttle.ACCOUNT_POLICY.free_failures + 2):
        _login(client, "admin-acme", f"guess-{n}")
    assert _login(client, "admin-acme", "admin-password") == 429
    with org.store.transaction() as session:
        bob = session.get(auth.User, org.add_user(session, "bob"))
        assert bob is not None
        bob.password_hash = auth.hash_password("bob-password")
    assert _login(client, "bob", "bob-password") == 200


def test_every_failure_costs_one_password_verification(
    client: TestClient, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users without a password once answered in 5 ms and others in 170: a username
    oracle. Every failing path now verifies one argon2 hash."""
    with org.store.transaction() as session:
        org.add_user(session, "no-password")  # a user with no password set
        inactive_id = org.add_user(session, "gone")
        gone = session.get(auth.User, inactive_id)
        assert gone is not None
        gone.password_hash = auth.hash_password("gone-password")
        gone.is_active = False
    verified: list[str] = []
    real = auth._hasher

    class CountingHasher:
        def hash(self, password: str) -> str:
            return real.hash(password)

        def verify(self, hash_: str, password: str) -> bool:
            verified.append(password)
            return real.verify(hash_, password)

    monkeypatch.setattr(auth, "_hasher", CountingHasher())
    for username, password in [
        ("nobody-at-all", "x"),
        ("no-password", "x"),
        ("gone", "gone-password"),
        ("admin-acme", "wrong"),
    ]:
        verified.clear()
        assert _login(client, username, password) == 401, username
        assert len(verified) == 1, username


def test_one_address_guessing_across_accounts_is_throttled(client: TestClient, org: Org) -> None:
    for n in range(throttle.ADDRESS_POLICY.free_failures + 1):
        assert _login(client, f"user-{n}", "guess") == 401
    assert _login(client, "admin-acme", "admin-password") == 429

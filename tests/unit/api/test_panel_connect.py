"""Connecting a side panel: one-time codes, scoped panel tokens, revocation — and abuse."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from crmsync.api.csrf import CSRF_HEADER
from crmsync.core.types import TokenKind
from crmsync.crm import connect
from crmsync.crm.db import utcnow
from crmsync.crm.models.org import ApiToken, User
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.panel_support import PANEL, bearer, panel_client

API = "/api/v1"
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
LOOKUP = f"{PANEL}/lookup?from=ann@fabrikam.test"


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    # Replaces conftest's client, so the `admin` fixture logs in to this app.
    yield from panel_client(store)


def _code(client: TestClient, headers: dict[str, str]) -> str:
    response = client.post(f"{PANEL}/connect-codes", headers=headers)
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    assert isinstance(code, str)
    return code


def _exchange(client: TestClient, code: str, name: str = "Outlook on LAPTOP-1") -> dict[str, str]:
    response = client.post(f"{PANEL}/tokens", json={"code": code, "name": name})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def _refused_code(client: TestClient, code: str) -> str:
    response = client.post(f"{PANEL}/tokens", json={"code": code})
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    code_name: str = response.json()["code"]
    return code_name


def test_the_connect_flow_yields_a_panel_token_that_works_only_on_the_panel(
    client: TestClient, admin: dict[str, str]
) -> None:
    issued = client.post(f"{PANEL}/connect-codes", headers=admin)
    assert issued.status_code == 201, issued.text
    code, expires_at = issued.json()["code"], issued.json()["expires_at"]
    assert CODE.match(code), code
    lifetime = _parse(expires_at) - utcnow()
    assert timedelta(minutes=4) < lifetime <= timedelta(minutes=5)

    # Typed by a person: lower case, a space instead of the dash, O for 0.
    typed = code.lower().replace("-", " ").replace("0", "o")
    panel = _exchange(client, typed)
    assert panel["kind"] == "panel"
    assert panel["name"] == "Outlook on LAPTOP-1"
    assert panel["token"].startswith("crms_")
    assert timedelta(days=89) < _parse(panel["expires_at"]) - utcnow() <= timedelta(days=90)
    token = bearer(panel["token"])

    assert client.get(LOOKUP, headers=token).status_code == 200
    for method, path in [
        ("GET", f"{API}/accounts"),
        ("GET", f"{API}/users/me"),
        ("GET", f"{API}/tokens"),
        ("POST", f"{API}/tokens"),
        ("POST", f"{PANEL}/connect-codes"),
        ("POST", f"{API}/auth/logout"),
        # A route that talks to mail servers finds its caller in a transaction of its own.
        ("POST", f"{API}/mailboxes/{uuid.uuid4()}/test-enable"),
    ]:
        response = client.request(method, path, headers=token, json={"name": "x"})
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "TOKEN_OUT_OF_SCOPE"
        assert "side panel" in response.json()["detail"]

    # Its owner revokes it with their other tokens (listed: test_panel_token_list.py).
    assert client.delete(f"{API}/tokens/{panel['id']}", headers=admin).status_code == 204
    refused = client.get(LOOKUP, headers=token)
    assert refused.status_code == 401
    assert refused.json()["code"] == "AUTHENTICATION_FAILED"
    # Revoked is revoked everywhere: no longer "out of scope", simply unknown.
    assert client.get(f"{API}/accounts", headers=token).status_code == 401


def test_a_code_works_once(client: TestClient, admin: dict[str, str]) -> None:
    code = _code(client, admin)
    _exchange(client, code)
    assert _refused_code(client, code) == "CONNECT_CODE_INVALID"


def test_an_expired_code_fails(client: TestClient, admin: dict[str, str], store: Store) -> None:
    code = _code(client, admin)
    with store.transaction() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.kind == TokenKind.CONNECT_CODE)
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    assert _refused_code(client, code) == "CONNECT_CODE_INVALID"


def test_unknown_and_malformed_codes_fail_alike(client: TestClient, admin: dict[str, str]) -> None:
    code = _code(client, admin)
    other = "0000-0000" if code != "0000-0000" else "1111-1111"
    for guess in (other, "not a code", "ABCD-EFG", "ABCD-EFGHI", "ABCU-EFGH"):
        assert _refused_code(client, guess) == "CONNECT_CODE_INVALID", guess


def test_connect_codes_never_authenticate(client: TestClient, admin: dict[str, str]) -> None:
    code = _code(client, admin)
    for sent in (code, code.replace("-", "")):
        for path in (LOOKUP, f"{API}/users/me"):
            response = client.get(path, headers=bearer(sent))
            assert response.status_code == 401, (sent, path)
            assert response.json()["code"] == "AUTHENTICATION_FAILED"
    _exchange(client, code)  # trying it as a credential did not use it up


def test_the_panel_disconnects_its_own_token(client: TestClient, admin: dict[str, str]) -> None:
    panel = bearer(_exchange(client, _code(client, admin))["token"])
    # Disconnecting is for panel tokens: a session is not ended this way.
    refused = client.post(f"{PANEL}/disconnect", headers=admin)
    assert refused.status_code == 403
    assert client.get(f"{API}/users/me", headers=admin).status_code == 200
    assert client.post(f"{PANEL}/disconnect", headers=panel).status_code == 204
    assert client.get(LOOKUP, headers=panel).status_code == 401


def test_sessions_and_api_tokens_work_on_the_panel_too(
    client: TestClient, admin: dict[str, str]
) -> None:
    api_token = client.post(f"{API}/tokens", json={"name": "script"}, headers=admin).json()
    assert client.get(LOOKUP, headers=bearer(api_token["token"])).status_code == 200
    assert client.get(LOOKUP, headers=admin).status_code == 200  # a Bearer session
    # An API token may ask for a code as well (a script setting up a kiosk, say).
    _exchange(client, _code(client, bearer(api_token["token"])))


def test_the_web_app_asks_for_a_code_with_its_cookie_and_csrf_token(client: TestClient) -> None:
    login = client.post(
        f"{API}/auth/login", json={"username": "admin-acme", "password": "admin-password"}
    )
    assert login.status_code == 200
    csrf = login.json()["csrf_token"]
    origin = {"Origin": "http://testserver"}
    # The cookie alone is not enough for a POST: a foreign page could make that one.
    assert client.post(f"{PANEL}/connect-codes", headers=origin).status_code == 403
    response = client.post(f"{PANEL}/connect-codes", headers={**origin, CSRF_HEADER: csrf})
    assert response.status_code == 201, response.text
    assert client.get(LOOKUP).status_code == 200  # the panel page's own calls, by cookie
    _exchange(client, response.json()["code"])


def test_a_panel_token_of_a_deactivated_user_stops_working(
    client: TestClient, admin: dict[str, str], store: Store, org: Org
) -> None:
    with store.transaction() as session:
        sally = session.get(User, org.add_user(session, "sally"))
        assert sally is not None
        code, _ = connect.issue_connect_code(session, sally)
    panel = bearer(_exchange(client, code)["token"])
    assert client.get(LOOKUP, headers=panel).status_code == 200
    with store.transaction() as session:
        session.execute(update(User).where(User.username == "sally").values(is_active=False))
    assert client.get(LOOKUP, headers=panel).status_code == 401


def test_guessing_codes_is_throttled_even_for_the_right_one(
    client: TestClient, admin: dict[str, str]
) -> None:
    code = _code(client, admin)
    wrong = [_guess(n) for n in range(50)]
    statuses = [
        client.post(f"{PANEL}/tokens", json={"code": guess}).status_code
        for guess in wrong
        if guess != code
    ]
    free = connect.CODE_POLICY.free_failures
    assert statuses[: free + 1] == [401] * (free + 1)
    assert set(statuses[free + 1 :]) == {429}
    right = client.post(f"{PANEL}/tokens", json={"code": code})
    assert right.status_code == 429
    assert right.json()["code"] == "TOO_MANY_ATTEMPTS"
    assert int(right.headers["retry-after"]) >= 1


def test_a_right_code_is_not_counted_as_a_guess(client: TestClient, admin: dict[str, str]) -> None:
    # More panels connected from one office than free failures: none of them is locked out.
    for _ in range(connect.CODE_POLICY.free_failures + 3):
        _exchange(client, _code(client, admin))


def test_what_the_exchange_accepts(client: TestClient, admin: dict[str, str]) -> None:
    code = _code(client, admin)
    for body in (
        {"code": code, "name": "bad\x00name"},
        {"code": code, "name": ""},
        {"code": code, "expires_in_days": 366},
        {"code": code, "expires_in_days": 0},
        {"code": code, "extra": 1},
        {"code": ""},
    ):
        response = client.post(f"{PANEL}/tokens", json=body)
        assert response.status_code == 422, body
    short = client.post(f"{PANEL}/tokens", json={"code": code, "expires_in_days": 1})
    assert short.status_code == 201
    assert _parse(short.json()["expires_at"]) - utcnow() <= timedelta(days=1)


def _guess(n: int) -> str:
    digits = f"{n:08d}"
    return f"{digits[:4]}-{digits[4:]}"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)

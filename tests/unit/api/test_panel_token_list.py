"""A person's token list: their API tokens and side panel tokens, never codes or sessions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmsync.crm.auth import issue_token
from crmsync.crm.models.org import User
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.panel_support import PANEL, bearer, panel_client

API = "/api/v1"


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    yield from panel_client(store)


def _panel_token(client: TestClient, headers: dict[str, str], name: str) -> dict[str, str]:
    code = client.post(f"{PANEL}/connect-codes", headers=headers).json()["code"]
    response = client.post(f"{PANEL}/tokens", json={"code": code, "name": name})
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def test_the_list_shows_api_and_panel_tokens_but_no_codes_or_sessions(
    client: TestClient, admin: dict[str, str]
) -> None:
    assert client.post(f"{API}/tokens", json={"name": "script"}, headers=admin).status_code == 201
    _panel_token(client, admin, "Outlook on LAPTOP-1")
    assert client.post(f"{PANEL}/connect-codes", headers=admin).status_code == 201  # unused
    listed = client.get(f"{API}/tokens", headers=admin).json()
    assert [(t["name"], t["kind"]) for t in listed] == [
        ("script", "api"),
        ("Outlook on LAPTOP-1", "panel"),
    ]
    assert all("token" not in t for t in listed)


def test_revoked_panel_tokens_stay_listed_as_revoked(
    client: TestClient, admin: dict[str, str]
) -> None:
    by_owner = _panel_token(client, admin, "laptop")
    by_panel = _panel_token(client, admin, "phone")
    assert client.delete(f"{API}/tokens/{by_owner['id']}", headers=admin).status_code == 204
    disconnect = client.post(f"{PANEL}/disconnect", headers=bearer(by_panel["token"]))
    assert disconnect.status_code == 204
    listed = client.get(f"{API}/tokens", headers=admin).json()
    assert [(t["name"], t["revoked"]) for t in listed] == [("laptop", True), ("phone", True)]
    for token in (by_owner, by_panel):
        lookup = client.get(f"{PANEL}/lookup", headers=bearer(token["token"]))
        assert lookup.status_code == 401


def test_one_cannot_revoke_anothers_panel_token(
    client: TestClient, admin: dict[str, str], org: Org, store: Store
) -> None:
    mine = _panel_token(client, admin, "laptop")
    with store.transaction() as session:
        sally = session.get(User, org.add_user(session, "sally"))
        assert sally is not None
        _, sally_token = issue_token(session, sally, "script")
    refused = client.delete(f"{API}/tokens/{mine['id']}", headers=bearer(sally_token))
    assert refused.status_code == 404
    assert client.get(f"{PANEL}/lookup", headers=bearer(mine["token"])).status_code == 200

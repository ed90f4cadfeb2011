"""An API client per backend, logged in as the organisation's administrator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.store import Store
from tests.conftest import Org


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=store.blobs.root.parent), store)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def login(
    client: TestClient, username: str, password: str, *, organisation: str | None = None
) -> dict[str, str]:
    body = {"username": username, "password": password}
    if organisation:
        body["organisation"] = organisation
    response = client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200, response.text
    client.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


@pytest.fixture
def admin(client: TestClient, org: Org) -> dict[str, str]:
    return login(client, "admin-acme", "admin-password")

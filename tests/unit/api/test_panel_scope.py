"""A side panel token's scope: the routes the panel acts through, and nothing else.

The panel looks an email up, searches for a regarding record, tracks, untracks, sets
regarding and adds an address as a contact or lead — all with its panel token. Anywhere
else the same token is 403 TOKEN_OUT_OF_SCOPE.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.crm.models import Contact, Email
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.panel_support import PANEL, add_seen_message, bearer, panel_client

API = "/api/v1"
MESSAGE_ID = "<rfq-7@customer.example>"


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    yield from panel_client(store)


@pytest.fixture
def panel(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    code = client.post(f"{PANEL}/connect-codes", headers=admin).json()["code"]
    issued = client.post(f"{PANEL}/tokens", json={"code": code, "name": "Outlook"})
    assert issued.status_code == 201, issued.text
    return bearer(issued.json()["token"])


def test_the_panel_does_its_whole_job_with_a_panel_token(
    client: TestClient, panel: dict[str, str], org: Org, store: Store
) -> None:
    add_seen_message(
        store,
        org.admin_id,
        MESSAGE_ID,
        sender="Nora New <nora@customer.example>",
        to="admin@acme.test",
        subject="Request for quote",
    )
    resolved = client.post(
        f"{API}/addresses/resolve",
        json={"address": "nora@customer.example", "display_name": "Nora New", "as": "contact"},
        headers=panel,
    )
    assert resolved.status_code == 201, resolved.text
    tracked = client.post(f"{API}/emails/track", json={"message_id": MESSAGE_ID}, headers=panel)
    assert tracked.status_code == 201, tracked.text
    email_id = tracked.json()["email"]["id"]
    found = client.get(f"{API}/search", params={"q": "Nora"}, headers=panel)
    assert found.status_code == 200, found.text
    assert [hit["title"] for hit in found.json()["items"]] == ["Nora New"]
    contact_id = found.json()["items"][0]["record_id"]
    regarding = client.put(
        f"{API}/emails/{email_id}/regarding",
        json={"regarding_type": "contact", "regarding_id": contact_id},
        headers=panel,
    )
    assert regarding.status_code == 200, regarding.text
    looked = client.get(f"{PANEL}/lookup", params={"message_id": MESSAGE_ID}, headers=panel)
    assert looked.json()["email"]["regarding"]["name"] == "Nora New"
    with store.transaction() as session:
        assert session.get(Contact, uuid.UUID(contact_id)) is not None
        assert session.scalars(select(Email.message_id)).all() == [MESSAGE_ID]
    untracked = client.post(f"{API}/emails/{email_id}/untrack", headers=panel)
    assert untracked.status_code == 200, untracked.text
    with store.transaction() as session:
        assert session.scalars(select(Email)).all() == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", f"{API}/accounts", None),
        ("post", f"{API}/accounts", {"name": "Panel Corp"}),
        ("get", f"{API}/contacts", None),
        ("get", f"{API}/emails", None),
        ("post", f"{API}/emails/{uuid.uuid4()}/send", None),
        ("get", f"{API}/tokens", None),
        ("post", f"{API}/tokens", {"name": "escalated"}),
        ("get", f"{API}/users/me/tracking-preferences", None),
        ("post", f"{PANEL}/connect-codes", None),
    ],
)
def test_a_panel_token_is_out_of_scope_everywhere_else(
    client: TestClient, panel: dict[str, str], method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body, headers=panel)
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "TOKEN_OUT_OF_SCOPE"

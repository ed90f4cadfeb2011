"""The services the web pages and the side panel use, as an API client sees them: search,
personal options, regarding, untrack, track, resolving an address, why an email was
tracked. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from crmsync.crm.models import Email, EmailKey
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.conftest import login
from tests.unit.api.crm_routes_support import crm_client

API = "/api/v1"


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    # Replaces conftest's client, so the `admin` fixture logs in to this app.
    yield from crm_client(store)


def _user(
    client: TestClient,
    admin: dict[str, str],
    name: str,
    role: str | None = "Salesperson",
    unit: object = None,
) -> str:
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    body = {
        "username": name,
        "password": f"{name}-password",
        "role_ids": [roles[role]] if role else [],
        "business_unit_id": unit,
    }
    response = client.post(f"{API}/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _post(
    client: TestClient, path: str, body: object, headers: dict[str, str]
) -> dict[str, object]:
    response = client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _fields(response: object) -> set[str]:
    body = response.json()  # type: ignore[attr-defined]
    assert body["code"] == "VALIDATION_FAILED", body
    return {error["field"] for error in body.get("errors", [])} | (
        {body["field"]} if "field" in body else set()
    )


def test_search_finds_records_best_first_and_only_readable_ones(
    client: TestClient, admin: dict[str, str]
) -> None:
    account = _post(client, "/accounts", {"name": "Fabrikam"}, admin)
    _post(client, "/contacts", {"last_name": "Fabrikam Fan", "account_id": account["id"]}, admin)
    found = client.get(f"{API}/search", params={"q": "fabrikam"}, headers=admin)
    assert found.status_code == 200, found.text
    assert [(h["record_type"], h["title"], h["subtitle"]) for h in found.json()["items"]] == [
        ("account", "Fabrikam", ""),
        ("contact", "Fabrikam Fan", "Fabrikam"),
    ]
    only = client.get(
        f"{API}/search", params={"q": "fab", "types": ["contact", "lead"]}, headers=admin
    )
    assert [h["record_type"] for h in only.json()["items"]] == ["contact"]
    _user(client, admin, "reader", role="Read Only")
    reader = login(client, "reader", "reader-password")
    far = _post(client, "/business-units", {"name": "Far"}, admin)["id"]
    _user(client, admin, "cid", unit=far)
    cid = login(client, "cid", "cid-password")
    as_reader = client.get(f"{API}/search", params={"q": "fab"}, headers=reader)
    assert len(as_reader.json()["items"]) == 2
    assert client.get(f"{API}/search", params={"q": "fab"}, headers=cid).json()["items"] == []
    for params, field in (
        ({"q": ""}, "query.q"),
        ({"q": "x", "limit": "0"}, "query.limit"),
        ({"q": "x", "types": "email"}, "query.types.0"),
        ({}, "query.q"),
    ):
        refused = client.get(f"{API}/search", params=params, headers=admin)
        assert refused.status_code == 422
        assert field in _fields(refused)


def test_personal_options_are_read_and_changed_by_name(
    client: TestClient, admin: dict[str, str]
) -> None:
    path = f"{API}/users/me/tracking-preferences"
    assert client.get(path, headers=admin).json() == {
        "track_scope": "replies_to_crm",
        "create_for_unknown_sender": "none",
        "leave_ambiguous_unresolved": False,
    }
    changed = client.put(path, json={"track_scope": "from_crm_records"}, headers=admin)
    assert changed.status_code == 200, changed.text
    assert changed.json()["track_scope"] == "from_crm_records"
    changed = client.put(path, json={"create_for_unknown_sender": "lead"}, headers=admin)
    assert changed.json()["track_scope"] == "from_crm_records"  # left out, kept
    for body, field in (
        ({"track_scope": "everything"}, "track_scope"),
        ({"track_scope": None}, "track_scope"),
        ({"leave_ambiguous_unresolved": "maybe"}, "leave_ambiguous_unresolved"),
        ({"colour": "blue"}, "colour"),
    ):
        refused = client.put(path, json=body, headers=admin)
        assert refused.status_code == 422, body
        assert field in _fields(refused)
    assert client.get(path, headers=admin).json()["create_for_unknown_sender"] == "lead"


def test_a_queues_options_are_its_owners(client: TestClient, admin: dict[str, str]) -> None:
    ann_id = _user(client, admin, "ann")
    _user(client, admin, "bob")
    ann = login(client, "ann", "ann-password")
    bob = login(client, "bob", "bob-password")
    body = {"name": "Support", "email": "support@acme.test", "owner_id": ann_id}
    queue = _post(client, "/queues", body, admin)
    path = f"{API}/queues/{queue['id']}/tracking-preferences"
    assert client.put(path, json={"track_scope": "all"}, headers=ann).status_code == 200
    assert client.get(path, headers=admin).json()["track_scope"] == "all"
    assert client.get(path, headers=bob).status_code == 403
    assert client.put(path, json={"track_scope": "none"}, headers=bob).status_code == 403
    missing = client.get(f"{API}/queues/{uuid.uuid4()}/tracking-preferences", headers=admin)
    assert missing.status_code == 404


def _email(client: TestClient, headers: dict[str, str], **values: object) -> str:
    return str(_post(client, "/emails", {"subject": "Quote", **values}, headers)["id"])


def test_regarding_is_set_and_cleared_by_hand(client: TestClient, admin: dict[str, str]) -> None:
    account = _post(client, "/accounts", {"name": "Fabrikam"}, admin)
    email_id = _email(client, admin)
    path = f"{API}/emails/{email_id}/regarding"
    body = {"regarding_type": "account", "regarding_id": account["id"]}
    done = client.put(path, json=body, headers=admin)
    assert done.status_code == 200, done.text
    assert (done.json()["regarding_id"], done.json()["correlation_method"]) == (
        account["id"],
        "manual",
    )
    timeline = client.get(f"{API}/accounts/{account['id']}/timeline", headers=admin).json()
    assert [(item["id"], item["via"]) for item in timeline["items"]] == [(email_id, None)]
    half = client.put(path, json={"regarding_type": "account"}, headers=admin)
    assert half.status_code == 422
    unknown = {"regarding_type": "account", "regarding_id": str(uuid.uuid4())}
    refused = client.put(path, json=unknown, headers=admin)
    assert (refused.status_code, refused.json()["field"]) == (422, "regarding_id")
    cleared = client.put(path, json={"regarding_type": None, "regarding_id": None}, headers=admin)
    assert cleared.json()["regarding_id"] is None
    assert client.put(path, json={}, headers=admin).status_code == 200
    _user(client, admin, "outsider", role=None)
    outsider = login(client, "outsider", "outsider-password")
    assert client.put(path, json=body, headers=outsider).status_code == 404


def test_untracking_deletes_the_email_and_tombstones_its_message(
    client: TestClient, admin: dict[str, str], store: Store, org: Org
) -> None:
    email_id = _email(client, admin)
    with store.transaction() as session:
        session.add(
            EmailKey(organisation_id=org.organisation_id, key="<m@x>", email_id=uuid.UUID(email_id))
        )
        email = session.get(Email, uuid.UUID(email_id))
        assert email is not None
        email.message_id = "<m@x>"
    done = client.post(f"{API}/emails/{email_id}/untrack", headers=admin)
    assert done.status_code == 200, done.text
    assert done.json() == {"email_id": email_id, "sightings": 0}
    assert client.get(f"{API}/emails/{email_id}", headers=admin).status_code == 404
    assert client.post(f"{API}/emails/{email_id}/untrack", headers=admin).status_code == 404
    with store.transaction() as session:
        tombstone = session.get(EmailKey, (org.organisation_id, "<m@x>"))
        assert tombstone is not None
        assert tombstone.email_id is None
    draft = _email(client, admin)
    refused = client.post(f"{API}/emails/{draft}/untrack", headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (409, "CONFLICT")


def test_tracking_a_message_nobody_can_see_is_not_found(
    client: TestClient, admin: dict[str, str]
) -> None:
    for body in ({"message_id": "<nowhere@x.test>"}, {"ledger_id": str(uuid.uuid4())}):
        missing = client.post(f"{API}/emails/track", json=body, headers=admin)
        assert missing.status_code == 404, missing.text
        assert missing.headers["content-type"] == "application/problem+json"
    for body in ({}, {"message_id": "<a@x>", "ledger_id": str(uuid.uuid4())}, {"message_id": ""}):
        assert client.post(f"{API}/emails/track", json=body, headers=admin).status_code == 422


def test_resolving_an_address_links_the_email_to_a_new_contact(
    client: TestClient, admin: dict[str, str]
) -> None:
    email_id = _email(
        client,
        admin,
        parties=[{"participation": "from", "address": "Nancy@Fabrikam.test"}],
    )
    resolved = client.post(
        f"{API}/addresses/resolve",
        json={"address": "nancy@fabrikam.test", "display_name": "Nancy Buyer", "as": "contact"},
        headers=admin,
    )
    assert resolved.status_code == 201, resolved.text
    contact = resolved.json()
    assert (contact["record_type"], contact["name"], contact["parties"]) == (
        "contact",
        "Nancy Buyer",
        1,
    )
    email = client.get(f"{API}/emails/{email_id}", headers=admin).json()
    assert (email["parties"][0]["party_type"], email["parties"][0]["party_id"]) == (
        "contact",
        contact["record_id"],
    )
    timeline = client.get(f"{API}/contacts/{contact['record_id']}/timeline", headers=admin)
    assert [item["id"] for item in timeline.json()["items"]] == [email_id]
    for body, field in (
        ({"address": "nope", "as": "lead"}, "address"),
        ({"address": "a@b.test", "as": "account"}, "as"),
        ({"address": "a@b.test"}, "as"),
    ):
        refused = client.post(f"{API}/addresses/resolve", json=body, headers=admin)
        assert refused.status_code == 422
        assert field in _fields(refused)


def test_why_tracked_names_the_matched_email_only_to_whoever_may_read_it(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    original = _email(client, admin, subject="Your quote")
    _user(client, admin, "ann")
    ann = login(client, "ann", "ann-password")
    reply = _email(client, ann, subject="Re: Your quote")
    # The admin's email is in Ann's unit: give it to another unit, out of her sight.
    far = _user(
        client, admin, "far", unit=_post(client, "/business-units", {"name": "Far"}, admin)["id"]
    )
    with store.transaction() as session:
        email = session.get(Email, uuid.UUID(reply))
        assert email is not None
        email.correlated_with_id = uuid.UUID(original)
    assert (
        client.post(
            f"{API}/emails/{original}/assign", json={"owner_id": far}, headers=admin
        ).status_code
        == 200
    )
    as_admin = client.get(f"{API}/emails/{reply}/tracking", headers=admin).json()
    assert as_admin["correlated_with"] == {"id": original, "subject": "Your quote"}
    as_ann = client.get(f"{API}/emails/{reply}/tracking", headers=ann).json()
    assert as_ann["correlated_with"] is None
    assert client.get(f"{API}/emails/{reply}", headers=ann).json()["correlated_with_id"] == original


def test_the_document_describes_every_new_operation_and_its_errors(client: TestClient) -> None:
    paths = client.get(f"{API}/openapi.json").json()["paths"]
    for path, method in (
        ("/api/v1/search", "get"),
        ("/api/v1/users/me/tracking-preferences", "put"),
        ("/api/v1/queues/{queue_id}/tracking-preferences", "get"),
        ("/api/v1/emails/{email_id}/regarding", "put"),
        ("/api/v1/emails/{email_id}/untrack", "post"),
        ("/api/v1/emails/track", "post"),
        ("/api/v1/addresses/resolve", "post"),
    ):
        responses = paths[path][method]["responses"]
        assert "401" in responses, path
        assert "application/problem+json" in responses["422"]["content"], path
    not_found = paths["/api/v1/emails/track"]["post"]["responses"]["404"]
    assert list(not_found["content"]) == ["application/problem+json"]

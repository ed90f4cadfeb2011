"""The API as a client sees it: records, an email with parties, rights, errors, pages."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from crmsync.crm.store import Store
from tests.unit.api.conftest import login

API = "/api/v1"


def _make_user(client: TestClient, admin: dict[str, str], name: str, **extra: object) -> str:
    body = {"username": name, "password": f"{name}-password", **extra}
    response = client.post(f"{API}/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_admin_records_an_email_that_a_user_without_rights_cannot_see(
    client: TestClient, admin: dict[str, str]
) -> None:
    account = client.post(
        f"{API}/accounts", json={"name": "Fabrikam", "email1": "info@fabrikam.test"}, headers=admin
    )
    assert account.status_code == 201, account.text
    account_id = account.json()["id"]
    contact = client.post(
        f"{API}/contacts",
        json={
            "first_name": "Nancy",
            "last_name": "Buyer",
            "email1": "nancy@fabrikam.test",
            "account_id": account_id,
        },
        headers=admin,
    )
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]
    me = client.get(f"{API}/users/me", headers=admin).json()
    email = client.post(
        f"{API}/emails",
        json={
            "subject": "Your quote",
            "description": "<p>Hello Nancy</p>",
            "direction": "outgoing",
            "regarding_type": "account",
            "regarding_id": account_id,
            "parties": [
                {"participation": "from", "party_type": "user", "party_id": me["id"]},
                {"participation": "to", "party_type": "contact", "party_id": contact_id},
                {"participation": "cc", "address": "someone@elsewhere.test"},
            ],
        },
        headers=admin,
    )
    assert email.status_code == 201, email.text
    created = email.json()
    assert created["status"] == "draft"
    assert [(p["participation"], p["display_name"]) for p in created["parties"]] == [
        ("from", "Administrator"),
        ("to", "Nancy Buyer"),
        ("cc", ""),
    ]
    email_id = created["id"]

    timeline = client.get(f"{API}/contacts/{contact_id}/timeline", headers=admin).json()
    assert [item["id"] for item in timeline["items"]] == [email_id]
    timeline = client.get(f"{API}/accounts/{account_id}/timeline", headers=admin).json()
    assert [item["id"] for item in timeline["items"]] == [email_id]

    _make_user(client, admin, "outsider")
    outsider = login(client, "outsider", "outsider-password")
    for path in (
        f"/emails/{email_id}",
        f"/accounts/{account_id}",
        f"/contacts/{contact_id}",
        f"/accounts/{account_id}/timeline",
    ):
        response = client.get(f"{API}{path}", headers=outsider)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "NOT_FOUND"
    assert client.get(f"{API}/emails", headers=outsider).json()["items"] == []
    assert client.get(f"{API}/accounts", headers=outsider).json()["items"] == []
    forbidden = client.post(f"{API}/accounts", json={"name": "Mine"}, headers=outsider)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "FORBIDDEN"


def test_salesperson_in_another_business_unit_gets_404_for_the_email(
    client: TestClient, admin: dict[str, str]
) -> None:
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    north = client.post(f"{API}/business-units", json={"name": "North"}, headers=admin).json()
    south = client.post(f"{API}/business-units", json={"name": "South"}, headers=admin).json()
    _make_user(client, admin, "ann", business_unit_id=north["id"], role_ids=[roles["Salesperson"]])
    _make_user(client, admin, "cid", business_unit_id=south["id"], role_ids=[roles["Salesperson"]])
    ann = login(client, "ann", "ann-password")
    cid = login(client, "cid", "cid-password")
    email = client.post(f"{API}/emails", json={"subject": "north only"}, headers=ann)
    assert email.status_code == 201, email.text
    email_id = email.json()["id"]
    assert client.get(f"{API}/emails/{email_id}", headers=ann).status_code == 200
    assert client.get(f"{API}/emails/{email_id}", headers=cid).status_code == 404
    assert client.get(f"{API}/emails/{email_id}", headers=admin).status_code == 200
    patch = client.patch(f"{API}/emails/{email_id}", json={"subject": "x"}, headers=cid)
    assert patch.status_code == 404


def test_invalid_input_is_a_422_naming_the_field(client: TestClient, admin: dict[str, str]) -> None:
    cases = [
        ("/contacts", {"first_name": "No last name"}, "last_name"),
        ("/contacts", {"last_name": "X", "email1": "not an address"}, "email1"),
        ("/accounts", {"name": "X", "colour": "red"}, "colour"),
        ("/emails", {"parties": [{"participation": "to"}]}, "parties.0"),
        ("/emails", {"scheduled_start": "2026-01-01T10:00:00"}, "scheduled_start"),
        ("/emails", {"status": "sent"}, "status"),
        ("/tasks", {"percent_complete": 101}, "percent_complete"),
    ]
    for path, body, field in cases:
        response = client.post(f"{API}{path}", json=body, headers=admin)
        assert response.status_code == 422, (path, body, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "VALIDATION_FAILED"
        assert any(e["field"].startswith(field) for e in problem["errors"]), problem


def test_bad_references_and_ids_are_4xx_not_500(client: TestClient, admin: dict[str, str]) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    response = client.post(
        f"{API}/contacts", json={"last_name": "X", "account_id": missing}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["field"] == "account_id"
    # An id that is no UUID names no record (and leaves /emails/track to its own route).
    not_an_id = client.get(f"{API}/accounts/not-a-uuid", headers=admin)
    assert not_an_id.status_code == 404
    assert not_an_id.json()["code"] == "NOT_FOUND"
    assert client.get(f"{API}/accounts/{missing}", headers=admin).status_code == 404
    bad_party = client.post(
        f"{API}/emails",
        json={"parties": [{"participation": "to", "party_type": "contact", "party_id": missing}]},
        headers=admin,
    )
    assert bad_party.status_code == 422
    assert client.get(f"{API}/accounts?cursor=garbage", headers=admin).status_code == 422
    account = client.post(f"{API}/accounts", json={"name": "A"}, headers=admin).json()
    nulled = client.patch(f"{API}/accounts/{account['id']}", json={"name": None}, headers=admin)
    assert nulled.status_code == 422
    duplicate = client.post(f"{API}/users", json={"username": "admin-acme"}, headers=admin)
    assert duplicate.status_code == 409


def test_authentication_is_required_and_tokens_work(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = client.get(f"{API}/accounts")
    assert response.status_code == 401
    assert response.json()["code"] == "AUTHENTICATION_FAILED"
    assert (
        client.get(f"{API}/accounts", headers={"Authorization": "Bearer crms_nope"}).status_code
        == 401
    )
    wrong = client.post(f"{API}/auth/login", json={"username": "admin-acme", "password": "wrong"})
    assert wrong.status_code == 401

    issued = client.post(f"{API}/tokens", json={"name": "script"}, headers=admin)
    assert issued.status_code == 201
    token = issued.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get(f"{API}/users/me", headers=bearer).status_code == 200
    listed = client.get(f"{API}/tokens", headers=bearer).json()
    assert [t["name"] for t in listed] == ["script"]
    assert all("token" not in t for t in listed)
    client.delete(f"{API}/tokens/{issued.json()['id']}", headers=admin)
    assert client.get(f"{API}/users/me", headers=bearer).status_code == 401


def test_login_cookie_authenticates_the_web_ui(client: TestClient) -> None:
    response = client.post(
        f"{API}/auth/login", json={"username": "admin-acme", "password": "admin-password"}
    )
    assert "httponly" in response.headers["set-cookie"].lower()
    assert client.get(f"{API}/users/me").json()["username"] == "admin-acme"
    # As the web UI's own page does: same origin, with the session's CSRF token.
    own_page = {"Origin": "http://testserver", "X-CSRF-Token": response.json()["csrf_token"]}
    assert client.post(f"{API}/auth/logout", headers=own_page).status_code == 204
    client.cookies.clear()
    assert client.get(f"{API}/users/me").status_code == 401


def test_pages_walk_every_record_once(client: TestClient, admin: dict[str, str]) -> None:
    created = {
        client.post(f"{API}/leads", json={"subject": f"lead {i}"}, headers=admin).json()["id"]
        for i in range(7)
    }
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"{API}/leads", params=params, headers=admin).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == created


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get(f"{API}/openapi.json").json()
    assert "/api/v1/emails" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_passwords_never_come_back(client: TestClient, admin: dict[str, str]) -> None:
    _make_user(client, admin, "secretive")
    everything = client.get(f"{API}/users", headers=admin).text
    assert "secretive-password" not in everything
    assert "argon2" not in everything


def test_an_email_on_its_way_out_cannot_be_edited(
    client: TestClient, admin: dict[str, str], store: Store
) -> None:
    from crmsync.core.types import EmailStatus
    from crmsync.crm.models import Email

    created = client.post(f"{API}/emails", json={"subject": "going out"}, headers=admin).json()
    with store.transaction() as session:
        email = session.get(Email, uuid.UUID(created["id"]))
        assert email is not None
        email.status = EmailStatus.PENDING_SEND
    refused = client.patch(f"{API}/emails/{created['id']}", json={"subject": "x"}, headers=admin)
    assert refused.status_code == 409
    assert refused.json()["code"] == "CONFLICT"

"""Input any user can send that once gave a 500: every one is a 422 naming what is wrong."""

from __future__ import annotations

import base64
import json

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Org
from tests.unit.api.conftest import login

API = "/api/v1"


@pytest.fixture
def salesperson(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    body = {"username": "sam", "password": "sam-password", "role_ids": [roles["Salesperson"]]}
    assert client.post(f"{API}/users", json=body, headers=admin).status_code == 201
    return login(client, "sam", "sam-password")


def _problem(response: object, field: str) -> None:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in response.json()["detail"]


def test_null_for_fields_that_cannot_be_null(
    client: TestClient, admin: dict[str, str], salesperson: dict[str, str], org: Org
) -> None:
    (own,) = client.get(f"{API}/mailboxes", headers=salesperson).json()["items"]
    for name in ("delete_after_processing", "incoming_method", "act_method"):
        patched = client.patch(
            f"{API}/mailboxes/{own['id']}", json={name: None}, headers=salesperson
        )
        _problem(patched, name)
    profile = client.post(
        f"{API}/email-server-profiles",
        json={"name": "p", "server_type": "imap_smtp", "incoming_host": "h", "outgoing_host": "h"},
        headers=admin,
    ).json()
    for name in ("allow_plaintext", "is_default", "min_polling_seconds", "name"):
        patched = client.patch(
            f"{API}/email-server-profiles/{profile['id']}", json={name: None}, headers=admin
        )
        _problem(patched, name)
    me = client.get(f"{API}/users/me", headers=salesperson).json()
    _problem(
        client.patch(f"{API}/users/{me['id']}", json={"full_name": None}, headers=salesperson),
        "full_name",
    )


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "value",
    [
        ["2024-01-01T00:00:00+00:00", 5],
        ["0001-01-01T00:00:00+23:59", "00000000-0000-0000-0000-000000000000"],
        ["9999-12-31T23:59:59-23:59", "00000000-0000-0000-0000-000000000000"],
        {"at": "2024-01-01T00:00:00+00:00"},
        None,
    ],
)
def test_forged_cursors(client: TestClient, salesperson: dict[str, str], value: object) -> None:
    listed = client.get(f"{API}/accounts", params={"cursor": _cursor(value)}, headers=salesperson)
    _problem(listed, "cursor")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"])
def test_times_at_the_edges_of_the_calendar(
    client: TestClient, salesperson: dict[str, str], moment: str
) -> None:
    created = client.post(
        f"{API}/appointments",
        json={"subject": "x", "scheduled_start": moment},
        headers=salesperson,
    )
    _problem(created, "scheduled_start")
    account = client.post(
        f"{API}/opportunities", json={"name": "x", "estimated_close": moment}, headers=salesperson
    )
    _problem(account, "estimated_close")


@pytest.mark.parametrize("days", [True, "5", 5.5])
def test_whole_numbers_are_numbers(
    client: TestClient, salesperson: dict[str, str], days: object
) -> None:
    """Pydantic's lax mode read true as 1 day; the document promises an integer."""
    created = client.post(
        f"{API}/tokens", json={"name": "t", "expires_in_days": days}, headers=salesperson
    )
    _problem(created, "expires_in_days")
    assert client.post(
        f"{API}/tokens", json={"name": "t", "expires_in_days": 5.0}, headers=salesperson
    ).is_success


def test_me_is_not_a_user_id(client: TestClient, salesperson: dict[str, str]) -> None:
    patched = client.patch(f"{API}/users/me", json={"full_name": "x"}, headers=salesperson)
    assert patched.status_code == 405
    assert patched.headers["allow"] == "GET"


def test_unknown_members_and_owners_are_invalid_references(
    client: TestClient, admin: dict[str, str]
) -> None:
    nobody = "e3e70682-c209-4cac-a29f-6fbed82c07cd"
    team = client.post(f"{API}/teams", json={"name": "t", "member_ids": [nobody]}, headers=admin)
    assert team.status_code == 422
    assert team.json()["field"] == "member_ids"
    queue = client.post(f"{API}/queues", json={"name": "q", "owner_id": nobody}, headers=admin)
    assert queue.status_code == 422
    assert queue.json()["field"] == "owner_id"

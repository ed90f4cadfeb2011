"""The organisation's settings through the API: administrators read and change them, in
the form the sync engines read; nobody else sees them."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from crmsync.crm.models.org import Organisation
from tests.conftest import Org
from tests.unit.api.conftest import login

API = "/api/v1/organisation/settings"


@pytest.fixture
def salesperson(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    roles = {r["name"]: r["id"] for r in client.get("/api/v1/roles", headers=admin).json()}
    body = {"username": "sam", "password": "sam-password", "role_ids": [roles["Salesperson"]]}
    assert client.post("/api/v1/users", json=body, headers=admin).status_code == 201
    return login(client, "sam", "sam-password")


def stored(org: Org) -> dict[str, object]:
    with org.store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        return dict(organisation.settings)


def test_an_administrator_reads_the_defaults_with_an_example_token(
    client: TestClient, admin: dict[str, str]
) -> None:
    response = client.get(API, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["email_domain"] == "crmsync.invalid"
    assert body["tracking_token_example"] == "CRM:0001234"
    assert "exe" in body["blocked_attachment_extensions"]
    assert body["blocked_senders"] == []


def test_the_message_id_domain_is_stored_in_its_idna_form(
    client: TestClient, admin: dict[str, str], org: Org
) -> None:
    response = client.patch(API, json={"email_domain": " Bücher.Example. "}, headers=admin)
    # The pattern refuses the spaces: a client that follows the document sends none.
    assert response.status_code == 422
    response = client.patch(API, json={"email_domain": "Bücher.Example."}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["email_domain"] == "xn--bcher-kva.example"
    assert stored(org)["email_domain"] == "xn--bcher-kva.example"
    # What was not sent kept its value.
    assert stored(org)["tracking_token_prefix"] == "CRM:"


@pytest.mark.parametrize("domain", ["-bad.example", "xn--zz.example", "a..b", "exa_mple.com"])
def test_a_domain_idna_refuses_is_refused_naming_the_field(
    client: TestClient, admin: dict[str, str], org: Org, domain: str
) -> None:
    response = client.patch(API, json={"email_domain": domain}, headers=admin)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "INVALID_SETTING"
    assert problem["field"] == "email_domain"
    assert stored(org).get("email_domain") in (None, "crmsync.invalid")


def test_the_token_format_changes_the_example(client: TestClient, admin: dict[str, str]) -> None:
    body = {"tracking_token_prefix": "ACME-", "tracking_token_digits": 5}
    response = client.patch(API, json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["tracking_token_example"] == "ACME-01234"
    assert client.get(API, headers=admin).json()["tracking_token_example"] == "ACME-01234"


@pytest.mark.parametrize("prefix", ["CRM 1:", "CRM1", "", "X" * 21])
def test_a_prefix_with_spaces_or_ending_in_a_digit_is_refused(
    client: TestClient, admin: dict[str, str], prefix: str
) -> None:
    response = client.patch(API, json={"tracking_token_prefix": prefix}, headers=admin)
    assert response.status_code == 422, response.text
    assert client.get(API, headers=admin).json()["tracking_token_prefix"] == "CRM:"


def test_the_block_list_is_normalised_and_deduplicated(
    client: TestClient, admin: dict[str, str], org: Org
) -> None:
    entries = [
        "Spam@Example.COM",
        "spam@example.com",
        "*.Newsletter.Example",
        "@newsletter.example",
        "bücher.example",
    ]
    response = client.patch(API, json={"blocked_senders": entries}, headers=admin)
    assert response.status_code == 200, response.text
    expected = ["spam@example.com", "newsletter.example", "xn--bcher-kva.example"]
    assert response.json()["blocked_senders"] == expected
    assert stored(org)["blocked_senders"] == expected


def test_a_bad_block_list_entry_is_named_and_nothing_changes(
    client: TestClient, admin: dict[str, str], org: Org
) -> None:
    response = client.patch(
        API, json={"blocked_senders": ["ok.example", "-nope.example"]}, headers=admin
    )
    assert response.status_code == 422
    assert response.json()["field"] == "blocked_senders[1]"
    assert "blocked_senders" not in stored(org)


def test_the_block_list_is_bounded(client: TestClient, admin: dict[str, str]) -> None:
    entries = [f"user{i}@example.com" for i in range(1001)]
    response = client.patch(API, json={"blocked_senders": entries}, headers=admin)
    assert response.status_code == 422


def test_extensions_lose_their_dot_and_case(client: TestClient, admin: dict[str, str]) -> None:
    body = {"blocked_attachment_extensions": [".EXE", "exe", "Js"]}
    response = client.patch(API, json=body, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["blocked_attachment_extensions"] == ["exe", "js"]


def test_settings_a_newer_version_wrote_are_kept(
    client: TestClient, admin: dict[str, str], org: Org
) -> None:
    with org.store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        organisation.settings = {"from_the_future": 42}
    assert client.patch(API, json={"smart_matching": True}, headers=admin).status_code == 200
    assert stored(org)["from_the_future"] == 42
    assert stored(org)["smart_matching"] is True


@pytest.mark.parametrize(
    "body",
    [{"use_tracking_token": 0}, {"tracking_token_digits": "5"}, {"max_message_bytes": 10}],
)
def test_loose_or_out_of_range_values_are_refused(
    client: TestClient, admin: dict[str, str], body: dict[str, object]
) -> None:
    assert client.patch(API, json=body, headers=admin).status_code == 422


def test_a_salesperson_neither_reads_nor_changes_them(
    client: TestClient, salesperson: dict[str, str], org: Org
) -> None:
    assert client.get(API, headers=salesperson).status_code == 403
    response = client.patch(API, json={"email_domain": "evil.example"}, headers=salesperson)
    assert response.status_code == 403
    assert "email_domain" not in stored(org)


def test_the_example_fits_the_shortest_token(client: TestClient, admin: dict[str, str]) -> None:
    response = client.patch(API, json={"tracking_token_digits": 3}, headers=admin)
    assert response.status_code == 200, response.text
    assert response.json()["tracking_token_example"] == "CRM:234"

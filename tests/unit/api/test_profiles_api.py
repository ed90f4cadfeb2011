"""Email server profiles through the API: presets, and whether sent email is copied."""

from __future__ import annotations

from fastapi.testclient import TestClient

API = "/api/v1/email-server-profiles"
OAUTH = {"oauth_client_id": "crm-app", "oauth_client_secret": "app-secret"}


def test_gmail_and_outlook_presets_leave_sent_copies_to_the_server(
    client: TestClient, admin: dict[str, str]
) -> None:
    for server_type in ("gmail", "outlook_com"):
        made = client.post(
            API, json={"name": server_type, "server_type": server_type, **OAUTH}, headers=admin
        )
        assert made.status_code == 201, made.text
        assert made.json()["save_sent_copy"] is False  # they file sent mail themselves

    own = client.post(
        API,
        json={
            "name": "Own server",
            "server_type": "imap_smtp",
            "incoming_host": "mail.test",
            "outgoing_host": "mail.test",
        },
        headers=admin,
    )
    assert own.status_code == 201, own.text
    assert own.json()["save_sent_copy"] is True


def test_sent_copies_can_be_switched_per_profile(client: TestClient, admin: dict[str, str]) -> None:
    made = client.post(
        API,
        json={"name": "Gmail, copied", "server_type": "gmail", "save_sent_copy": True, **OAUTH},
        headers=admin,
    )
    assert made.json()["save_sent_copy"] is True  # an explicit choice beats the preset
    changed = client.patch(
        f"{API}/{made.json()['id']}", json={"save_sent_copy": False}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert client.get(f"{API}/{made.json()['id']}", headers=admin).json()["save_sent_copy"] is False

"""A salesperson tries to make crmsync open someone else's mailbox with a profile's master
credentials (impersonation), as an attacker with an ordinary account would.

The victim is a real Dovecot user; Dovecot logs every login (``Login: user=<…>``), so the
test reads on the server itself whether crmsync ever opened the victim's mailbox.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.servers import DovecotServer, MailUser
from tests.unit.api.conftest import login

pytestmark = pytest.mark.integration
API = "/api/v1"


def _logins_of(dovecot: DovecotServer, user: MailUser) -> int:
    text = dovecot.log_path.read_text(errors="replace")
    return len(re.findall(rf"Login: user=<{re.escape(user.login)}>", text))


def _master_profile(client: TestClient, admin: dict[str, str], dovecot: DovecotServer) -> str:
    assert dovecot.ca_cert is not None
    body = {
        "name": f"Master {secrets.token_hex(3)}",
        "server_type": "imap_smtp",
        "incoming_host": "127.0.0.1",
        "incoming_port": dovecot.imap_port,
        "incoming_security": "starttls",
        "outgoing_host": "127.0.0.1",
        "outgoing_port": 1,
        "outgoing_security": "starttls",
        "ca_pem": dovecot.ca_cert.read_text(),
        "credential_scope": "profile",
        "username": dovecot.master_login,
        "password": dovecot.master_password,
    }
    response = client.post(f"{API}/email-server-profiles", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _test_enable(client: TestClient, headers: dict[str, str], mailbox_id: str) -> dict[str, Any]:
    response = client.post(f"{API}/mailboxes/{mailbox_id}/test-enable", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_salesperson_cannot_open_another_mailbox_with_the_master_credentials(
    client: TestClient, dovecot: DovecotServer
) -> None:
    victim = dovecot.add_user(f"victim-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    attacker = dovecot.add_user(f"mallory-{secrets.token_hex(3)}", secrets.token_urlsafe(12))
    admin = login(client, "admin-acme", "admin-password")
    profile_id = _master_profile(client, admin, dovecot)
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    user = {
        "username": "mallory",
        "password": "mallory-password",
        "email_addresses": [attacker.address],
        "role_ids": [roles["Salesperson"]],
    }
    assert client.post(f"{API}/users", json=user, headers=admin).status_code == 201
    mallory = login(client, "mallory", "mallory-password")
    (own,) = client.get(f"{API}/mailboxes", headers=mallory).json()["items"]
    mailbox = f"{API}/mailboxes/{own['id']}"
    before = _logins_of(dovecot, victim)

    # A profile the salesperson cannot read is no profile to them.
    chosen = client.patch(mailbox, json={"profile_id": profile_id}, headers=mallory)
    assert chosen.status_code == 422
    assert chosen.json()["code"] == "INVALID_REFERENCE"
    # Nor can they point their mailbox at someone else's address.
    claimed = client.patch(mailbox, json={"email_address": victim.address}, headers=mallory)
    assert claimed.status_code == 403
    assert client.get(mailbox, headers=mallory).json()["email_address"] == attacker.address

    # Allowed to use the profile, the mailbox they point at it waits for approval, and the
    # master credentials are not used until then.
    reader = {
        "name": "Profile users",
        "privileges": [
            {"record_type": "email_server_profile", "privilege": p, "depth": "organisation"}
            for p in ("read", "append_to")
        ],
    }
    reader_id = client.post(f"{API}/roles", json=reader, headers=admin).json()["id"]
    me = client.get(f"{API}/users/me", headers=mallory).json()
    granted = client.patch(
        f"{API}/users/{me['id']}",
        json={"role_ids": [roles["Salesperson"], reader_id]},
        headers=admin,
    )
    assert granted.status_code == 200, granted.text
    chosen = client.patch(
        mailbox,
        json={"profile_id": profile_id, "username": victim.login, "outgoing_method": "none"},
        headers=mallory,
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["approval"] == "pending"
    run = _test_enable(client, mallory, own["id"])
    assert run["ok"] is False
    assert [step["code"] for step in run["steps"]] == ["APPROVAL_REQUIRED"]
    assert _logins_of(dovecot, victim) == before

    # Approved, the master credentials act for the mailbox's own address — never for the
    # user name its owner typed.
    assert client.post(f"{mailbox}/approve", headers=admin).status_code == 200
    run = _test_enable(client, mallory, own["id"])
    assert run["ok"] is True, run["steps"]
    assert _logins_of(dovecot, attacker) >= 1
    assert _logins_of(dovecot, victim) == before

"""Connecting mailboxes, as an administrator does it through the API, against real servers.

Dovecot (IMAP/POP3, STARTTLS and implicit TLS with a generated CA) and the SMTP relay are
started by tests/servers; the record store runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.servers import DovecotServer, MailUser, SmtpServer
from tests.unit.api.conftest import login

pytestmark = pytest.mark.integration
API = "/api/v1"


def _ca(dovecot: DovecotServer) -> str:
    assert dovecot.ca_cert is not None
    return dovecot.ca_cert.read_text()


def _profile(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp: SmtpServer,
    **overrides: Any,
) -> dict[str, Any]:
    body = {
        "name": f"Dovecot {len(overrides)}-{sorted(overrides)}",
        "server_type": "imap_smtp",
        "incoming_host": "127.0.0.1",
        "incoming_port": dovecot.imap_port,
        "incoming_security": "starttls",
        "outgoing_host": "127.0.0.1",
        "outgoing_port": smtp.port,
        "outgoing_security": "starttls",
        "ca_pem": _ca(dovecot),
        "is_default": True,
        **overrides,
    }
    response = client.post(f"{API}/email-server-profiles", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _user_mailbox(
    client: TestClient, admin: dict[str, str], user: MailUser, password: str | None = None
) -> dict[str, Any]:
    created = client.post(
        f"{API}/users",
        json={"username": user.name, "email_addresses": [user.address]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    page = client.get(f"{API}/mailboxes", headers=admin).json()
    (mailbox,) = [m for m in page["items"] if m["user_id"] == created.json()["id"]]
    patched = client.patch(
        f"{API}/mailboxes/{mailbox['id']}",
        json={"password": password or user.password},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    return dict(patched.json())


def _test_enable(client: TestClient, admin: dict[str, str], mailbox_id: str) -> dict[str, Any]:
    response = client.post(f"{API}/mailboxes/{mailbox_id}/test-enable", headers=admin)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _channels(client: TestClient, admin: dict[str, str], mailbox_id: str) -> dict[str, Any]:
    mailbox = client.get(f"{API}/mailboxes/{mailbox_id}", headers=admin).json()
    return {c["channel"]: c for c in mailbox["channels"]}


def test_a_correct_mailbox_passes_and_is_enabled_once_approved(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    _profile(client, admin, dovecot, smtp_server)
    mailbox = _user_mailbox(client, admin, mail_user)
    assert mailbox["approval"] == "pending"

    run = _test_enable(client, admin, mailbox["id"])
    assert run["ok"] is True
    steps = [(s["channel"], s["name"], s["ok"]) for s in run["steps"]]
    assert steps == [
        ("incoming", "dns", True),
        ("incoming", "tcp", True),
        ("incoming", "tls", True),
        ("incoming", "auth", True),
        ("incoming", "inbox", True),
        ("outgoing", "dns", True),
        ("outgoing", "tcp", True),
        ("outgoing", "tls", True),
        ("outgoing", "ehlo", True),
        ("outgoing", "auth", True),
    ]
    inbox = next(s for s in run["steps"] if s["name"] == "inbox")
    for capability in ("IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS"):
        assert capability in inbox["detail"]
    # Passed, but not approved: nothing is enabled yet, and the owner is told why.
    channels = _channels(client, admin, mailbox["id"])
    assert channels["incoming"]["status"] == "success"
    assert channels["incoming"]["enabled"] is False
    alerts = client.get(f"{API}/alerts", params={"mailbox_id": mailbox["id"]}, headers=admin)
    assert [a["code"] for a in alerts.json()["items"]] == ["APPROVAL_PENDING"]

    assert client.post(f"{API}/mailboxes/{mailbox['id']}/approve", headers=admin).status_code == 200
    _test_enable(client, admin, mailbox["id"])
    channels = _channels(client, admin, mailbox["id"])
    assert channels["incoming"]["enabled"]
    assert channels["outgoing"]["enabled"]
    assert channels["act"]["enabled"] is False  # act_method is none by default
    history = client.get(f"{API}/mailboxes/{mailbox['id']}/tests", headers=admin).json()
    assert len(history) == 2


def test_a_wrong_password_fails_at_authentication_and_raises_an_alert(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _profile(client, admin, dovecot, smtp_server)
    wrong = "Wrong-Password-4711"
    mailbox = _user_mailbox(client, admin, mail_user, password=wrong)
    client.post(f"{API}/mailboxes/{mailbox['id']}/approve", headers=admin)
    run = _test_enable(client, admin, mailbox["id"])
    assert run["ok"] is False
    incoming = [s for s in run["steps"] if s["channel"] == "incoming"]
    assert [(s["name"], s["ok"]) for s in incoming] == [
        ("dns", True),
        ("tcp", True),
        ("tls", True),
        ("auth", False),
    ]
    assert incoming[-1]["code"] == "AUTH_FAILED"
    channels = _channels(client, admin, mailbox["id"])
    assert channels["incoming"]["enabled"] is False
    assert channels["incoming"]["last_error_code"] == "AUTH_FAILED"
    alerts = client.get(f"{API}/alerts", params={"mailbox_id": mailbox["id"]}, headers=admin)
    codes = {(a["code"], a["severity"], a["channel"]) for a in alerts.json()["items"]}
    assert ("AUTH_FAILED", "error", "incoming") in codes
    remediation = next(a for a in alerts.json()["items"] if a["code"] == "AUTH_FAILED")
    assert "password" in remediation["remediation"]

    # The password is in no response and no log line.
    everything = "".join(
        client.get(f"{API}{path}", headers=admin).text
        for path in (
            f"/mailboxes/{mailbox['id']}",
            f"/mailboxes/{mailbox['id']}/tests",
            "/alerts",
            "/email-server-profiles",
        )
    )
    assert wrong not in everything
    assert wrong not in caplog.text
    assert mail_user.password not in caplog.text


def test_a_closed_port_is_host_unreachable_and_transient(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    _profile(client, admin, dovecot, smtp_server, incoming_port=closed_port)
    mailbox = _user_mailbox(client, admin, mail_user)
    run = _test_enable(client, admin, mailbox["id"])
    incoming = [s for s in run["steps"] if s["channel"] == "incoming"]
    assert [(s["name"], s["ok"], s["code"]) for s in incoming] == [
        ("dns", True, None),
        ("tcp", False, "HOST_UNREACHABLE"),
    ]
    alerts = client.get(f"{API}/alerts", params={"mailbox_id": mailbox["id"]}, headers=admin)
    unreachable = [a for a in alerts.json()["items"] if a["code"] == "HOST_UNREACHABLE"]
    assert unreachable
    assert unreachable[0]["severity"] == "error"
    # The outgoing channel is checked on its own and still passes.
    outgoing = [s for s in run["steps"] if s["channel"] == "outgoing"]
    assert all(s["ok"] for s in outgoing)


def test_a_self_signed_server_fails_verification_unless_its_ca_is_configured(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    assert dovecot.imaps_port is not None
    profile = _profile(
        client,
        admin,
        dovecot,
        smtp_server,
        incoming_port=dovecot.imaps_port,
        incoming_security="implicit_tls",
        ca_pem=None,
    )
    mailbox = _user_mailbox(client, admin, mail_user)
    run = _test_enable(client, admin, mailbox["id"])
    failing = next(s for s in run["steps"] if not s["ok"])
    assert (failing["channel"], failing["name"], failing["code"]) == (
        "incoming",
        "tls",
        "TLS_FAILED",
    )
    assert "certificate" in failing["detail"]

    patched = client.patch(
        f"{API}/email-server-profiles/{profile['id']}", json={"ca_pem": _ca(dovecot)}, headers=admin
    )
    assert patched.status_code == 200
    assert patched.json()["has_ca_pem"] is True
    assert _test_enable(client, admin, mailbox["id"])["ok"] is True


def test_pop3_profiles_check_pop3_and_refuse_appointments(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    _profile(
        client,
        admin,
        dovecot,
        smtp_server,
        server_type="pop3_smtp",
        incoming_port=dovecot.pop3_port,
    )
    mailbox = _user_mailbox(client, admin, mail_user)
    refused = client.patch(
        f"{API}/mailboxes/{mailbox['id']}", json={"act_method": "server_side_sync"}, headers=admin
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "METHOD_NOT_SUPPORTED"
    assert refused.json()["field"] == "act_method"
    run = _test_enable(client, admin, mailbox["id"])
    assert run["ok"] is True, run
    assert ("incoming", "inbox") in {(s["channel"], s["name"]) for s in run["steps"]}


def test_profile_wide_credentials_log_in_as_each_mailbox(
    client: TestClient,
    admin: dict[str, str],
    dovecot: DovecotServer,
    smtp_server: SmtpServer,
    mail_user: MailUser,
) -> None:
    assert dovecot.master_login
    assert dovecot.master_password
    _profile(
        client,
        admin,
        dovecot,
        smtp_server,
        credential_scope="profile",
        username=dovecot.master_login,
        password=dovecot.master_password,
    )
    created = client.post(
        f"{API}/users",
        json={"username": mail_user.name, "email_addresses": [mail_user.address]},
        headers=admin,
    ).json()
    page = client.get(f"{API}/mailboxes", headers=admin).json()
    (mailbox,) = [m for m in page["items"] if m["user_id"] == created["id"]]
    client.patch(
        f"{API}/mailboxes/{mailbox['id']}", json={"outgoing_method": "none"}, headers=admin
    )
    # The master login opens any mailbox: it acts only for one an administrator approved.
    refused = _test_enable(client, admin, mailbox["id"])
    assert refused["ok"] is False
    assert {step["code"] for step in refused["steps"]} == {"APPROVAL_REQUIRED"}
    client.post(f"{API}/mailboxes/{mailbox['id']}/approve", headers=admin)
    run = _test_enable(client, admin, mailbox["id"])
    assert run["ok"] is True, run["steps"]
    profiles = client.get(f"{API}/email-server-profiles", headers=admin).text
    assert dovecot.master_password not in profiles


def test_mailbox_rules_and_rights(
    client: TestClient, admin: dict[str, str], dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    _profile(client, admin, dovecot, smtp_server)
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    for name in ("ann", "bob"):
        body = {
            "username": name,
            "password": f"{name}-password",
            "email_addresses": [f"{name}@example.test"],
            "role_ids": [roles["Salesperson"]],
        }
        assert client.post(f"{API}/users", json=body, headers=admin).status_code == 201
    ann = login(client, "ann", "ann-password")
    bob = login(client, "bob", "bob-password")
    (own,) = client.get(f"{API}/mailboxes", headers=ann).json()["items"]
    assert own["email_address"] == "ann@example.test"
    assert client.get(f"{API}/mailboxes/{own['id']}", headers=bob).status_code == 404
    # Owners set their own credentials; only administrators approve.
    assert (
        client.patch(
            f"{API}/mailboxes/{own['id']}", json={"password": "secret-1"}, headers=ann
        ).status_code
        == 200
    )
    refused = client.post(f"{API}/mailboxes/{own['id']}/approve", headers=ann)
    assert refused.status_code == 403
    approved = client.post(f"{API}/mailboxes/{own['id']}/approve", headers=admin)
    assert approved.json()["approval"] == "approved"
    # Only an administrator changes the address, and a new address needs approving again.
    claimed = client.patch(
        f"{API}/mailboxes/{own['id']}", json={"email_address": "ann.new@example.test"}, headers=ann
    )
    assert claimed.status_code == 403
    moved = client.patch(
        f"{API}/mailboxes/{own['id']}",
        json={"email_address": "ann.new@example.test"},
        headers=admin,
    )
    assert moved.json()["approval"] == "pending"
    deleting = client.patch(
        f"{API}/mailboxes/{own['id']}", json={"delete_after_processing": True}, headers=ann
    )
    assert deleting.status_code == 422
    assert deleting.json()["code"] == "DELETE_NOT_ALLOWED"
    queue = client.post(
        f"{API}/queues", json={"name": "Support", "email": "support@example.test"}, headers=admin
    )
    assert queue.status_code == 201
    pending = client.get(f"{API}/mailboxes", params={"approval": "pending"}, headers=admin).json()
    (queue_box,) = [m for m in pending["items"] if m["queue_id"] == queue.json()["id"]]
    allowed = client.patch(
        f"{API}/mailboxes/{queue_box['id']}", json={"delete_after_processing": True}, headers=admin
    )
    assert allowed.status_code == 200
    plain = client.post(
        f"{API}/email-server-profiles",
        json={
            "name": "plain",
            "server_type": "imap_smtp",
            "incoming_host": "127.0.0.1",
            "incoming_security": "plain",
            "outgoing_host": "127.0.0.1",
        },
        headers=admin,
    )
    assert plain.status_code == 422
    assert plain.json()["field"] == "incoming_security"
    gmail = client.post(
        f"{API}/email-server-profiles",
        json={"name": "Gmail", "server_type": "gmail", "oauth_client_id": "client-1"},
        headers=admin,
    )
    assert gmail.status_code == 201, gmail.text
    assert gmail.json()["incoming_host"] == "imap.gmail.com"
    assert gmail.json()["auth_method"] == "oauth2"
    assert (
        client.post(
            f"{API}/email-server-profiles",
            json={"name": "x", "server_type": "imap_smtp"},
            headers=ann,
        ).status_code
        == 403
    )

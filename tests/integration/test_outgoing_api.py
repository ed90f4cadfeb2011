"""Sending as a client and an operator do it: the API routes and ``crmsync send``.

Queue, cancel, see the delivery; what is refused and why; a mailbox that cannot send
keeps its email pending with an alert; the command line sends with a progress bar.
Runs on SQLite and PostgreSQL against the real relay and Dovecot.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from crmsync.app import create_app
from crmsync.cli import app as cli
from crmsync.config import Settings
from crmsync.core.types import EmailStatus
from crmsync.crm import directory, records
from crmsync.crm.models import Alert, Contact, EmailServerProfile, Mailbox
from crmsync.runtime.embedded import EmbeddedRuntime
from crmsync.sync.outgoing import OutgoingOptions, sync_outgoing
from tests.integration.conftest import Connected
from tests.integration.test_outgoing import Outbox, make_outbox
from tests.unit.api.conftest import login

pytestmark = pytest.mark.integration
API = "/api/v1"


@pytest.fixture
def api(connected: Connected) -> Iterator[tuple[TestClient, dict[str, str], Outbox]]:
    outbox = make_outbox(connected)
    app = create_app(
        Settings(data_dir=connected.store.blobs.root.parent), connected.store, connected.box
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, login(client, "admin-acme", "admin-password"), outbox


def _draft(client: TestClient, headers: dict[str, str], owner: uuid.UUID, **body: Any) -> str:
    response = client.post(
        f"{API}/emails",
        params={"owner_id": str(owner)},
        json={"subject": "Your quote", "body_text": "Hello", **body},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _to(contact_id: uuid.UUID) -> list[dict[str, str]]:
    return [{"participation": "to", "party_type": "contact", "party_id": str(contact_id)}]


def test_queue_send_and_see_the_delivery(
    api: tuple[TestClient, dict[str, str], Outbox],
) -> None:
    client, admin, outbox = api
    email_id = _draft(client, admin, outbox.ann_id, parties=_to(outbox.bob_id))
    queued = client.post(f"{API}/emails/{email_id}/send", headers=admin)
    assert queued.status_code == 200, queued.text
    assert queued.json()["status"] == "pending_send"
    assert queued.json()["send_mailbox_id"] == str(outbox.mailbox_id)
    again = client.post(f"{API}/emails/{email_id}/send", headers=admin)
    assert (again.status_code, again.json()["code"]) == (409, "CONFLICT")

    assert outbox.send().sent == 1
    delivery = client.get(f"{API}/emails/{email_id}/delivery", headers=admin).json()
    assert delivery["status"] == "sent"
    assert delivery["delivery_attempts"] == 1
    assert delivery["sent_at"] is not None
    assert delivery["tracking_token"] == "CRM:0000001"
    assert delivery["subject"] == "Your quote CRM:0000001"
    email = client.get(f"{API}/emails/{email_id}", headers=admin).json()
    assert [p["participation"] for p in email["parties"]] == ["from", "to"]
    assert email["parties"][1]["address"] == outbox.bob.address
    too_late = client.post(f"{API}/emails/{email_id}/cancel", headers=admin)
    assert too_late.status_code == 409


def test_cancel_takes_a_queued_email_out(api: tuple[TestClient, dict[str, str], Outbox]) -> None:
    client, admin, outbox = api
    email_id = _draft(client, admin, outbox.ann_id, parties=_to(outbox.bob_id))
    client.post(f"{API}/emails/{email_id}/send", headers=admin)
    canceled = client.post(f"{API}/emails/{email_id}/cancel", headers=admin)
    assert canceled.status_code == 200, canceled.text
    assert (canceled.json()["status"], canceled.json()["state"]) == ("canceled", "canceled")
    assert outbox.send().sent == 0
    assert outbox.folder(outbox.bob) == []


def test_what_cannot_be_sent_is_refused_with_a_reason(
    api: tuple[TestClient, dict[str, str], Outbox],
) -> None:
    client, admin, outbox = api
    nobody = _draft(client, admin, outbox.ann_id)
    refused = client.post(f"{API}/emails/{nobody}/send", headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (422, "NO_RECIPIENTS")

    with outbox.store.transaction() as session:
        mute = records.create_record(session, outbox.connected.admin(), Contact, {"last_name": "X"})
    no_address = _draft(client, admin, outbox.ann_id, parties=_to(mute.id))
    refused = client.post(f"{API}/emails/{no_address}/send", headers=admin)
    assert (refused.status_code, refused.json()["code"]) == (422, "RECIPIENT_WITHOUT_ADDRESS")

    unknown_parent = client.post(
        f"{API}/emails/{no_address}/send",
        json={"reply_to_email_id": str(uuid.uuid4())},
        headers=admin,
    )
    assert unknown_parent.status_code == 422

    missing = client.post(f"{API}/emails/{uuid.uuid4()}/send", headers=admin)
    assert missing.status_code == 404

    # Someone who cannot see the email cannot send it: for them it does not exist.
    email_id = _draft(client, admin, outbox.ann_id, parties=_to(outbox.bob_id))
    created = client.post(
        f"{API}/users", json={"username": "sam", "password": "sam-password"}, headers=admin
    )
    assert created.status_code == 201, created.text
    sam = login(client, "sam", "sam-password")
    assert client.post(f"{API}/emails/{email_id}/send", headers=sam).status_code == 404
    assert client.post(f"{API}/emails/{email_id}/send").status_code == 401


def test_a_mailbox_that_cannot_send_keeps_its_email_waiting_with_an_alert(
    api: tuple[TestClient, dict[str, str], Outbox],
) -> None:
    client, admin, outbox = api
    with outbox.store.transaction() as session:
        dan = directory.create_user(
            session,
            outbox.connected.admin(),
            username=f"dan-{uuid.uuid4().hex[:6]}",
            full_name="Dan",
            business_unit_id=outbox.connected.org.root_unit_id,
            email_addresses=["dan@example.test"],
        )
        dan_id = dan.id
        mailbox_id = session.scalars(select(Mailbox.id).where(Mailbox.user_id == dan.id)).one()
    email_id = _draft(client, admin, dan_id, parties=_to(outbox.bob_id))
    queued = client.post(f"{API}/emails/{email_id}/send", headers=admin).json()
    assert queued["status"] == "pending_send"
    assert queued["send_error_code"] == "OUTGOING_WAITING"
    assert "not approved" in queued["send_error"]

    report = sync_outgoing(outbox.store, outbox.connected.box, mailbox_id, OutgoingOptions())
    assert (report.ran, report.held) == (False, 1)
    with outbox.store.transaction() as session:
        alert = session.scalars(select(Alert).where(Alert.code == "OUTGOING_WAITING")).one()
        assert alert.mailbox_id == mailbox_id
        assert alert.mailbox_owner_id == dan_id
        assert alert.occurrences == 2  # one alert, seen twice, not two alerts
    assert outbox.folder(outbox.bob) == []


def test_send_once_from_the_command_line(connected: Connected, tmp_path: Path) -> None:
    outbox = make_outbox(connected)
    for number in range(3):
        outbox.queue(outbox.email(f"Offer {number}"))
    env = {
        "CRMSYNC_DATABASE_URL": connected.store.database_url,
        "CRMSYNC_BLOB_DIR": str(connected.store.blobs.root),
        "CRMSYNC_SECRET_KEY": connected.secret_key,
        "CRMSYNC_DATA_DIR": str(tmp_path),
        "COLUMNS": "200",
    }
    runner = CliRunner()
    off = runner.invoke(cli, ["send", "sent-copies", "Dovecot", "off"], env=env)
    assert off.exit_code == 0, off.output
    with connected.store.transaction() as session:
        assert not session.scalars(select(EmailServerProfile.save_sent_copy)).one()
    sent = runner.invoke(cli, ["send", "once", "--mailbox", outbox.ann.address], env=env)
    assert sent.exit_code == 0, sent.output
    assert "ok" in sent.output
    assert len(outbox.folder(outbox.bob)) == 3
    assert outbox.folder(outbox.ann, "Sent") == []
    idle = runner.invoke(cli, ["send", "once"], env=env)
    assert idle.exit_code == 0, idle.output


def test_the_embedded_runtime_sends_what_is_queued(connected: Connected) -> None:
    outbox = make_outbox(connected)
    runtime = EmbeddedRuntime(connected.store, connected.box, tick=0.2, push=False)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(runtime.run(stop),))
    thread.start()
    try:
        email_id = outbox.email()
        outbox.queue(email_id)
        deadline = time.monotonic() + 30
        while outbox.get(email_id).status is not EmailStatus.SENT:
            assert time.monotonic() < deadline, outbox.get(email_id).send_error
            time.sleep(0.1)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(outbox.received(outbox.bob, outbox.get(email_id).message_id)) == 1

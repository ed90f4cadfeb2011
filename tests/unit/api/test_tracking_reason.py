"""``GET /emails/{id}/tracking`` says why an email was tracked as data: the rule, and what
it matched — each email or record only to whoever may read it. The reply here goes
through the incoming engine's own storing step (``store_batch``). Every test runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from crmsync.crm.models import Email, Mailbox
from crmsync.crm.store import Store
from crmsync.sync.context import mailbox_context
from crmsync.sync.incoming.ingest import store_batch
from crmsync.sync.incoming.parser_pool import Fetched, Ready, prepare_one
from crmsync.tracking.parse import ParseLimits
from tests.conftest import Org
from tests.unit.api.conftest import login
from tests.unit.api.crm_routes_support import crm_client

API = "/api/v1"
QUOTE_ID = "<quote-7@acme.test>"
REPLY = (
    b"From: Nancy Buyer <nancy@fabrikam.test>\r\nTo: admin@acme.test\r\n"
    b"Subject: Re: Your quote\r\nDate: Tue, 03 Mar 2026 10:15:00 +0000\r\n"
    b"Message-ID: <reply-7@fabrikam.test>\r\n"
    b"In-Reply-To: " + QUOTE_ID.encode() + b"\r\nReferences: " + QUOTE_ID.encode() + b"\r\n"
    b"\r\nYes, please.\r\n"
)


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    # Replaces conftest's client, so the `admin` fixture logs in to this app.
    yield from crm_client(store)


def _created(client: TestClient, path: str, body: object, headers: dict[str, str]) -> str:
    response = client.post(f"{API}{path}", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _user(client: TestClient, admin: dict[str, str], name: str, unit: str | None = None) -> str:
    roles = {r["name"]: r["id"] for r in client.get(f"{API}/roles", headers=admin).json()}
    body = {
        "username": name,
        "password": f"{name}-password",
        "role_ids": [roles["Salesperson"]],
        "business_unit_id": unit,
    }
    return _created(client, "/users", body, admin)


def _engine_tracks(org: Org, raw: bytes) -> uuid.UUID:
    """The admin's mailbox fetched ``raw``: the engine decides and stores it."""
    ready = prepare_one(raw, ParseLimits(), org.store.blobs.root)
    assert isinstance(ready, Ready)
    item = Fetched("INBOX", 1, 1, None, raw, len(raw))
    with org.store.transaction() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == org.admin_id)).one()
        ctx = mailbox_context(session, mailbox.id)
        assert store_batch(session, org.store, ctx, [item], [ready]).tracked == 1
    with org.store.transaction() as session:
        found = select(Email.id).where(Email.message_id == "<reply-7@fabrikam.test>")
        return session.scalars(found).one()


@pytest.fixture
def quote_and_reply(client: TestClient, admin: dict[str, str], org: Org) -> tuple[str, str, str]:
    """A CRM quote regarding the deal Fabrikam chairs, and Nancy's reply, tracked."""
    deal = _created(client, "/opportunities", {"name": "Fabrikam chairs"}, admin)
    body = {"subject": "Your quote", "regarding_type": "opportunity", "regarding_id": deal}
    quote = _created(client, "/emails", body, admin)
    with org.store.transaction() as session:
        session.execute(
            update(Email).where(Email.id == uuid.UUID(quote)).values(message_id=QUOTE_ID)
        )
    return quote, deal, str(_engine_tracks(org, REPLY))


def test_a_reply_names_the_email_it_answers_only_to_whoever_may_read_it(
    client: TestClient, admin: dict[str, str], quote_and_reply: tuple[str, str, str]
) -> None:
    quote, deal, reply = quote_and_reply
    why = client.get(f"{API}/emails/{reply}/tracking", headers=admin)
    assert why.status_code == 200, why.text
    reason = why.json()["reason"]
    assert reason == {
        "recorded": True,
        "rule": "correlated",
        "sentence": "correlated to a tracked email; correlated by in reply to",
        "correlation_method": "in_reply_to",
        "matched_email_id": quote,
        "matched_message_id": QUOTE_ID,
        "token": None,
        "conversation_guid": None,
        "regarding": {"record_type": "opportunity", "id": deal, "name": "Fabrikam chairs"},
        "collides_with": None,
        "created_sender": None,
        "refused_attachments": [],
    }
    # Ann reads the reply (her unit's) but not the quote, once it belongs to another unit.
    _user(client, admin, "ann")
    far_unit = _created(client, "/business-units", {"name": "Far"}, admin)
    far = _user(client, admin, "far", unit=far_unit)
    for path in (f"/emails/{quote}", f"/opportunities/{deal}"):
        moved = client.post(f"{API}{path}/assign", json={"owner_id": far}, headers=admin)
        assert moved.status_code == 200, moved.text
    ann = login(client, "ann", "ann-password")
    as_ann = client.get(f"{API}/emails/{reply}/tracking", headers=ann).json()
    assert (as_ann["reason"]["rule"], as_ann["reason"]["correlation_method"]) == (
        "correlated",
        "in_reply_to",
    )
    assert as_ann["reason"]["matched_email_id"] is None
    assert as_ann["reason"]["regarding"] is None
    assert as_ann["correlated_with"] is None


def test_an_email_tracked_before_reasons_were_kept_says_what_it_can(
    client: TestClient, admin: dict[str, str], org: Org, quote_and_reply: tuple[str, str, str]
) -> None:
    quote, _, reply = quote_and_reply
    with org.store.transaction() as session:
        session.execute(update(Email).where(Email.id == uuid.UUID(reply)).values(why=None))
    reason = client.get(f"{API}/emails/{reply}/tracking", headers=admin).json()["reason"]
    assert (reason["recorded"], reason["rule"]) == (False, None)
    assert reason["sentence"] == "correlated to a tracked email; correlated by in reply to"
    assert (reason["correlation_method"], reason["matched_email_id"]) == ("in_reply_to", quote)
    written_here = client.get(f"{API}/emails/{quote}/tracking", headers=admin).json()["reason"]
    assert (written_here["recorded"], written_here["sentence"]) == (False, None)
    assert written_here["matched_email_id"] is None

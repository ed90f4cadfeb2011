"""Against the real Dovecot: why an email was tracked links to the email it answered; an
untracked message stays untracked whichever mailbox sees it next; a message seen but not
tracked is tracked by hand; an unknown sender becomes a contact; an account shows its
contacts' email. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.core.types import CorrelationMethod, Participation, RecordType, TrackingScope
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.auth import issue_token
from crmsync.crm.models import (
    Account,
    Contact,
    Email,
    EmailKey,
    MailboxMessage,
    Opportunity,
    SecurityRole,
    User,
)
from crmsync.crm.settings import TrackingPreferences
from crmsync.crm.setup import SALESPERSON
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.integration.conftest import Connected, message
from tests.unit.api.crm_routes_support import crm_client

API = "/api/v1"
ALL = TrackingPreferences(track_scope=TrackingScope.ALL)
QUOTE_ID = "<quote-1@acme.test>"


@pytest.fixture
def client(store: Store, org: Org, connected: Connected) -> Iterator[TestClient]:
    # Replaces conftest's client, so the `admin` fixture logs in to this app.
    yield from crm_client(store, connected.box)


def _person(connected: Connected, name: str) -> dict[str, str]:
    """A mailbox's user as a salesperson with an API token: its Authorization header."""
    login_name = connected.users[name].name
    with connected.store.transaction() as session:
        user = session.scalars(select(User).where(User.username == login_name)).one()
        role = session.scalars(
            select(SecurityRole).where(
                SecurityRole.organisation_id == user.organisation_id,
                SecurityRole.name == SALESPERSON,
            )
        ).one()
        user.roles.append(role)
        _, token = issue_token(session, user, "tests")
    return {"Authorization": f"Bearer {token}"}


def _crm_email(connected: Connected) -> tuple[uuid.UUID, uuid.UUID]:
    """An opportunity and an outgoing CRM email regarding it: (deal, email)."""
    admin = connected.admin()
    with connected.store.transaction() as session:
        deal = records.create_record(session, admin, Opportunity, {"name": "200 seats"})
        email = activities.create_activity(
            session,
            admin,
            Email,
            {
                "subject": "Your quote",
                "regarding_type": RecordType.OPPORTUNITY,
                "regarding_id": deal.id,
            },
            [PartySpec(Participation.TO, address="nancy@fabrikam.test")],
        )
        email.message_id = QUOTE_ID
        return deal.id, email.id


def _incoming(connected: Connected) -> list[Email]:
    with connected.store.transaction() as session:
        query = select(Email).where(Email.message_id != QUOTE_ID).order_by(Email.occurred_at)
        return list(session.scalars(query))


def _ledger(connected: Connected) -> list[MailboxMessage]:
    with connected.store.transaction() as session:
        return list(session.scalars(select(MailboxMessage).order_by(MailboxMessage.seen_at)))


def test_a_reply_links_to_the_crm_email_it_answered(
    connected: Connected, client: TestClient, admin: dict[str, str]
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    deal_id, quote_id = _crm_email(connected)
    reply_to = {"In-Reply-To": QUOTE_ID, "References": QUOTE_ID}
    connected.deliver(
        ["ann"],
        message(subject="Re: Your quote", message_id="<r1@fabrikam.test>", headers=reply_to),
    )
    # Its answer comes in the same batch: it links to an email stored in that very batch.
    again = {"In-Reply-To": "<r1@fabrikam.test>", "References": f"{QUOTE_ID} <r1@fabrikam.test>"}
    connected.deliver(["ann"], message(subject="Re: Re: Your quote", headers=again))
    connected.sync("ann")
    first, second = _incoming(connected)
    assert (first.correlated_with_id, first.regarding_id) == (quote_id, deal_id)
    assert (second.correlated_with_id, second.regarding_id) == (first.id, deal_id)
    why = client.get(f"{API}/emails/{first.id}/tracking", headers=admin).json()
    assert why["correlation_method"] == "in_reply_to"
    assert why["correlated_with"] == {"id": str(quote_id), "subject": "Your quote"}
    assert client.get(f"{API}/emails/{first.id}", headers=admin).json()["correlated_with_id"] == (
        str(quote_id)
    )


def test_an_untracked_message_stays_untracked_in_every_mailbox_until_tracked_by_hand(
    connected: Connected, client: TestClient, admin: dict[str, str]
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.add_mailbox("bob", preferences=ALL)
    raw = message(subject="Newsletter-ish", message_id="<once@fabrikam.test>")
    connected.deliver(["ann"], raw)
    connected.sync("ann")
    (email,) = _incoming(connected)
    untracked = client.post(f"{API}/emails/{email.id}/untrack", headers=admin)
    assert untracked.status_code == 200, untracked.text
    assert untracked.json()["sightings"] == 1
    assert _incoming(connected) == []
    connected.deliver(["bob"], raw)
    report = connected.sync("bob")
    assert (report.seen, report.tracked) == (1, 0)
    assert _incoming(connected) == []
    assert [(row.tracked, row.reason) for row in _ledger(connected)] == [
        (False, "untracked by Administrator"),
        (False, "untracked by Administrator"),
    ]
    # A person's word undoes a person's word: tracked by hand, linked in both mailboxes.
    tracked = client.post(
        f"{API}/emails/track", json={"message_id": "once@fabrikam.test"}, headers=admin
    )
    assert tracked.status_code == 201, tracked.text
    assert tracked.json()["reason"] == "tracked by Administrator"
    (again,) = _incoming(connected)
    assert str(again.id) == tracked.json()["email"]["id"]
    assert {(row.tracked, row.email_id, row.reason) for row in _ledger(connected)} == {
        (True, again.id, "tracked by Administrator")
    }
    twice = client.post(
        f"{API}/emails/track", json={"message_id": "<once@fabrikam.test>"}, headers=admin
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "ALREADY_TRACKED")
    assert twice.json()["email_id"] == str(again.id)
    with connected.store.transaction() as session:
        key = session.get(EmailKey, (connected.org.organisation_id, "<once@fabrikam.test>"))
        assert key is not None
        assert key.email_id == again.id


def test_a_message_seen_but_not_tracked_is_tracked_by_its_owner_and_correlated(
    connected: Connected, client: TestClient
) -> None:
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope=TrackingScope.NONE))
    connected.add_mailbox("bob", preferences=ALL)
    deal_id, quote_id = _crm_email(connected)
    connected.deliver(
        ["ann"],
        message(
            subject="Re: Your quote",
            message_id="<r2@fabrikam.test>",
            headers={"In-Reply-To": QUOTE_ID},
        ),
    )
    connected.sync("ann")
    assert _incoming(connected) == []
    (sighting,) = _ledger(connected)
    assert sighting.reason == "tracking disabled"
    ann, bob = _person(connected, "ann"), _person(connected, "bob")
    # Bob may not read Ann's mailbox: to him the message does not exist.
    for body in ({"message_id": "<r2@fabrikam.test>"}, {"ledger_id": str(sighting.id)}):
        assert client.post(f"{API}/emails/track", json=body, headers=bob).status_code == 404
    tracked = client.post(f"{API}/emails/track", json={"ledger_id": str(sighting.id)}, headers=ann)
    assert tracked.status_code == 201, tracked.text
    email = tracked.json()["email"]
    assert (email["correlation_method"], email["regarding_id"]) == ("in_reply_to", str(deal_id))
    assert email["correlated_with_id"] == str(quote_id)
    with connected.store.transaction() as session:
        owner = session.scalars(select(User.id).where(User.username == connected.users["ann"].name))
        assert email["owner_id"] == str(owner.one())  # hers, as if the engine had tracked it
    assert tracked.json()["reason"] == "tracked by Ann; correlated by in reply to"
    assert client.get(f"{API}/emails/{email['id']}", headers=ann).status_code == 200


def test_an_accounts_timeline_shows_its_contacts_tracked_email(
    connected: Connected, client: TestClient
) -> None:
    connected.add_mailbox(
        "ann", preferences=TrackingPreferences(track_scope=TrackingScope.FROM_CRM_RECORDS)
    )
    ann = _person(connected, "ann")
    admin = connected.admin()
    with connected.store.transaction() as session:
        contoso = records.create_record(session, admin, Account, {"name": "Contoso"})
        records.create_record(
            session,
            admin,
            Contact,
            {
                "first_name": "Nancy",
                "last_name": "Buyer",
                "email1": "nancy@fabrikam.test",
                "account_id": contoso.id,
            },
        )
    connected.deliver(["ann"], message(subject="Question about the quote"))
    assert connected.sync("ann").tracked == 1
    page = client.get(f"{API}/accounts/{contoso.id}/timeline", headers=ann)
    assert page.status_code == 200, page.text
    assert [(item["subject"], item["via"]["name"]) for item in page.json()["items"]] == [
        ("Question about the quote", "Nancy Buyer")
    ]


def test_an_unknown_sender_becomes_a_contact_with_their_email_on_its_timeline(
    connected: Connected, client: TestClient
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    ann = _person(connected, "ann")
    connected.deliver(["ann"], message(sender="Lee Newman <Lee@Tailspin.test>", subject="Hi"))
    connected.sync("ann")
    (email,) = _incoming(connected)
    resolved = client.post(
        f"{API}/addresses/resolve",
        json={"address": "lee@tailspin.test", "display_name": "Lee Newman", "as": "contact"},
        headers=ann,
    )
    assert resolved.status_code == 201, resolved.text
    contact_id = resolved.json()["record_id"]
    shown = client.get(f"{API}/emails/{email.id}", headers=ann).json()
    sender = next(p for p in shown["parties"] if p["participation"] == "from")
    assert (sender["party_type"], sender["party_id"]) == ("contact", contact_id)
    timeline = client.get(f"{API}/contacts/{contact_id}/timeline", headers=ann).json()
    assert [item["id"] for item in timeline["items"]] == [str(email.id)]
    assert CorrelationMethod.NONE.value == shown["correlation_method"]

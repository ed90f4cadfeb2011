"""What a person does to a tracked email: set its regarding record, untrack it for good,
and give an unknown address a contact or lead. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from crmsync.core.types import CorrelationMethod, Participation, RecordType, TrackingScope
from crmsync.crm import activities, email_actions, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.email_actions import split_name
from crmsync.crm.errors import Conflict, Forbidden, InvalidReference, NotFound
from crmsync.crm.models import (
    Account,
    ActivityParty,
    Contact,
    Email,
    EmailKey,
    Lead,
    Mailbox,
    MailboxMessage,
    Opportunity,
)
from crmsync.crm.settings import TrackingPreferences
from crmsync.crm.timeline import timeline
from crmsync.sync.context import mailbox_context
from crmsync.sync.incoming.fates import message_of, policy_of
from crmsync.sync.incoming.gather import gather
from crmsync.sync.incoming.parser_pool import Ready, prepare_one
from crmsync.tracking.decide import Skip, decide
from crmsync.tracking.parse import ParseLimits
from tests.conftest import Org, make_org

MESSAGE_ID = "<quote-1@fabrikam.test>"


def _tracked_email(org: Org, owner_id: uuid.UUID, **values: object) -> uuid.UUID:
    """An email as the engine leaves one: a Message-ID, its key, a ledger row."""
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        email = activities.create_activity(
            session,
            admin,
            Email,
            {"subject": "Quote", **values},
            [PartySpec(Participation.FROM, address="nancy@fabrikam.test")],
            owner_id=owner_id,
        )
        email.message_id = MESSAGE_ID
        session.add(
            EmailKey(organisation_id=org.organisation_id, key=MESSAGE_ID, email_id=email.id)
        )
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == org.admin_id)).one()
        session.add(
            MailboxMessage(
                mailbox_id=mailbox.id,
                folder="INBOX",
                uidvalidity=1,
                uid=7,
                message_id=MESSAGE_ID,
                email_id=email.id,
                tracked=True,
                reason="sender is a contact",
            )
        )
        return email.id


def test_setting_regarding_follows_the_append_rules_and_is_manual(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        bob = org.add_user(session, "bob")
        admin = org.principal(session, org.admin_id)
        mine = records.create_record(session, admin, Opportunity, {"name": "Mine"}, owner_id=ann)
        bobs = records.create_record(session, admin, Account, {"name": "Bob's"}, owner_id=bob)
    email_id = _tracked_email(org, ann, correlation_method=CorrelationMethod.IN_REPLY_TO)
    with org.store.transaction() as session:
        me = org.principal(session, ann)
        email = email_actions.set_regarding(
            session, me, email_id, (RecordType.OPPORTUNITY, mine.id)
        )
        assert (email.regarding_type, email.regarding_id) == (RecordType.OPPORTUNITY, mine.id)
        assert email.correlation_method is CorrelationMethod.MANUAL
        # Bob's account: Ann reads it (same unit) but may not append to it.
        with pytest.raises(Forbidden):
            email_actions.set_regarding(session, me, email_id, (RecordType.ACCOUNT, bobs.id))
        with pytest.raises(InvalidReference):
            email_actions.set_regarding(session, me, email_id, (RecordType.CASE, uuid.uuid4()))
        cleared = email_actions.set_regarding(session, me, email_id, None)
        assert (cleared.regarding_type, cleared.regarding_id) == (None, None)
    stranger = make_org(org.store, "Globex")
    with org.store.transaction() as session, pytest.raises(NotFound):
        email_actions.set_regarding(
            session, stranger.principal(session, stranger.admin_id), email_id, None
        )


def test_untracking_deletes_the_email_and_leaves_a_tombstone(org: Org) -> None:
    email_id = _tracked_email(org, org.admin_id)
    with org.store.transaction() as session:
        bob = org.add_user(session, "bob")
    # Bob reads it (the admin's, in his unit) but may not delete it.
    with org.store.transaction() as session, pytest.raises(Forbidden):
        email_actions.untrack_email(session, org.principal(session, bob), email_id)
    moment = datetime(2026, 3, 1, tzinfo=UTC)
    with org.store.transaction() as session:
        done = email_actions.untrack_email(
            session, org.principal(session, org.admin_id), email_id, now=moment
        )
    assert (done.keys, done.sightings) == ([MESSAGE_ID], 1)
    with org.store.transaction() as session:
        assert session.get(Email, email_id) is None
        key = session.get(EmailKey, (org.organisation_id, MESSAGE_ID))
        assert key is not None
        assert (key.email_id, key.untracked_by_id, key.untracked_at) == (
            None,
            org.admin_id,
            moment,
        )
        (sighting,) = session.scalars(select(MailboxMessage))
        assert (sighting.tracked, sighting.email_id) == (False, None)
        assert sighting.reason == "untracked by Administrator"


def test_the_engine_leaves_an_untracked_message_untracked(org: Org, tmp_path: Path) -> None:
    email_id = _tracked_email(org, org.admin_id)
    with org.store.transaction() as session:
        email_actions.untrack_email(session, org.principal(session, org.admin_id), email_id)
    raw = (
        b"From: Nancy <nancy@fabrikam.test>\r\nTo: admin@acme.test\r\nSubject: Quote\r\n"
        b"Message-ID: " + MESSAGE_ID.encode() + b"\r\n\r\nHello\r\n"
    )
    ready = prepare_one(raw, ParseLimits(), tmp_path)
    assert isinstance(ready, Ready)
    with org.store.transaction() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == org.admin_id)).one()
        ctx = mailbox_context(session, mailbox.id)
        # Even an owner who tracks everything does not get it back.
        ctx = replace(ctx, preferences=TrackingPreferences(track_scope=TrackingScope.ALL))
        policy, message = policy_of(ctx), message_of(ready)
        known = gather(session, ctx.organisation_id, policy.correlation, [message])
    fate = decide(message, known, policy, datetime.now(UTC))
    assert isinstance(fate, Skip)
    assert fate.why.sentence() == "untracked by Administrator"


def test_a_draft_is_deleted_not_untracked(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        draft = activities.create_activity(session, admin, Email, {"subject": "draft"}, [])
        with pytest.raises(Conflict):
            email_actions.untrack_email(session, admin, draft.id)


@pytest.mark.parametrize(
    ("display_name", "address", "expected"),
    [
        ("Nancy Buyer", "nancy@fabrikam.test", ("Nancy", "Buyer")),
        ("Buyer, Nancy", "nancy@fabrikam.test", ("Nancy", "Buyer")),
        ('"Nancy  Ann Buyer"', "nancy@fabrikam.test", ("Nancy Ann", "Buyer")),
        ("Nancy", "nancy@fabrikam.test", ("", "Nancy")),
        ("", "nancy.buyer@fabrikam.test", ("", "nancy.buyer")),
        ("nancy@fabrikam.test", "nancy@fabrikam.test", ("", "nancy")),
    ],
)
def test_names_are_split_as_people_write_them(
    display_name: str, address: str, expected: tuple[str, str]
) -> None:
    assert split_name(display_name, address) == expected


def test_resolving_an_address_links_every_unresolved_party_with_it(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann", unit_id=org.add_unit(session, "North"))
        admin = org.principal(session, org.admin_id)
        # The admin's email, which Ann (another unit) cannot read: the address is
        # resolved there too.
        hidden = activities.create_activity(
            session,
            admin,
            Email,
            {"subject": "hidden"},
            [PartySpec(Participation.CC, address="NANCY@Bücher.example")],
        )
        mine = activities.create_activity(
            session,
            admin,
            Email,
            {"subject": "mine"},
            [
                PartySpec(Participation.FROM, address="nancy@xn--bcher-kva.example"),
                PartySpec(Participation.TO, address="nancyx@bücher.example"),
            ],
            owner_id=ann,
        )
        mine_id, hidden_id = mine.id, hidden.id
    other = make_org(org.store, "Globex")
    with org.store.transaction() as session:
        activities.create_activity(
            session,
            other.principal(session, other.admin_id),
            Email,
            {"subject": "theirs"},
            [PartySpec(Participation.FROM, address="nancy@bücher.example")],
        )
    with org.store.transaction() as session:
        me = org.principal(session, ann)
        resolved = email_actions.resolve_address(
            session, me, "Nancy@Bücher.Example", "Nancy Buyer", RecordType.CONTACT
        )
        contact = resolved.record
        assert isinstance(contact, Contact)
        assert (contact.first_name, contact.last_name, contact.email1, contact.owner_id) == (
            "Nancy",
            "Buyer",
            "Nancy@Bücher.Example",
            ann,
        )
        assert resolved.parties == 2
        page = timeline(session, me, RecordType.CONTACT, contact.id)
        assert [item.activity.id for item in page.items] == [mine_id]  # hidden stays hidden
    with org.store.transaction() as session:
        parties = {
            (p.activity_id, p.address): (p.party_type, p.party_id, p.display_name)
            for p in session.scalars(select(ActivityParty))
        }
    assert parties[(mine_id, "nancy@xn--bcher-kva.example")] == (
        RecordType.CONTACT,
        contact.id,
        "Nancy Buyer",
    )
    assert parties[(hidden_id, "NANCY@Bücher.example")][:2] == (RecordType.CONTACT, contact.id)
    assert parties[(mine_id, "nancyx@bücher.example")] == (None, None, "")
    assert sum(1 for (_, _), (kind, _, _) in parties.items() if kind is None) == 2


def test_an_address_becomes_a_lead_owned_by_whoever_resolves_it(org: Org) -> None:
    with org.store.transaction() as session:
        reader = org.add_user(session, "reader", role="Read Only")
        with pytest.raises(Forbidden):
            email_actions.resolve_address(
                session, org.principal(session, reader), "x@y.test", "", RecordType.LEAD
            )
        admin = org.principal(session, org.admin_id)
        resolved = email_actions.resolve_address(
            session, admin, "lee@tailspin.test", "Lee Lead", RecordType.LEAD
        )
        lead = resolved.record
        assert isinstance(lead, Lead)
        assert (lead.subject, lead.first_name, lead.last_name, lead.owner_id) == (
            "Email from Lee Lead",
            "Lee",
            "Lead",
            org.admin_id,
        )
        with pytest.raises(InvalidReference):
            email_actions.resolve_address(session, admin, "not an address", "", RecordType.LEAD)
        with pytest.raises(InvalidReference):
            email_actions.resolve_address(session, admin, "a@b.test", "", RecordType.ACCOUNT)

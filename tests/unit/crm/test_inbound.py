"""Storing what the incoming engine decided (crm/inbound.py): a batch in bulk, and when
another worker stored some of its messages first, row by row linking to those. Every test
runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import delete, select

from crmsync.core.email_keys import collision_key
from crmsync.core.types import CorrelationMethod, Participation, RecordType, TrackRule
from crmsync.core.why import Correlated, Why
from crmsync.crm.inbound import (
    AttachmentRow,
    InboundEmail,
    NewEmail,
    PartyRow,
    Stored,
    store_emails,
)
from crmsync.crm.models import Attachment, Email, EmailKey, Queue, QueueItem
from tests.conftest import Org

WHEN = datetime(2026, 3, 3, 10, 15, tzinfo=UTC)
FIRST = "v1:" + "1" * 64
OTHER = "v1:" + "2" * 64


def _inbound(org: Org, message_id: str, **changes: object) -> InboundEmail:
    inbound = InboundEmail(
        organisation_id=org.organisation_id,
        owner_id=org.admin_id,
        owning_business_unit_id=org.root_unit_id,
        dedupe_key=message_id,
        subject=f"About {message_id}",
        description="<p>Hello</p>",
        body_text="Hello",
        occurred_at=WHEN,
        message_id=message_id,
        in_reply_to=None,
        references=None,
        conversation_index=None,
        conversation_guid=None,
        normalised_subject="about",
        tracking_token=None,
        correlation_method=CorrelationMethod.NONE,
        regarding=None,
        parties=[
            PartyRow(Participation.FROM, "nancy@fabrikam.test", "Nancy"),
            PartyRow(Participation.TO, None, "Admin", RecordType.USER, org.admin_id),
        ],
        content_fingerprint=FIRST,
        why=Why(TrackRule.IN_SCOPE),
    )
    return replace(inbound, **changes)  # type: ignore[arg-type]


def _replying_to(org: Org, message_id: str, earlier: uuid.UUID) -> InboundEmail:
    why = Why(
        TrackRule.CORRELATED,
        correlation=Correlated(CorrelationMethod.IN_REPLY_TO, earlier, "<a@x.test>"),
    )
    return _inbound(
        org,
        message_id,
        in_reply_to="<a@x.test>",
        correlation_method=CorrelationMethod.IN_REPLY_TO,
        correlated_with=earlier,
        why=why,
    )


def _raw(org: Org, text: bytes = b"raw message") -> str:
    with org.store.transaction() as session:
        return org.store.blobs.put(session, text)


def _store(org: Org, *emails: NewEmail) -> list[Stored]:
    with org.store.transaction() as session:
        return store_emails(session, list(emails))


def _email(org: Org, email_id: uuid.UUID | None) -> Email:
    with org.store.transaction() as session:
        email = session.get(Email, email_id)
        assert email is not None
        session.expunge(email)
        return email


def test_a_batch_is_stored_with_its_parties_attachments_queue_and_why(org: Org) -> None:
    raw = _raw(org)
    attachment = _raw(org, b"%PDF-1.7")
    with org.store.transaction() as session:
        queue = Queue(
            organisation_id=org.organisation_id,
            business_unit_id=org.root_unit_id,
            owner_id=org.admin_id,
            name="Sales",
        )
        session.add(queue)
        session.flush()
        queue_id = queue.id
    first, second = uuid.uuid4(), uuid.uuid4()
    pdf = AttachmentRow("offer.pdf", "application/pdf", attachment, 8)
    stored = _store(
        org,
        NewEmail(first, _inbound(org, "<a@x.test>", attachments=[pdf], queue_id=queue_id), raw),
        NewEmail(second, _replying_to(org, "<b@x.test>", first), raw),
    )
    assert stored == [Stored(first, True), Stored(second, True)]
    email = _email(org, first)
    assert (email.subject, email.message_id, email.content_fingerprint) == (
        "About <a@x.test>",
        "<a@x.test>",
        FIRST,
    )
    assert [(p.participation, p.address, p.party_id) for p in email.parties] == [
        (Participation.FROM, "nancy@fabrikam.test", None),
        (Participation.TO, None, org.admin_id),
    ]
    assert Why.from_json(email.why) == Why(TrackRule.IN_SCOPE)
    reply = _email(org, second)
    assert reply.correlated_with_id == first
    assert Why.from_json(reply.why) == _replying_to(org, "<b@x.test>", first).why
    with org.store.transaction() as session:
        assert session.scalars(select(Attachment.filename)).all() == ["offer.pdf"]
        assert session.scalars(select(QueueItem.activity_id)).all() == [first]
        keys = session.scalars(select(EmailKey.email_id).order_by(EmailKey.key)).all()
        assert keys == [first, second]


def test_what_another_worker_stored_meanwhile_is_linked_and_followed(org: Org) -> None:
    raw = _raw(org)
    theirs = uuid.uuid4()
    # Another worker committed the same message (same content) before this batch.
    assert _store(org, NewEmail(theirs, _inbound(org, "<a@x.test>"), raw)) == [Stored(theirs, True)]
    mine, reply, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    stored = _store(
        org,
        NewEmail(mine, _inbound(org, "<a@x.test>"), raw),
        NewEmail(reply, _replying_to(org, "<b@x.test>", mine), raw),
        NewEmail(other, _inbound(org, "<c@x.test>"), raw),
    )
    assert stored == [Stored(theirs, False), Stored(reply, True), Stored(other, True)]
    # The reply was correlated with the email this batch planned: it follows it to
    # the email that message became, in its column and in its Why alike.
    answer = _email(org, reply)
    assert answer.correlated_with_id == theirs
    why = Why.from_json(answer.why)
    assert why is not None
    assert why.correlation is not None
    assert why.correlation.email_id == theirs
    with org.store.transaction() as session:
        assert session.get(Email, mine) is None
        assert len(session.scalars(select(Email.id)).all()) == 3


def test_a_message_untracked_meanwhile_is_left_out_and_its_reply_unlinked(org: Org) -> None:
    raw = _raw(org)
    with org.store.transaction() as session:
        session.add(
            EmailKey(organisation_id=org.organisation_id, key="<a@x.test>", untracked_at=WHEN)
        )
    mine, reply = uuid.uuid4(), uuid.uuid4()
    stored = _store(
        org,
        NewEmail(mine, _inbound(org, "<a@x.test>"), raw),
        NewEmail(reply, _replying_to(org, "<b@x.test>", mine), raw),
    )
    assert stored == [Stored(None, False), Stored(reply, True)]
    assert _email(org, reply).correlated_with_id is None


def test_another_message_under_a_stored_message_id_is_kept_apart(org: Org) -> None:
    raw = _raw(org)
    theirs, mine = uuid.uuid4(), uuid.uuid4()
    _store(org, NewEmail(theirs, _inbound(org, "<reused@x.test>"), raw))
    other_content = _inbound(org, "<reused@x.test>", content_fingerprint=OTHER)
    assert _store(org, NewEmail(mine, other_content, raw)) == [Stored(mine, True)]
    email = _email(org, mine)
    assert email.message_id == "<reused@x.test>"
    why = Why.from_json(email.why)
    assert why is not None
    assert why.collides_with == theirs
    with org.store.transaction() as session:
        key = session.get(EmailKey, (org.organisation_id, collision_key("<reused@x.test>", OTHER)))
        assert key is not None
        assert key.email_id == mine
    # Its copy, seen in another mailbox later, folds into it.
    again = uuid.uuid4()
    assert _store(org, NewEmail(again, other_content, raw)) == [Stored(mine, False)]


def test_a_correlated_email_deleted_meanwhile_leaves_the_link_out(org: Org) -> None:
    raw = _raw(org)
    earlier = uuid.uuid4()
    _store(org, NewEmail(earlier, _inbound(org, "<a@x.test>"), raw))
    with org.store.transaction() as session:
        session.execute(delete(EmailKey))
        session.delete(session.get(Email, earlier))
    # The batch collides with a key (forcing the row-by-row path) and names a deleted email.
    blocker = uuid.uuid4()
    _store(org, NewEmail(blocker, _inbound(org, "<z@x.test>"), raw))
    late = uuid.uuid4()
    stored = _store(
        org,
        NewEmail(uuid.uuid4(), _inbound(org, "<z@x.test>"), raw),
        NewEmail(late, _replying_to(org, "<b@x.test>", earlier), raw),
    )
    assert stored[1] == Stored(late, True)
    assert _email(org, late).correlated_with_id is None

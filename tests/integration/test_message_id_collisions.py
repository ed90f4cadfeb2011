"""A Message-ID reused by another message (old or broken mailers do) against the real
Dovecot: the other message is its own email, and the ledger says why; copies of one
message, however re-encoded, stay one email.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.utils import format_datetime, parsedate_to_datetime

from sqlalchemy import select, update

from crmsync.crm.models import Email, MailboxMessage
from crmsync.crm.settings import TrackingPreferences
from tests.integration.conftest import Connected, message

ALL = TrackingPreferences(track_scope="all")
REUSED = "<1@old-mailer.fabrikam.test>"
FIRST = message(subject="Order 17", body="Please send 10 chairs.", message_id=REUSED)
SECOND = message(subject="Order 18", body="Please send 4 tables.", message_id=REUSED)


def _emails(connected: Connected) -> list[Email]:
    with connected.store.transaction() as session:
        query = select(Email).where(Email.message_id == REUSED).order_by(Email.subject)
        return list(session.scalars(query))


def _ledger(connected: Connected, email_id: uuid.UUID) -> list[MailboxMessage]:
    with connected.store.transaction() as session:
        query = select(MailboxMessage).where(MailboxMessage.email_id == email_id)
        return list(session.scalars(query))


def test_two_messages_with_one_message_id_in_one_pass_are_two_emails(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.deliver(["ann"], FIRST)
    connected.deliver(["ann"], SECOND)
    assert connected.sync("ann").tracked == 2
    first, second = _emails(connected)
    assert (first.subject, second.subject) == ("Order 17", "Order 18")
    assert "10 chairs" in first.body_text
    assert "4 tables" in second.body_text
    (sighting,) = _ledger(connected, second.id)
    assert sighting.reason.startswith(
        f"same Message-ID as email {first.id} but different content: kept as its own email"
    )
    assert "another mailbox" not in sighting.reason
    (original,) = _ledger(connected, first.id)
    assert "same Message-ID" not in original.reason


def test_a_later_message_reusing_a_tracked_message_id_is_its_own_email(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.deliver(["ann"], FIRST)
    connected.sync("ann")
    connected.deliver(["ann"], SECOND)
    assert connected.sync("ann").tracked == 1
    first, second = _emails(connected)
    assert first.id != second.id
    assert "4 tables" in second.body_text
    (sighting,) = _ledger(connected, second.id)
    assert f"same Message-ID as email {first.id} but different content" in sighting.reason


def _as_another_server_stored(raw: bytes) -> bytes:
    """``raw`` re-encoded: another trace, the Date in another zone, the sender's name as
    an RFC 2047 word, the body in base64 with a trailing blank line."""
    original = message_from_bytes(raw)
    copy = EmailMessage()
    copy["Received"] = "from relay.b.test by imap.b.test; Mon, 4 Mar 2024 09:01:00 +0000"
    copy["Return-Path"] = "<bounces@relay.b.test>"
    copy["From"] = "=?iso-8859-1?q?Nancy_Buyer?= <NANCY@fabrikam.test>"
    copy["To"] = original["To"]
    copy["Subject"] = original["Subject"]
    when = parsedate_to_datetime(original["Date"]).astimezone(timezone(timedelta(hours=2)))
    copy["Date"] = format_datetime(when)
    copy["Message-ID"] = original["Message-ID"]
    text = original.get_payload(decode=True)
    assert isinstance(text, bytes)
    copy.set_content(text.decode() + "\n\n", cte="base64")
    return copy.as_bytes()


def test_one_message_in_two_mailboxes_is_one_email_even_re_encoded(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.add_mailbox("bob", preferences=ALL)
    connected.deliver(["ann"], FIRST)
    re_encoded = _as_another_server_stored(FIRST)
    assert b"base64" in re_encoded
    assert b"chairs" not in re_encoded
    connected.deliver(["bob"], re_encoded)
    connected.sync("ann")
    assert connected.sync("bob").tracked == 1
    (email,) = _emails(connected)
    sightings = _ledger(connected, email.id)
    assert {s.mailbox_id for s in sightings} == {
        connected.mailboxes["ann"],
        connected.mailboxes["bob"],
    }
    (bobs,) = [s for s in sightings if s.mailbox_id == connected.mailboxes["bob"]]
    assert bobs.reason == "already tracked from another mailbox"


def test_a_colliding_message_in_two_mailboxes_is_one_email_too(connected: Connected) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.add_mailbox("bob", preferences=ALL)
    connected.deliver(["ann", "bob"], FIRST)
    connected.deliver(["ann", "bob"], SECOND)
    connected.sync("ann")
    connected.sync("bob")
    first, second = _emails(connected)
    both = {connected.mailboxes["ann"], connected.mailboxes["bob"]}
    assert {s.mailbox_id for s in _ledger(connected, first.id)} == both
    assert {s.mailbox_id for s in _ledger(connected, second.id)} == both


def test_an_email_stored_before_fingerprints_matches_by_message_id_alone(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.add_mailbox("bob", preferences=ALL)
    connected.deliver(["ann"], FIRST)
    connected.sync("ann")
    with connected.store.transaction() as session:
        session.execute(update(Email).values(content_fingerprint=None))
    connected.deliver(["bob"], SECOND)
    connected.sync("bob")
    (email,) = _emails(connected)
    assert len(_ledger(connected, email.id)) == 2

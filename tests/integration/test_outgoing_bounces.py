"""A bounce (RFC 3464 delivery status notification) arriving in the sender's mailbox marks
the CRM email it reports on and alerts its owner.

The CRM email really goes out through the relay (to an address on another domain, which
the relay spools); the bounce is built the way Postfix writes one, with the returned
header section, and delivered into ann's Dovecot INBOX. An incoming pass reads it (and
does not track it as an email); ``handle_bounce`` — which the incoming engine calls for
bounces — then runs on what that pass stored, unless the engine did so already.
Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from sqlalchemy import func, select

from crmsync.core.types import EmailStatus, Participation
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Alert, Email, MailboxMessage
from crmsync.sync.context import mailbox_context
from crmsync.sync.incoming.bounces import handle_bounce
from crmsync.tracking.parse import parse_message
from tests.integration.conftest import Connected
from tests.integration.test_outgoing import Outbox, make_outbox

pytestmark = pytest.mark.integration


@pytest.fixture
def outbox(connected: Connected) -> Outbox:
    return make_outbox(connected)


def postfix_bounce(to: str, recipient: str, returned: bytes) -> bytes:
    """A bounce as Postfix writes it: text, delivery-status, the returned header."""
    header = returned.split(b"\r\n\r\n", 1)[0].decode("ascii", "replace").replace("\r\n", "\n")
    boundary = f"bounce-{uuid.uuid4().hex}"
    text = f"""From: MAILER-DAEMON@example.test (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {format_datetime(datetime.now(UTC))}
Message-ID: <{uuid.uuid4().hex}@mx.example.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="{boundary}"

This is a MIME-encapsulated message.

--{boundary}
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.test.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{recipient}>: host mx.fabrikam.test said: 550 5.1.1 <{recipient}>:
    Recipient address rejected: User unknown

--{boundary}
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.test
X-Postfix-Queue-ID: 4AB1C2D3E4
Arrival-Date: {format_datetime(datetime.now(UTC))}

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822;{recipient}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.fabrikam.test
Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User
    unknown

--{boundary}
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

{header}

--{boundary}--
"""
    return text.replace("\n", "\r\n").encode()


def test_a_bounce_marks_the_original_and_alerts_its_owner(outbox: Outbox) -> None:
    nobody = f"nobody-{uuid.uuid4().hex[:6]}@fabrikam.test"
    email_id = outbox.email(parties=[PartySpec(Participation.TO, address=nobody)])
    outbox.queue(email_id)
    assert outbox.send().sent == 1
    sent = outbox.get(email_id)
    (spooled,) = [m for m in outbox.connected.smtp.external_messages() if nobody in m.rcpt_tos]

    bounce = postfix_bounce(outbox.ann.address, nobody, spooled.raw)
    outbox.connected.deliver(["ann"], bounce)
    with outbox.store.transaction() as session:
        emails_before = session.scalar(select(func.count(Email.id)))
    report = outbox.connected.sync("ann")
    assert (report.seen, report.tracked) == (1, 0)  # a bounce is not an email of its own

    with outbox.store.transaction() as session:
        assert session.scalar(select(func.count(Email.id))) == emails_before
        ledger = session.scalars(select(MailboxMessage)).one()
        assert "bounce" in ledger.reason
        assert ledger.raw_sha256 is not None
        original = session.get(Email, email_id)
        assert original is not None
        assert original.bounced_at is not None  # the incoming engine handled the bounce

    bounced = outbox.get(email_id)
    assert bounced.status is EmailStatus.SENT  # sent, and bounced: both are true
    assert bounced.bounced_at is not None
    assert bounced.bounce_recipient == nobody
    assert bounced.bounce_status == "5.1.1"
    assert bounced.bounce_reason is not None
    assert "Recipient address rejected: User unknown" in bounced.bounce_reason
    with outbox.store.transaction() as session:
        raw_sha256 = session.scalars(select(MailboxMessage.raw_sha256)).one()
        (alert,) = session.scalars(select(Alert).where(Alert.code == "EMAIL_BOUNCED"))
        assert alert.mailbox_owner_id == outbox.ann_id
        assert nobody in alert.detail
        assert sent.subject[:50] in alert.detail

        # The same bounce again (another mailbox, a re-sync) changes nothing.
        ctx = mailbox_context(session, outbox.mailbox_id)
        again = parse_message(bounce)
        assert handle_bounce(session, outbox.store.blobs, ctx, again, raw_sha256)
        assert alert.occurrences == 1


def test_a_delay_notice_is_not_a_bounce(outbox: Outbox) -> None:
    nobody = f"slow-{uuid.uuid4().hex[:6]}@fabrikam.test"
    email_id = outbox.email(parties=[PartySpec(Participation.TO, address=nobody)])
    outbox.queue(email_id)
    outbox.send()
    (spooled,) = [m for m in outbox.connected.smtp.external_messages() if nobody in m.rcpt_tos]
    delayed = (
        postfix_bounce(outbox.ann.address, nobody, spooled.raw)
        .replace(b"Action: failed", b"Action: delayed")
        .replace(b"Status: 5.1.1", b"Status: 4.4.1")
    )
    with outbox.store.transaction() as session:
        ctx = mailbox_context(session, outbox.mailbox_id)
        assert not handle_bounce(session, None, ctx, parse_message(delayed), None)
    assert outbox.get(email_id).bounced_at is None

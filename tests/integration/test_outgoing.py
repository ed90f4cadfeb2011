"""Outgoing CRM email through the real SMTP relay into real Dovecot mailboxes.

A CRM user (ann) writes to a contact whose address is a second Dovecot account (bob):
the message arrives with the right headers and token, a copy lands in ann's Sent folder,
and bob's replies come back to the same record. Every test runs on SQLite and
PostgreSQL. Helpers here are shared by the other test_outgoing_* modules.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from sqlalchemy import func, select

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.core.errors import RetryPolicy
from crmsync.core.types import (
    ActivityState,
    CorrelationMethod,
    Direction,
    EmailStatus,
    Participation,
    RecordType,
)
from crmsync.crm import activities, outbound, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Contact, Email, Mailbox, Opportunity, Organisation
from crmsync.sync.outgoing import OutgoingOptions, OutgoingReport, sync_outgoing
from crmsync.tracking.parse import ParsedMessage, parse_message
from crmsync.tracking.threadindex import conversation_guid
from crmsync.tracking.token import TokenFormat, find_token
from tests.integration.conftest import Connected
from tests.servers import MailUser, SmtpFault, SmtpStage

pytestmark = pytest.mark.integration

DOMAIN = "acme.test"
NOW = RetryPolicy(base_seconds=0.0)  # retries due at once


@dataclass
class Outbox:
    """ann's CRM, a contact bob with a real mailbox, and helpers to send and look."""

    connected: Connected
    ann: MailUser
    ann_id: uuid.UUID  # the user
    mailbox_id: uuid.UUID
    bob: MailUser
    bob_id: uuid.UUID  # the contact
    deal_id: uuid.UUID

    @property
    def store(self) -> Any:
        return self.connected.store

    def email(
        self,
        subject: str = "Your quote",
        *,
        parties: list[PartySpec] | None = None,
        **values: Any,
    ) -> uuid.UUID:
        """A draft owned by ann, regarding the deal, to bob unless ``parties`` says else."""
        admin = self.connected.admin()
        with self.store.transaction() as session:
            email = activities.create_activity(
                session,
                admin,
                Email,
                {
                    "subject": subject,
                    "description": "<p>Hello <b>Bob</b></p><script>alert(1)</script>",
                    "body_text": "Hello Bob",
                    "regarding_type": RecordType.OPPORTUNITY,
                    "regarding_id": self.deal_id,
                    **values,
                },
                parties or [PartySpec(Participation.TO, RecordType.CONTACT, self.bob_id)],
                owner_id=self.ann_id,
            )
            return email.id

    def queue(self, email_id: uuid.UUID, **kwargs: Any) -> Email:
        with self.store.transaction() as session:
            email = session.get(Email, email_id)
            assert email is not None
            return outbound.request_send(session, self.connected.admin(), email, **kwargs)

    def send(self, **options: Any) -> OutgoingReport:
        options.setdefault("retry_policy", NOW)
        return sync_outgoing(
            self.store, self.connected.box, self.mailbox_id, OutgoingOptions(**options)
        )

    def get(self, email_id: uuid.UUID) -> Email:
        with self.store.transaction() as session:
            email = session.get(Email, email_id)
            assert email is not None
            return email

    def folder(self, user: MailUser, folder: str = "INBOX") -> list[tuple[bytes, frozenset[str]]]:
        """Every message in ``user``'s ``folder`` (``"Sent"``: the Sent folder), with flags."""
        dovecot = self.connected.dovecot
        assert dovecot.ca_cert is not None
        endpoint = Endpoint(
            "127.0.0.1",
            dovecot.imap_port,
            Security.STARTTLS,
            ca_pem=dovecot.ca_cert.read_text(),
            timeout=10.0,
        )
        with ImapConnection.open(endpoint, Credentials(user.login, user.password)) as imap:
            name = imap.find_sent_folder() if folder == "Sent" else folder
            imap.select_folder(name, readonly=True)
            uids = imap.all_uids()
            flags = {meta.uid: meta.flags for meta in imap.fetch_meta(uids)}
            return [(m.raw or b"", flags[m.uid]) for m in imap.fetch_raw(uids, max_size=None)]

    def received(self, user: MailUser, message_id: str | None) -> list[ParsedMessage]:
        parsed = [parse_message(raw) for raw, _ in self.folder(user)]
        return [p for p in parsed if p.message_id == message_id]


def make_outbox(connected: Connected) -> Outbox:
    """ann with an approved, tested mailbox; bob a contact on a second Dovecot account."""
    connected.add_mailbox("ann")
    ann = connected.users["ann"]
    bob = connected.dovecot.add_user(f"bob-{uuid.uuid4().hex[:6]}", "pw-bob-bob")
    admin = connected.admin()
    with connected.store.transaction() as session:
        organisation = session.get(Organisation, connected.org.organisation_id)
        assert organisation is not None
        organisation.settings = {**organisation.settings, "email_domain": DOMAIN}
        mailbox = session.get(Mailbox, connected.mailboxes["ann"])
        assert mailbox is not None
        assert mailbox.user_id is not None
        contact = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Bob", "last_name": "Buyer", "email1": bob.address},
        )
        deal = records.create_record(session, admin, Opportunity, {"name": "200 seats"})
        return Outbox(connected, ann, mailbox.user_id, mailbox.id, bob, contact.id, deal.id)


@pytest.fixture
def outbox(connected: Connected) -> Iterator[Outbox]:
    return make_outbox(connected)


def reply_from(
    bob: MailUser, ann: MailUser, original: ParsedMessage, *, threaded: bool = True
) -> bytes:
    """bob's answer to ``original``; without ``threaded`` the mail client lost the ids."""
    msg = EmailMessage()
    msg["From"] = f"Bob Buyer <{bob.address}>"
    msg["To"] = ann.address
    msg["Subject"] = f"RE: {original.subject}"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain="example.test")
    if threaded and original.message_id:
        msg["In-Reply-To"] = original.message_id
        msg["References"] = " ".join([*original.references, original.message_id])
    msg.set_content("Thanks, looks good.")
    return msg.as_bytes()


def _email_count(outbox: Outbox) -> int:
    with outbox.store.transaction() as session:
        return int(session.scalar(select(func.count(Email.id))) or 0)


# -- the message as it arrives ---------------------------------------------------------------


def test_a_crm_email_arrives_with_its_headers_and_token_and_a_copy_is_in_sent(
    outbox: Outbox,
) -> None:
    # Bcc on another domain: the relay spools it (it hands one local recipient per
    # transaction to Dovecot's LMTP only).
    carol = f"carol-{uuid.uuid4().hex[:6]}@partner.test"
    email_id = outbox.email(
        parties=[
            PartySpec(Participation.TO, RecordType.CONTACT, outbox.bob_id),
            PartySpec(Participation.BCC, address=carol),
        ]
    )
    queued = outbox.queue(email_id)
    assert queued.status is EmailStatus.PENDING_SEND
    report = outbox.send()
    assert (report.sent, report.failed, report.copies, report.error) == (1, 0, 1, None)

    sent = outbox.get(email_id)
    assert sent.status is EmailStatus.SENT
    assert sent.state is ActivityState.COMPLETED
    assert sent.direction is Direction.OUTGOING
    assert sent.delivery_attempts == 1
    assert sent.message_id is not None
    assert sent.message_id.endswith(f"@{DOMAIN}>")
    assert sent.tracking_token is not None
    assert find_token(sent.subject, TokenFormat()) == sent.tracking_token
    assert sent.subject == f"Your quote {sent.tracking_token}"
    assert not sent.copy_pending

    (arrived,) = outbox.received(outbox.bob, sent.message_id)
    assert arrived.subject == sent.subject
    assert [(a.name, a.address) for a in arrived.from_] == [("Ann", outbox.ann.address)]
    assert [(a.name, a.address) for a in arrived.to] == [("Bob Buyer", outbox.bob.address)]
    assert arrived.bcc == ()
    assert conversation_guid(arrived.thread_index) == sent.conversation_guid is not None
    assert arrived.html_body is not None
    assert "<b>Bob</b>" in arrived.html_body
    assert "script" not in arrived.html_body
    assert arrived.text_body.strip() == "Hello Bob"

    (blind,) = [m for m in outbox.connected.smtp.external_messages() if carol in m.rcpt_tos]
    assert blind.rcpt_tos == [carol]  # Bcc: in the envelope, never in a header
    assert blind.mail_from == outbox.ann.address
    assert carol.encode() not in blind.raw
    assert parse_message(blind.raw).message_id == sent.message_id

    (copy,) = outbox.folder(outbox.ann, "Sent")
    assert parse_message(copy[0]).message_id == sent.message_id
    assert "\\Seen" in copy[1]

    # The copy read back (here: in ann's INBOX) links to the sent email, no second one.
    before = _email_count(outbox)
    outbox.connected.deliver(["ann"], copy[0])
    outbox.connected.sync("ann")
    assert _email_count(outbox) == before
    # Nothing left to do: a second pass sends nothing.
    assert outbox.send().sent == 0


def test_tokens_are_numbered_without_gaps_or_repeats(outbox: Outbox) -> None:
    ids = [outbox.email(f"Offer {n}") for n in range(3)]
    for email_id in ids:
        outbox.queue(email_id)
    assert outbox.send().sent == 3
    tokens = [outbox.get(email_id).tracking_token for email_id in ids]
    assert tokens == ["CRM:0000001", "CRM:0000002", "CRM:0000003"]


# -- replies come back to the record ---------------------------------------------------------


def test_the_contacts_reply_is_tracked_by_in_reply_to_and_again_by_token(outbox: Outbox) -> None:
    email_id = outbox.email()
    outbox.queue(email_id)
    outbox.send()
    sent = outbox.get(email_id)
    (arrived,) = outbox.received(outbox.bob, sent.message_id)

    outbox.connected.deliver(["ann"], reply_from(outbox.bob, outbox.ann, arrived))
    assert outbox.connected.sync("ann").tracked == 1
    outbox.connected.deliver(["ann"], reply_from(outbox.bob, outbox.ann, arrived, threaded=False))
    assert outbox.connected.sync("ann").tracked == 1

    with outbox.store.transaction() as session:
        replies = list(
            session.scalars(
                select(Email)
                .where(Email.direction == Direction.INCOMING)
                .order_by(Email.occurred_at, Email.created_at)
            )
        )
    assert [r.correlation_method for r in replies] == [
        CorrelationMethod.IN_REPLY_TO,
        CorrelationMethod.TRACKING_TOKEN,
    ]
    for reply in replies:
        assert (reply.regarding_type, reply.regarding_id) == (
            RecordType.OPPORTUNITY,
            outbox.deal_id,
        )

    # ann answers the first reply: her email threads under it.
    answer_id = outbox.email("Re: Your quote")
    outbox.queue(answer_id, reply_to_email_id=replies[0].id)
    assert outbox.send().sent == 1
    answer = outbox.get(answer_id)
    (threaded,) = outbox.received(outbox.bob, answer.message_id)
    assert threaded.in_reply_to == replies[0].message_id
    assert threaded.references == (sent.message_id, replies[0].message_id)
    assert threaded.subject == f"Re: Your quote {answer.tracking_token}"


# -- retries and failures --------------------------------------------------------------------


def test_a_451_is_retried_and_then_sent(outbox: Outbox) -> None:
    outbox.connected.smtp.set_faults(
        [SmtpFault(SmtpStage.RCPT, 451, "4.7.1 Greylisted, try again later")]
    )
    email_id = outbox.email()
    outbox.queue(email_id)
    first = outbox.send()
    assert (first.sent, first.retrying, first.error) == (0, 1, None)
    waiting = outbox.get(email_id)
    assert waiting.status is EmailStatus.PENDING_SEND
    assert waiting.delivery_attempts == 1
    assert waiting.send_error is not None
    assert "451 4.7.1 Greylisted" in waiting.send_error
    assert not waiting.maybe_sent  # refused at RCPT: certainly not delivered

    second = outbox.send()
    assert second.sent == 1
    sent = outbox.get(email_id)
    assert sent.status is EmailStatus.SENT
    assert sent.delivery_attempts == 2
    assert sent.send_error is None
    assert len(outbox.received(outbox.bob, sent.message_id)) == 1


def test_transient_errors_give_up_after_the_limit(outbox: Outbox) -> None:
    outbox.connected.smtp.set_faults([SmtpFault(SmtpStage.MAIL, 451, "4.3.0 Try later")] * 3)
    email_id = outbox.email()
    outbox.queue(email_id)
    policy = RetryPolicy(max_attempts=3, base_seconds=0.0)
    for _ in range(3):
        outbox.send(retry_policy=policy)
    failed = outbox.get(email_id)
    assert failed.status is EmailStatus.FAILED
    assert failed.delivery_attempts == 3
    assert failed.send_error is not None
    assert "gave up after 3 attempts" in failed.send_error


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (SmtpFault(SmtpStage.RCPT, 550, "5.1.1 Mailbox unavailable"), "RECIPIENT_REJECTED"),
        (SmtpFault(SmtpStage.DATA, 554, "5.7.1 Message rejected as spam"), "MESSAGE_REJECTED"),
        (SmtpFault(SmtpStage.MAIL, 553, "5.7.1 Sender not owned by user"), "MESSAGE_REJECTED"),
    ],
)
def test_a_5xx_fails_at_once_with_the_servers_text(
    outbox: Outbox, fault: SmtpFault, code: str
) -> None:
    outbox.connected.smtp.set_faults([fault])
    email_id = outbox.email()
    outbox.queue(email_id)
    report = outbox.send()
    assert (report.sent, report.failed, report.error) == (0, 1, None)
    failed = outbox.get(email_id)
    assert failed.status is EmailStatus.FAILED
    assert failed.delivery_attempts == 1
    assert failed.send_error_code == code
    assert failed.send_error is not None
    assert f"{fault.code} {fault.text}" in failed.send_error
    assert outbox.received(outbox.bob, failed.message_id) == []
    # Failed is final until a person sends it again.
    assert outbox.send().sent == 0
    outbox.queue(email_id)
    assert outbox.send().sent == 1
    assert len(outbox.received(outbox.bob, failed.message_id)) == 1


def test_one_connection_serves_a_batch_and_a_bad_email_does_not_stop_it(
    outbox: Outbox,
) -> None:
    ids = [outbox.email(f"Batch {n}") for n in range(4)]
    for email_id in ids:
        outbox.queue(email_id)
    outbox.connected.smtp.set_faults([None, SmtpFault(SmtpStage.RCPT, 550, "5.1.1 No such user")])
    logins = f" {outbox.ann.login}: ok"
    before = outbox.connected.smtp.log_tail(100_000).count(logins)
    report = outbox.send()
    assert (report.sent, report.failed) == (3, 1)
    assert outbox.connected.smtp.log_tail(100_000).count(logins) == before + 1
    statuses = [outbox.get(email_id).status for email_id in ids]
    assert statuses == [
        EmailStatus.SENT,
        EmailStatus.FAILED,
        EmailStatus.SENT,
        EmailStatus.SENT,
    ]

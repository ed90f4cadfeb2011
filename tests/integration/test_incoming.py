"""Incoming email against the real Dovecot: tracked once, against the right record.

Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.core.types import CorrelationMethod, Participation, RecordType
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.blobfiles import STAGING, digest
from crmsync.crm.models import (
    Contact,
    Email,
    ItemFailure,
    MailboxMessage,
    Opportunity,
    QueueItem,
)
from crmsync.crm.settings import TrackingPreferences
from crmsync.tracking.threadindex import new_thread_index
from tests.integration.conftest import Connected, message
from tests.unit.api.conftest import login

ALL = TrackingPreferences(track_scope="all")


def _crm_email(connected: Connected, **values: Any) -> tuple[uuid.UUID, uuid.UUID]:
    """An opportunity and an outgoing CRM email regarding it; returns both ids."""
    admin = connected.admin()
    with connected.store.transaction() as session:
        contact = records.create_record(
            session, admin, Contact, {"last_name": "Buyer", "email1": "nancy@fabrikam.test"}
        )
        deal = records.create_record(session, admin, Opportunity, {"name": "200 seats"})
        email = activities.create_activity(
            session,
            admin,
            Email,
            {
                "subject": "Your quote CRM:0001234",
                "regarding_type": RecordType.OPPORTUNITY,
                "regarding_id": deal.id,
                **values,
            },
            [PartySpec(Participation.TO, RecordType.CONTACT, contact.id)],
        )
        email.message_id = "<quote-1@acme.test>"
        email.tracking_token = "CRM:0001234"
        return deal.id, email.id


def _tracked(connected: Connected) -> list[Email]:
    with connected.store.transaction() as session:
        query = select(Email).where(Email.message_id != "<quote-1@acme.test>")
        return list(session.scalars(query.order_by(Email.occurred_at)))


def test_a_reply_is_tracked_against_the_thread_by_in_reply_to(connected: Connected) -> None:
    connected.add_mailbox("ann")
    deal_id, _ = _crm_email(connected)
    connected.deliver(
        ["ann"],
        message(
            subject="Re: Your quote",
            headers={"In-Reply-To": "<quote-1@acme.test>", "References": "<quote-1@acme.test>"},
        ),
    )
    connected.deliver(["ann"], message(subject="Unrelated newsletter-ish note"))
    report = connected.sync("ann")
    assert (report.seen, report.tracked) == (2, 1)
    (reply,) = _tracked(connected)
    assert (reply.regarding_type, reply.regarding_id) == (RecordType.OPPORTUNITY, deal_id)
    assert reply.correlation_method is CorrelationMethod.IN_REPLY_TO
    sender = next(p for p in reply.parties if p.participation is Participation.FROM)
    assert sender.party_type is RecordType.CONTACT
    with connected.store.transaction() as session:
        reasons = sorted(r.reason for r in session.scalars(select(MailboxMessage)))
    assert any("not a reply to CRM email" in reason for reason in reasons)
    assert any("correlated by in reply to" in reason for reason in reasons)
    # A second pass finds nothing new and tracks nothing twice.
    assert connected.sync("ann").seen == 0
    assert len(_tracked(connected)) == 1


def test_a_reply_without_references_is_correlated_by_its_tracking_token(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann")
    deal_id, _ = _crm_email(connected)
    connected.deliver(["ann"], message(subject="RE: Your quote CRM:0001234"))
    connected.sync("ann")
    (reply,) = _tracked(connected)
    assert reply.correlation_method is CorrelationMethod.TRACKING_TOKEN
    assert reply.regarding_id == deal_id


def test_outlook_thread_index_correlates(connected: Connected) -> None:
    connected.add_mailbox("ann")
    guid = uuid.uuid4()
    deal_id, _ = _crm_email(
        connected,
    )
    with connected.store.transaction() as session:
        email = session.scalars(select(Email)).one()
        email.conversation_guid = str(guid)
        email.tracking_token = None
    from datetime import UTC, datetime

    index = new_thread_index(datetime.now(UTC), guid)
    connected.deliver(["ann"], message(subject="AW: Angebot", headers={"Thread-Index": index}))
    connected.sync("ann")
    (reply,) = _tracked(connected)
    assert reply.correlation_method is CorrelationMethod.CONVERSATION_INDEX
    assert reply.regarding_id == deal_id


def test_one_message_to_three_colleagues_is_one_activity(connected: Connected) -> None:
    for name in ("ann", "bob", "cid"):
        connected.add_mailbox(name, preferences=ALL)
    raw = message(subject="To all three")
    connected.deliver(["ann", "bob", "cid"], raw)
    for name in ("ann", "bob", "cid"):
        connected.sync(name)
    (email,) = _tracked(connected)
    with connected.store.transaction() as session:
        links = session.scalars(select(MailboxMessage).where(MailboxMessage.email_id == email.id))
        assert {link.mailbox_id for link in links} == set(connected.mailboxes.values())


def test_malformed_and_unknown_charset_messages_are_flagged_not_fatal(
    connected: Connected,
) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    unknown_charset = (
        b"From: nancy@fabrikam.test\r\nTo: ann@example.test\r\nSubject: =?x-klingon?Q?qapla?=\r\n"
        b"Message-ID: <klingon@fabrikam.test>\r\nContent-Type: text/plain; charset=x-klingon\r\n"
        b"\r\nHab SoSlI' Quch!\r\n"
    )
    deep = b"".join(
        f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n".encode()
        for i in range(60)
    )
    malformed = b"From: x@y.test\r\nMessage-ID: <deep@y.test>\r\nMIME-Version: 1.0\r\n" + deep
    connected.deliver(["ann"], unknown_charset)
    connected.deliver(["ann"], malformed)
    connected.deliver(["ann"], message(subject="fine"))
    report = connected.sync("ann")
    assert report.seen == 3
    subjects = {email.subject for email in _tracked(connected)}
    assert "fine" in subjects
    assert any("qapla" in subject for subject in subjects)  # kept, decoded as best it can
    with connected.store.transaction() as session:
        failures = list(session.scalars(select(ItemFailure)))
        assert len(failures) == 1
        assert failures[0].code == "MALFORMED_MESSAGE"
        assert failures[0].raw_sha256 is not None  # nothing lost
        assert b"From: x@y.test" in connected.store.blobs.get(failures[0].raw_sha256)


def test_hostile_messages_are_tracked_flagged_and_kept_raw(connected: Connected) -> None:
    """Inputs that once took seconds each, or failed the whole message: a subject of
    70,000 encoded words, 50,000 nested <div>s, a part in charset idna."""
    connected.add_mailbox("ann", preferences=ALL)
    words = b" ".join(b"=?utf-8?q?w?=" for _ in range(70_000))
    nested = b"<div>" * 50_000 + b"deep" + b"</div>" * 50_000
    hostile = {
        b"<words@fabrikam.test>": (b"Subject: " + words, b"text/plain", b"plain body"),
        b"<nested@fabrikam.test>": (b"Subject: nested", b"text/html", nested),
        b"<idna@fabrikam.test>": (
            b"Subject: idna",
            b"text/plain; charset=idna",
            b"caf\xe9 au lait",
        ),
    }
    for message_id, (subject, content_type, body) in hostile.items():
        connected.deliver(
            ["ann"],
            b"From: nancy@fabrikam.test\r\nTo: ann@example.test\r\n" + subject + b"\r\n"
            b"Message-ID: " + message_id + b"\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: " + content_type + b"\r\n\r\n" + body + b"\r\n",
        )
    report = connected.sync("ann")
    assert (report.seen, report.tracked) == (3, 3)
    with connected.store.transaction() as session:
        assert not list(session.scalars(select(ItemFailure)))
        emails = {email.message_id: email for email in session.scalars(select(Email))}
        for message_id in hostile:
            email = emails[message_id.decode()]
            assert email.parse_defects, message_id
            assert email.raw_sha256 is not None
            assert message_id in connected.store.blobs.get(email.raw_sha256)
        assert any("encoded words" in d for d in emails["<words@fabrikam.test>"].parse_defects)
        shown = emails["<nested@fabrikam.test>"]
        assert any("HTML" in d for d in shown.parse_defects)
        assert "<div>" not in shown.description
        assert "deep" in shown.body_text
        assert "caf" in emails["<idna@fabrikam.test>"].body_text
    app = create_app(Settings(), connected.store, connected.box)
    with TestClient(app) as client:
        admin = login(client, "admin-acme", "admin-password")
        idna_id = emails["<idna@fabrikam.test>"].id
        answer = client.get(f"/api/v1/emails/{idna_id}/tracking", headers=admin).json()
    assert any("idna" in defect for defect in answer["parse_defects"])


def test_queue_mailboxes_make_queue_items(connected: Connected) -> None:
    queue_id, _ = connected.add_queue_mailbox("support", preferences=ALL)
    connected.deliver(["support"], message(subject="Help!"))
    connected.sync("support")
    with connected.store.transaction() as session:
        items = list(session.scalars(select(QueueItem).where(QueueItem.queue_id == queue_id)))
        assert len(items) == 1


def test_pop3_leaves_mail_on_the_server_by_default(connected: Connected) -> None:
    connected.add_mailbox("pat", preferences=ALL, pop3=True)
    connected.deliver(["pat"], message(subject="one"))
    connected.deliver(["pat"], message(subject="two"))
    assert connected.sync("pat").tracked == 2
    connected.deliver(["pat"], message(subject="three"))
    assert connected.sync("pat").tracked == 1  # only the new one
    assert connected.sync("pat").seen == 0
    listing = connected.dovecot.doveadm(
        "search", "-u", connected.users["pat"].login, "mailbox", "INBOX", "all"
    )
    assert len(listing.stdout.splitlines()) == 3


def test_pop3_queue_mailbox_deletes_after_processing(connected: Connected) -> None:
    connected.add_queue_mailbox("drop", preferences=ALL, pop3=True, delete_after_processing=True)
    drop = connected.users["drop"]
    for subject in ("a", "b", "c"):
        connected.deliver(["drop"], message(subject=subject))
    assert connected.sync("drop").tracked == 3
    listing = connected.dovecot.doveadm("search", "-u", drop.login, "mailbox", "INBOX", "all")
    assert listing.stdout.strip() == ""
    assert len(_tracked(connected)) == 3
    assert connected.sync("drop").seen == 0


def test_which_email_to_track_follows_the_owners_choice(connected: Connected) -> None:
    connected.add_mailbox("ann", preferences=TrackingPreferences(track_scope="from_crm_records"))
    admin = connected.admin()
    with connected.store.transaction() as session:
        records.create_record(
            session, admin, Contact, {"last_name": "Known", "email1": "known@fabrikam.test"}
        )
    connected.deliver(["ann"], message(sender="known@fabrikam.test", subject="from a contact"))
    connected.deliver(["ann"], message(sender="stranger@elsewhere.test", subject="from nobody"))
    connected.deliver(
        ["ann"],
        message(
            sender="known@fabrikam.test",
            subject="out of office",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    connected.sync("ann")
    assert [email.subject for email in _tracked(connected)] == ["from a contact"]
    with connected.store.transaction() as session:
        assert session.scalar(select(func.count(MailboxMessage.id))) == 3


def test_a_uidvalidity_change_remaps_without_duplicates(connected: Connected) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    for number in range(5):
        connected.deliver(["ann"], message(subject=f"before {number}"))
    assert connected.sync("ann").tracked == 5
    login = connected.users["ann"].login
    connected.dovecot.doveadm("mailbox", "update", "-u", login, "--uid-validity", "4242", "INBOX")
    connected.deliver(["ann"], message(subject="after the renumbering"))
    report = connected.sync("ann")
    assert report.tracked == 1  # only the new message
    assert len(_tracked(connected)) == 6
    assert connected.sync("ann").seen == 0  # and no endless resync
    with connected.store.transaction() as session:
        from crmsync.crm.models import Alert, FolderCursor

        cursor = session.scalars(select(FolderCursor)).one()
        assert cursor.uidvalidity == 4242
        assert cursor.uidvalidity_changes == 1
        codes = {alert.code for alert in session.scalars(select(Alert))}
        assert "UIDVALIDITY_CHANGED" in codes


def test_without_condstore_and_qresync_the_result_is_the_same(connected: Connected) -> None:
    connected.add_mailbox("ann", preferences=ALL)
    connected.add_mailbox("bob", preferences=ALL)
    for number in range(4):
        connected.deliver(["ann", "bob"], message(subject=f"both {number}"))
    plain = connected.sync("ann", ignore_capabilities=("CONDSTORE", "QRESYNC", "IDLE"))
    full = connected.sync("bob")
    assert (plain.seen, plain.tracked) == (full.seen, full.tracked) == (4, 4)
    connected.deliver(["ann"], message(subject="later"))
    assert connected.sync("ann", ignore_capabilities=("CONDSTORE", "QRESYNC")).tracked == 1
    assert len(_tracked(connected)) == 5


def test_pop3_uidl_renumbering_is_remapped_not_reimported(connected: Connected) -> None:
    connected.add_mailbox("pat", preferences=ALL, pop3=True)
    for number in range(3):
        connected.deliver(["pat"], message(subject=f"old {number}"))
    assert connected.sync("pat").tracked == 3
    # Dovecot's UIDLs embed UIDVALIDITY (pop3_uidl_format = %08Xu%08Xv): a new
    # UIDVALIDITY renames every UIDL at once, as a server migration would.
    connected.dovecot.doveadm(
        "mailbox", "update", "-u", connected.users["pat"].login, "--uid-validity", "777", "INBOX"
    )
    connected.deliver(["pat"], message(subject="new"))
    report = connected.sync("pat")
    assert report.tracked == 1
    assert len(_tracked(connected)) == 4
    assert connected.sync("pat").seen == 0


def test_blocked_attachments_are_refused_and_said_so(connected: Connected) -> None:
    from email.message import EmailMessage

    connected.add_mailbox("ann", preferences=ALL)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "nancy@fabrikam.test", "ann@example.test", "files"
    mail["Message-ID"] = "<files@fabrikam.test>"
    mail.set_content("two files")
    mail.add_attachment(b"%PDF-1.4 fine", maintype="application", subtype="pdf", filename="q.pdf")
    mail.add_attachment(
        b"MZ\x90\x00", maintype="application", subtype="octet-stream", filename="invoice.exe"
    )
    connected.deliver(["ann"], mail.as_bytes())
    connected.sync("ann")
    (email,) = _tracked(connected)
    assert [a.filename for a in email.attachments] == ["q.pdf"]
    with connected.store.transaction() as session:
        ledger = session.scalars(select(MailboxMessage)).one()
        assert "invoice.exe (blocked type)" in ledger.reason
    blobs = connected.store.blobs
    assert blobs.get(email.attachments[0].blob_sha256) == b"%PDF-1.4 fine"
    assert not blobs.path_for(digest(b"MZ\x90\x00")).exists()  # refused, so not kept
    assert not list((blobs.root / STAGING).glob("*"))


def test_untracked_email_leaves_only_its_raw_bytes(connected: Connected) -> None:
    from email.message import EmailMessage

    connected.add_mailbox("ann")  # default scope: replies to CRM email only
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "x@elsewhere.test", "ann@example.test", "news"
    mail.set_content("not for the CRM")
    mail.add_attachment(b"%PDF-1.4 brochure", maintype="application", subtype="pdf")
    connected.deliver(["ann"], mail.as_bytes())
    connected.sync("ann")
    assert _tracked(connected) == []
    blobs = connected.store.blobs
    with connected.store.transaction() as session:
        ledger = session.scalars(select(MailboxMessage)).one()
    assert ledger.raw_sha256 is not None
    assert b"not for the CRM" in blobs.get(ledger.raw_sha256)
    assert not blobs.path_for(digest(b"%PDF-1.4 brochure")).exists()
    assert not list((blobs.root / STAGING).glob("*"))


def test_an_unknown_sender_becomes_a_contact_when_the_owner_wants_it(
    connected: Connected,
) -> None:
    connected.add_mailbox(
        "ann",
        preferences=TrackingPreferences(track_scope="all", create_for_unknown_sender="contact"),
    )
    connected.deliver(["ann"], message(sender="Tom Newman <tom@newco.test>", subject="hi"))
    connected.sync("ann")
    (email,) = _tracked(connected)
    with connected.store.transaction() as session:
        contact = session.scalars(select(Contact).where(Contact.email1 == "tom@newco.test")).one()
        assert (contact.first_name, contact.last_name) == ("Tom", "Newman")
    sender = next(p for p in email.parties if p.participation is Participation.FROM)
    assert (sender.party_type, sender.party_id) == (RecordType.CONTACT, contact.id)


def test_mail_before_the_profiles_start_date_is_not_tracked(connected: Connected) -> None:
    from datetime import UTC, datetime

    from crmsync.crm.models import EmailServerProfile

    connected.add_mailbox("ann", preferences=ALL)
    with connected.store.transaction() as session:
        profile = session.get(EmailServerProfile, connected.profile_id)
        assert profile is not None
        profile.process_email_after = datetime(2030, 1, 1, tzinfo=UTC)
    connected.deliver(["ann"], message(subject="too early"))
    assert connected.sync("ann").tracked == 0
    with connected.store.transaction() as session:
        ledger = session.scalars(select(MailboxMessage)).one()
        assert "process email received after" in ledger.reason


def test_the_api_says_why_an_email_was_tracked(connected: Connected) -> None:
    connected.add_mailbox("ann")
    _crm_email(connected)
    connected.deliver(
        ["ann"], message(subject="Re: Your quote", headers={"In-Reply-To": "<quote-1@acme.test>"})
    )
    connected.sync("ann")
    (reply,) = _tracked(connected)
    app = create_app(Settings(), connected.store, connected.box)
    with TestClient(app) as client:
        admin = login(client, "admin-acme", "admin-password")
        answer = client.get(f"/api/v1/emails/{reply.id}/tracking", headers=admin).json()
    assert answer["correlation_method"] == "in_reply_to"
    (sighting,) = answer["sightings"]
    assert sighting["folder"] == "INBOX"
    assert "correlated by in reply to" in sighting["reason"]

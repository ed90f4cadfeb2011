"""Send benchmark: queued CRM emails sent per second through the real SMTP relay.

    uv run python -m bench.send [--emails 1000] [--database sqlite|postgresql]
                                [--local] [--no-sent-copies]

A real Dovecot and the aiosmtpd relay in front of it (tests/servers), a fresh CRM store
(bench/setup.py) with one approved mailbox whose outgoing channel is enabled, and
``--emails`` emails queued (pending_send) to a contact address. One ``sync_outgoing``
pass sends them all over one SMTP session (STARTTLS off: loopback), with everything a
real pass does per email — claim and commit, token, Message-ID and email key, MIME
composition, the raw bytes kept in the blob store, the outcome committed — and then
appends the Sent copies over IMAP. The recipient is on another domain (the relay
spools it) unless ``--local``, which delivers each message into a Dovecot mailbox over
LMTP before the relay answers. Prints emails/s for the SMTP phase and for the whole
pass (with Sent copies). Figures only, never pass/fail.
"""

from __future__ import annotations

import argparse
import time
import uuid
from pathlib import Path

from sqlalchemy import select, update

from bench.setup import connected_store, work_directory
from crmsync.core.types import Channel, EmailStatus, Participation
from crmsync.crm import activities, outbound
from crmsync.crm.access import load_principal
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Email, EmailServerProfile, Mailbox, MailboxChannel, User
from crmsync.crm.store import Store
from crmsync.sync.outgoing import OutgoingOptions, sync_outgoing
from crmsync.sync.outgoing.decide import Verdict
from tests.servers import DovecotServer, SmtpServer, fresh_database

BODY = "Dear customer,\n\nplease find our offer below.\n\n" + "Line of the offer.\n" * 40


def prepare(store: Store, mailbox_id: uuid.UUID, smtp: SmtpServer, recipient: str, n: int) -> None:
    """Point the profile at the relay, enable outgoing, queue ``n`` emails."""
    with store.transaction() as session:
        session.execute(
            update(EmailServerProfile).values(outgoing_port=smtp.port, outgoing_security="plain")
        )
        session.execute(
            update(MailboxChannel)
            .where(
                MailboxChannel.mailbox_id == mailbox_id, MailboxChannel.channel == Channel.OUTGOING
            )
            .values(enabled=True)
        )
    with store.transaction() as session:
        admin_user = session.scalars(select(User).order_by(User.created_at)).first()
        mailbox = session.get(Mailbox, mailbox_id)
        assert admin_user is not None
        assert mailbox is not None
        admin = load_principal(admin_user)
        for number in range(n):
            email = activities.create_activity(
                session,
                admin,
                Email,
                {
                    "subject": f"Offer {number}",
                    "body_text": BODY,
                    "description": f"<p>{BODY}</p>".replace("\n", "<br>"),
                },
                [PartySpec(Participation.TO, address=recipient, display_name="Customer")],
                owner_id=mailbox.user_id,
            )
            outbound.request_send(session, admin, email)


def run(
    dovecot: DovecotServer, smtp: SmtpServer, work: Path, args: argparse.Namespace, url: str | None
) -> None:
    sender = dovecot.add_user("sender", "sender-password")
    recipient = (
        dovecot.add_user("customer", "customer-password").address
        if args.local
        else "customer@fabrikam.example"
    )
    store, box, mailbox_id = connected_store(dovecot, sender, work / "crm", url)
    try:
        prepare(store, mailbox_id, smtp, recipient, args.emails)
        if args.no_sent_copies:
            with store.transaction() as session:
                session.execute(update(EmailServerProfile).values(save_sent_copy=False))
        last: list[float] = []

        def seen(_email_id: uuid.UUID, verdict: Verdict) -> None:
            last[:] = [time.perf_counter()]

        started = time.perf_counter()
        report = sync_outgoing(
            store, box, mailbox_id, OutgoingOptions(max_emails=args.emails, on_email=seen)
        )
        finished = time.perf_counter()
        assert report.error is None, report.error
        with store.transaction() as session:
            sent = session.scalars(select(Email.id).where(Email.status == EmailStatus.SENT)).all()
        smtp_seconds = last[0] - started
        print(f"emails queued: {args.emails}, sent: {len(sent)}, Sent copies: {report.copies}")
        print(
            f"database: {args.database}, recipient: {'local (LMTP)' if args.local else 'spooled'}"
        )
        print(f"SMTP phase   {smtp_seconds:8.2f} s  {report.sent / smtp_seconds:9.1f} emails/s")
        print(
            f"whole pass   {finished - started:8.2f} s  "
            f"{report.sent / (finished - started):9.1f} emails/s (incl. Sent copies)"
        )
    finally:
        store.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emails", type=int, default=1000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--local", action="store_true", help="Deliver into Dovecot (LMTP).")
    parser.add_argument("--no-sent-copies", action="store_true")
    args = parser.parse_args()
    with (
        work_directory("crmsync-bench-send-") as work,
        DovecotServer(work / "dovecot") as dovecot,
        SmtpServer.in_front_of(dovecot, directory=work / "smtp") as smtp,
    ):
        if args.database == "postgresql":
            with fresh_database() as url:
                run(dovecot, smtp, work, args, url)
        else:
            run(dovecot, smtp, work, args, None)


if __name__ == "__main__":
    main()

"""Fill a fresh crmsync with a small sales team, customers and mail, for the demo.

    uv run python scripts/seed_demo.py DIR/servers.json

Reads the ports and users the demo servers (``python -m tests.servers``) wrote, then:
a profile for the local Dovecot and SMTP relay (STARTTLS, trusting their CA), users
alice and bob with approved, tested mailboxes, a support queue, two accounts with
contacts, an opportunity and a case, CRM email on their timelines, and customer mail
delivered into alice's INBOX. Running it twice changes nothing.
"""

from __future__ import annotations

import json
import smtplib
import sys
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from sqlalchemy import select

from crmsync.config import load_settings
from crmsync.core.types import Approval, Participation, RecordType, ServerType
from crmsync.crm import activities, directory, mailboxes, profiles, records
from crmsync.crm.access import load_principal
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import (
    Account,
    Case,
    Contact,
    Email,
    Mailbox,
    Opportunity,
    Queue,
    SecurityRole,
    User,
)
from crmsync.crm.secrets import SecretBox
from crmsync.crm.setup import SALESPERSON, root_business_unit
from crmsync.crm.store import Store
from crmsync.sync.check_enable import check_and_enable


def _deliver_customer_mail(servers: dict[str, Any], to: str) -> None:
    host, port = servers["dovecot"]["host"], servers["dovecot"]["lmtp"]
    sent = datetime.now(UTC) - timedelta(hours=3)
    for sender, subject, body in (
        ("Nancy Buyer <nancy@fabrikam.test>", "Quote for 200 seats", "Could you send a quote?"),
        ("Tom Admin <tom@contoso.test>", "Login problem", "Our users cannot sign in since 9:00."),
    ):
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = sender, to, subject
        message["Date"] = format_datetime(sent)
        message["Message-ID"] = make_msgid(domain=sender.split("@")[1].rstrip(">"))
        message.set_content(body)
        with smtplib.LMTP(host, port, timeout=10) as lmtp:
            lmtp.send_message(message)
        sent += timedelta(minutes=40)


def seed(servers: dict[str, Any]) -> None:
    settings = load_settings()
    store = Store.from_settings(settings)
    box = SecretBox.from_settings(settings)
    users = {u["address"].split("@")[0]: u for u in servers["users"]}
    with store.transaction() as session:
        admin = session.scalars(select(User).order_by(User.created_at)).first()
        assert admin is not None, "run `crmsync init` first"
        if session.scalar(select(Account).limit(1)) is not None:
            print("demo data already present")
            return
        principal = load_principal(admin)
        ca_cert = servers.get("ca_cert")
        profiles.create_profile(
            session,
            principal,
            {
                "name": "Local Dovecot",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": servers["host"],
                "incoming_port": servers["dovecot"]["imap"],
                "incoming_security": "starttls" if ca_cert else "plain",
                "outgoing_host": servers["host"],
                "outgoing_port": servers["smtp"]["smtp"],
                "outgoing_security": "starttls" if ca_cert else "plain",
                "allow_plaintext": not ca_cert,
                "ca_pem": Path(ca_cert).read_text() if ca_cert else None,
                "is_default": True,
            },
            box,
        )
        salesperson = session.scalar(select(SecurityRole).where(SecurityRole.name == SALESPERSON))
        assert salesperson is not None
        unit = root_business_unit(session, principal.organisation_id).id
        people = {}
        for name in ("alice", "bob"):
            people[name] = directory.create_user(
                session,
                principal,
                username=name,
                full_name=name.title(),
                business_unit_id=unit,
                email_addresses=[users[name]["address"]],
                password=f"{name}-demo",
                role_ids=[salesperson.id],
            )
            # Track mail from known customers, so the demo's inbox shows up in the CRM.
            people[name].settings = {"track_scope": "from_crm_records"}
        directory.create_queue(
            session,
            principal,
            name="Support",
            email=users["carol"]["address"],
            business_unit_id=unit,
        )
        for mailbox in session.scalars(select(Mailbox)):
            owner = session.get(User, mailbox.user_id) if mailbox.user_id else None
            queue = session.get(Queue, mailbox.queue_id) if mailbox.queue_id else None
            address = owner.email_addresses[0] if owner and owner.email_addresses else None
            address = address or (queue.email if queue else None)
            match = next((u for u in users.values() if u["address"] == address), None)
            if match is None:
                continue
            mailboxes.update_mailbox(
                session, principal, mailbox, {"password": match["password"]}, box
            )
            mailboxes.set_approval(session, principal, mailbox, Approval.APPROVED)
        alice = load_principal(people["alice"])
        fabrikam = records.create_record(
            session, alice, Account, {"name": "Fabrikam", "email1": "info@fabrikam.test"}
        )
        contoso = records.create_record(
            session, alice, Account, {"name": "Contoso", "email1": "info@contoso.test"}
        )
        nancy = records.create_record(
            session,
            alice,
            Contact,
            {
                "first_name": "Nancy",
                "last_name": "Buyer",
                "email1": "nancy@fabrikam.test",
                "account_id": fabrikam.id,
            },
        )
        records.create_record(
            session,
            alice,
            Contact,
            {
                "first_name": "Tom",
                "last_name": "Admin",
                "email1": "tom@contoso.test",
                "account_id": contoso.id,
            },
        )
        deal = records.create_record(
            session, alice, Opportunity, {"name": "200 seats", "account_id": fabrikam.id}
        )
        records.create_record(
            session, alice, Case, {"title": "Sign-in fails", "account_id": contoso.id}
        )
        activities.create_activity(
            session,
            alice,
            Email,
            {
                "subject": "Welcome to our pilot",
                "description": "<p>Hello Nancy, here is how the pilot works.</p>",
                "regarding_type": RecordType.OPPORTUNITY,
                "regarding_id": deal.id,
            },
            [
                PartySpec(Participation.FROM, RecordType.USER, people["alice"].id),
                PartySpec(Participation.TO, RecordType.CONTACT, nancy.id),
            ],
        )
        mailbox_ids = [m.id for m in session.scalars(select(Mailbox)) if m.has_own_credentials]
    for mailbox_id in mailbox_ids:
        run = check_and_enable(store, box, mailbox_id)
        print(f"Test & Enable {mailbox_id}: {'ok' if run.ok else 'failed'}")
    _deliver_customer_mail(servers, users["alice"]["address"])
    store.dispose()
    print("demo data created: users alice/alice-demo and bob/bob-demo")


if __name__ == "__main__":
    seed(json.loads(Path(sys.argv[1]).read_text()))

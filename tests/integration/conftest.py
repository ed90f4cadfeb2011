"""A connected organisation for engine tests: a profile for the real Dovecot and SMTP
relay, users with approved mailboxes enabled by a real Test & Enable, and helpers to
deliver mail and run a sync pass. Runs on SQLite and PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.core.types import Approval, ServerType
from crmsync.crm import directory, mailboxes, profiles
from crmsync.crm.access import Principal, load_principal
from crmsync.crm.models import Mailbox, User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import TrackingPreferences
from crmsync.crm.store import Store
from crmsync.sync.check_enable import check_and_enable
from crmsync.sync.incoming import IncomingOptions, IncomingReport, sync_incoming
from tests.conftest import Org
from tests.servers import DovecotServer, MailUser, SmtpServer
from tests.unit.api.conftest import login


@dataclass
class Connected:
    """An organisation wired to the test mail servers."""

    org: Org
    store: Store
    box: SecretBox
    dovecot: DovecotServer
    smtp: SmtpServer
    profile_id: uuid.UUID
    secret_key: str = ""
    mailboxes: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, MailUser] = field(default_factory=dict)

    def admin(self) -> Principal:
        with self.store.transaction() as session:
            user = session.get(User, self.org.admin_id)
            assert user is not None
            return load_principal(user)

    def add_mailbox(
        self, name: str, *, preferences: TrackingPreferences | None = None, pop3: bool = False
    ) -> uuid.UUID:
        """A user with a real Dovecot account, an approved and tested mailbox."""
        mail_user = self.dovecot.add_user(f"{name}-{uuid.uuid4().hex[:6]}", "pw-" + name * 2)
        admin = self.admin()
        values: dict[str, Any] = {"password": mail_user.password}
        if pop3:
            values["profile_id"] = self.pop3_profile()  # its own transaction, before ours
        with self.store.transaction() as session:
            user = directory.create_user(
                session,
                admin,
                username=mail_user.name,
                full_name=name.title(),
                business_unit_id=self.org.root_unit_id,
                email_addresses=[mail_user.address],
            )
            if preferences is not None:
                user.settings = preferences.model_dump(mode="json")
            mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == user.id)).one()
            mailboxes.update_mailbox(session, admin, mailbox, values, self.box)
            mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
            mailbox_id = mailbox.id
        run = check_and_enable(self.store, self.box, mailbox_id)
        assert run.ok, run.steps
        self.mailboxes[name] = mailbox_id
        self.users[name] = mail_user
        return mailbox_id

    def add_queue_mailbox(
        self,
        name: str,
        *,
        preferences: TrackingPreferences | None = None,
        pop3: bool = False,
        delete_after_processing: bool = False,
    ) -> tuple[uuid.UUID, uuid.UUID]:
        """A queue with a real Dovecot account and a tested mailbox: (queue, mailbox)."""
        mail_user = self.dovecot.add_user(f"{name}-{uuid.uuid4().hex[:6]}", "pw-" + name * 2)
        admin = self.admin()
        values: dict[str, Any] = {"password": mail_user.password}
        if pop3:
            values["profile_id"] = self.pop3_profile()
        if delete_after_processing:
            values["delete_after_processing"] = True
        with self.store.transaction() as session:
            queue = directory.create_queue(
                session,
                admin,
                name=name.title(),
                email=mail_user.address,
                business_unit_id=self.org.root_unit_id,
            )
            if preferences is not None:
                queue.settings = preferences.model_dump(mode="json")
            mailbox = session.scalars(select(Mailbox).where(Mailbox.queue_id == queue.id)).one()
            mailboxes.update_mailbox(session, admin, mailbox, values, self.box)
            mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
            queue_id, mailbox_id = queue.id, mailbox.id
        run = check_and_enable(self.store, self.box, mailbox_id)
        assert run.ok, run.steps
        self.mailboxes[name] = mailbox_id
        self.users[name] = mail_user
        return queue_id, mailbox_id

    def pop3_profile(self) -> uuid.UUID:
        with self.store.transaction() as session:
            profile = profiles.create_profile(
                session,
                self.admin(),
                {
                    "name": f"pop3-{uuid.uuid4().hex[:6]}",
                    "server_type": ServerType.POP3_SMTP,
                    "incoming_host": "127.0.0.1",
                    "incoming_port": self.dovecot.pop3_port,
                    "incoming_security": "starttls",
                    "outgoing_host": "127.0.0.1",
                    "outgoing_port": self.smtp.port,
                    "outgoing_security": "starttls",
                    "ca_pem": _ca(self.dovecot),
                },
                self.box,
            )
            return profile.id

    def sync(self, name: str, **options: Any) -> IncomingReport:
        report = sync_incoming(
            self.store, self.box, self.mailboxes[name], IncomingOptions(**options)
        )
        assert report.ran, report.why_not
        assert report.error is None, report.error
        return report

    def deliver(self, to: list[str], raw: bytes) -> None:
        for name in to:
            self.dovecot.deliver(self.users[name], raw)


def _ca(dovecot: DovecotServer) -> str:
    assert dovecot.ca_cert is not None
    return dovecot.ca_cert.read_text()


def message(
    *,
    sender: str = "Nancy Buyer <nancy@fabrikam.test>",
    to: str = "someone@example.test",
    subject: str = "Hello",
    body: str = "Hi there.",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = message_id or make_msgid(domain="fabrikam.test")
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def connected(store: Store, org: Org, dovecot: DovecotServer, smtp_server: SmtpServer) -> Connected:
    key = SecretBox.generate_key()
    box = SecretBox([key])
    with store.transaction() as session:
        user = session.get(User, org.admin_id)
        assert user is not None
        profile = profiles.create_profile(
            session,
            load_principal(user),
            {
                "name": "Dovecot",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": dovecot.imap_port,
                "incoming_security": "starttls",
                "outgoing_host": "127.0.0.1",
                "outgoing_port": smtp_server.port,
                "outgoing_security": "starttls",
                "ca_pem": _ca(dovecot),
                "is_default": True,
            },
            box,
        )
        profile_id = profile.id
    return Connected(org, store, box, dovecot, smtp_server, profile_id, secret_key=key)


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    """The API on the test store, with a key of its own for the credentials it is given."""
    box = SecretBox([SecretBox.generate_key()])
    app = create_app(Settings(data_dir=store.blobs.root.parent), store, box)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def admin(client: TestClient) -> dict[str, str]:
    return login(client, "admin-acme", "admin-password")

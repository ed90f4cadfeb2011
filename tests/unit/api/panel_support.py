"""An API client for the side panel's tests, the panel's Bearer header, and a message a
mailbox saw but did not track."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from crmsync.api.app import API_PREFIX
from crmsync.app import create_app
from crmsync.config import Settings
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Mailbox, MailboxMessage, User
from crmsync.crm.store import Store

PANEL = f"{API_PREFIX}/panel"


def panel_client(store: Store) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=store.blobs.root.parent), store)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_seen_message(
    store: Store,
    user_id: uuid.UUID,
    message_id: str,
    *,
    sender: str,
    to: str,
    subject: str,
) -> None:
    """A message the user's mailbox saw and did not track, its bytes in the blob store:
    what the incoming engine leaves for a message its filters passed over. The user gets
    a mailbox if they have none."""
    raw = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: {message_id}\r\nDate: Mon, 2 Mar 2026 09:30:00 +0000\r\n\r\n"
        "Hello, could you send us a quote?\r\n"
    ).encode()
    with store.transaction() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == user_id)).first()
        if mailbox is None:
            user = session.get(User, user_id)
            assert user is not None
            mailbox = create_mailbox_for(session, user=user)
        seen = select(func.count()).where(MailboxMessage.mailbox_id == mailbox.id)
        uid = 1 + (session.scalar(seen) or 0)
        session.add(
            MailboxMessage(
                mailbox_id=mailbox.id,
                folder="INBOX",
                uidvalidity=1,
                uid=uid,
                message_id=message_id,
                raw_sha256=store.blobs.put(session, raw),
                tracked=False,
                reason="the sender is not a CRM record",
            )
        )

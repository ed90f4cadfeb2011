"""Queue mailboxes that read the in-memory mail server, for incoming engine tests.

``MailWorld`` makes, in an organisation, a business unit of its own with one IMAP and one
POP3 profile and a queue mailbox per name — approved, incoming enabled, tracking all
email — each with an account on a ``MemoryMailServer``. ``sync`` runs the real
``sync_incoming`` (through the channel runner) in batches of two. Worlds in one
organisation never meet: their messages carry a token of their own (``message``: in the
Message-ID, sender, subject and body, so neither keys nor correlation cross), and their
emails are owned by their unit. ``what_is_stored`` is every row an incoming pass
may write for the world, to tell whether a pass wrote anything.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.connectors.memory import MemoryFolder, MemoryMailServer
from crmsync.core.errors import RetryPolicy
from crmsync.core.types import Approval, Channel, ServerType
from crmsync.crm import directory, mailboxes, profiles
from crmsync.crm.access import Principal
from crmsync.crm.models import Email, FolderCursor, ItemFailure, Mailbox, MailboxMessage
from crmsync.crm.models.sync_state import Pop3Seen
from crmsync.crm.secrets import SecretBox
from crmsync.crm.settings import TrackingPreferences
from crmsync.sync.incoming import IncomingOptions, IncomingReport, sync_incoming
from tests.conftest import Org

PASSWORD = "secret"


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Box:
    name: str
    mailbox_id: uuid.UUID
    address: str
    pop3: bool


@dataclass(frozen=True)
class Stored:
    """Every row an incoming pass may write for a world's mailboxes."""

    emails: frozenset[uuid.UUID]
    ledger: frozenset[uuid.UUID]
    failures: frozenset[tuple[uuid.UUID, int]]
    cursors: frozenset[tuple[Any, ...]]
    uidls: frozenset[tuple[Any, ...]]

    def difference(self, later: Stored) -> str:
        """``"ledger: +2 -0, cursors: +1 -1"``: what changed from this to ``later``."""
        return ", ".join(
            f"{name}: +{len(getattr(later, name) - getattr(self, name))}"
            f" -{len(getattr(self, name) - getattr(later, name))}"
            for name in ("emails", "ledger", "failures", "cursors", "uidls")
            if getattr(later, name) != getattr(self, name)
        )


class MailWorld:
    def __init__(
        self,
        org: Org,
        server: MemoryMailServer,
        names: tuple[str, ...],
        *,
        pop3: tuple[str, ...] = (),
    ) -> None:
        self.store = org.store
        self.server = server
        self.box = SecretBox([SecretBox.generate_key()])
        self.boxes: dict[str, Box] = {}
        self.passes = 0
        self.token = uuid.uuid4().hex[:10]
        with self.store.transaction() as session:
            admin = org.principal(session, org.admin_id)
            self.unit_id = directory.create_business_unit(
                session, admin, name=f"Unit {self.token}", parent_id=org.root_unit_id
            ).id
            imap_profile = self._profile(session, admin, ServerType.IMAP_SMTP, 143)
            pop3_profile = self._profile(session, admin, ServerType.POP3_SMTP, 110)
            for name in names:
                address = f"{name}-{self.token}@acme.example"
                queue = directory.create_queue(
                    session,
                    admin,
                    name=f"{name.title()} {self.token}",
                    email=address,
                    business_unit_id=self.unit_id,
                )
                queue.settings = TrackingPreferences(track_scope="all").model_dump(mode="json")
                mailbox = session.scalars(select(Mailbox).where(Mailbox.queue_id == queue.id)).one()
                profile = pop3_profile if name in pop3 else imap_profile
                values = {"password": PASSWORD, "profile_id": profile}
                mailboxes.update_mailbox(session, admin, mailbox, values, self.box)
                mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
                mailbox.channel(Channel.INCOMING).enabled = True
                server.add_account(address, PASSWORD)
                self.boxes[name] = Box(name, mailbox.id, address, name in pop3)

    def _profile(
        self, session: Session, admin: Principal, server_type: ServerType, port: int
    ) -> uuid.UUID:
        profile = profiles.create_profile(
            session,
            admin,
            {
                "name": f"Memory {server_type.value} {self.token}",
                "server_type": server_type,
                "incoming_host": "mail.memory.test",
                "incoming_port": port,
                "incoming_security": "plain",
                "outgoing_host": "mail.memory.test",
                "outgoing_port": 25,
                "outgoing_security": "plain",
                "allow_plaintext": True,
            },
            self.box,
        )
        return profile.id

    # -- mail ----------------------------------------------------------------------------
    def message_id(self, number: int) -> str:
        return f"<m{number}.{self.token}@fabrikam.example>"

    def message(self, number: int, to: list[str], *, message_id: bool = True) -> bytes:
        """A plain customer email to the named mailboxes, the same bytes in each."""
        lines = [
            f"From: Customer {number} <c{number}.{self.token}@fabrikam.example>",
            f"To: {', '.join(self.boxes[name].address for name in to)}",
            f"Subject: Order {number} ({self.token})",
            "Date: Tue, 01 Dec 2026 10:00:00 +0000",
            *([f"Message-ID: {self.message_id(number)}"] if message_id else []),
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "",
            f"Please send order {number} ({self.token}).",
            "",
        ]
        return "\r\n".join(lines).encode()

    def malformed(self, number: int) -> bytes:
        """Bytes no parser makes a message of (there is no header section at all)."""
        return f"\x00\x01 not a message: {number} ({self.token})\r\n".encode()

    def inbox(self, name: str) -> MemoryFolder:
        return self.server.accounts[self.boxes[name].address].inbox

    # -- passes --------------------------------------------------------------------------
    def options(self, **values: Any) -> IncomingOptions:
        """A pass as a new worker (every earlier one counts as gone), in batches of two."""
        self.passes += 1
        defaults: dict[str, Any] = {
            "worker": f"worker-{self.token}-{self.passes}",
            "lease_ttl": timedelta(microseconds=1),
            "retry_policy": RetryPolicy(max_attempts=10_000, base_seconds=0.0),
            "batch_messages": 2,
            "open_imap": self.server.open_imap,
            "open_pop3": self.server.open_pop3,
        }
        return IncomingOptions(**(defaults | values))

    def sync(self, name: str, **values: Any) -> IncomingReport:
        mailbox_id = self.boxes[name].mailbox_id
        return sync_incoming(self.store, self.box, mailbox_id, self.options(**values))

    # -- what is stored ------------------------------------------------------------------
    def mailbox_ids(self) -> list[uuid.UUID]:
        return [box.mailbox_id for box in self.boxes.values()]

    def emails(self, session: Session) -> dict[uuid.UUID, str | None]:
        """The world's emails: ``{id: Message-ID}``."""
        found = session.execute(
            select(Email.id, Email.message_id).where(Email.owning_business_unit_id == self.unit_id)
        )
        return {email_id: message_id for email_id, message_id in found}

    def ledger(self, session: Session) -> list[MailboxMessage]:
        return list(
            session.scalars(
                select(MailboxMessage).where(MailboxMessage.mailbox_id.in_(self.mailbox_ids()))
            )
        )

    def what_is_stored(self) -> Stored:
        ids = self.mailbox_ids()
        with self.store.transaction() as session:
            failures = session.scalars(select(ItemFailure).where(ItemFailure.mailbox_id.in_(ids)))
            cursors = session.scalars(select(FolderCursor).where(FolderCursor.mailbox_id.in_(ids)))
            uidls = session.scalars(select(Pop3Seen).where(Pop3Seen.mailbox_id.in_(ids)))
            return Stored(
                emails=frozenset(self.emails(session)),
                ledger=frozenset(row.id for row in self.ledger(session)),
                failures=frozenset((row.id, row.attempts) for row in failures),
                cursors=frozenset(
                    (
                        c.mailbox_id,
                        c.uidvalidity,
                        c.next_uid,
                        c.highestmodseq,
                        c.uidvalidity_changes,
                    )
                    for c in cursors
                ),
                uidls=frozenset((p.mailbox_id, p.uidl, p.message_id, p.deleted) for p in uidls),
            )

"""What the sync engines remember between runs: folder cursors, POP3 UIDL sets, and which
mailbox saw which message.

``FolderCursor`` is an IMAP folder's position (RFC 3501 UIDVALIDITY/UIDNEXT, RFC 7162
HIGHESTMODSEQ); it advances only in the transaction that stores what it covers.
``Pop3Seen`` is a POP3 mailbox's set of processed UIDLs (RFC 1939). ``MailboxMessage`` is
one message as one mailbox saw it — tracked (pointing at its email activity) or not
(with the reason) — so a UIDVALIDITY change or a server migration re-maps known messages
instead of importing them again. ``EmailKey`` makes "one message, one activity" a
database constraint: the same message in three colleagues' mailboxes is tracked once —
and a message a person untracked stays untracked, whichever mailbox sees it next.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from crmsync.crm.db import Base, IdMixin, utcnow


class FolderCursor(IdMixin, Base):
    __tablename__ = "folder_cursors"
    __table_args__ = (UniqueConstraint("mailbox_id", "folder"),)

    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    # Every UID below this has been processed (or deliberately skipped).
    next_uid: Mapped[int] = mapped_column(BigInteger, default=1)
    highestmodseq: Mapped[int | None] = mapped_column(BigInteger)
    uidvalidity_changes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Pop3Seen(IdMixin, Base):
    __tablename__ = "pop3_seen"
    __table_args__ = (UniqueConstraint("mailbox_id", "uidl"),)

    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    uidl: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(998))
    # Deleted from the server (delete-after-processing), or gone from it.
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class MailboxMessage(IdMixin, Base):
    __tablename__ = "mailbox_messages"
    __table_args__ = (
        UniqueConstraint("mailbox_id", "folder", "uidvalidity", "uid"),
        Index("ix_mailbox_messages_message_id", "mailbox_id", "message_id"),
    )

    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    folder: Mapped[str] = mapped_column(String(500))
    uidvalidity: Mapped[int] = mapped_column(BigInteger, default=0)
    uid: Mapped[int] = mapped_column(BigInteger, default=0)  # 0 for POP3
    uidl: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(998))
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("emails.id", ondelete="SET NULL"), index=True
    )
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    tracked: Mapped[bool] = mapped_column(Boolean, default=False)
    # Why it was (not) tracked and how it was correlated, for people asking "why?".
    reason: Mapped[str] = mapped_column(Text, default="")
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class EmailKey(Base):
    """One row per distinct message per organisation: Message-ID, or a content key.

    The row is the message's fate in the organisation: tracked as ``email_id``, or — a
    tombstone, ``email_id`` NULL — untracked by a person (``untracked_by_id``, at
    ``untracked_at``), so that no mailbox that sees the message later tracks it again.
    Deleting a tracked email deletes its key (the message may then be tracked anew);
    untracking turns the key into a tombstone first (crmsync.crm.email_actions). Tracking
    it by hand later points the tombstone at the new email again.
    """

    __tablename__ = "email_keys"
    __table_args__ = (
        CheckConstraint(
            "email_id IS NOT NULL OR untracked_at IS NOT NULL", name="tracked_or_untracked"
        ),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(998), primary_key=True)
    email_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("emails.id", ondelete="CASCADE"), index=True
    )
    untracked_at: Mapped[datetime | None] = mapped_column()
    untracked_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )

    @property
    def is_tombstone(self) -> bool:
        return self.email_id is None


class TokenCounter(Base):
    """The last tracking-token number handed out in an organisation.

    Outgoing email takes the next number with one atomic ``UPDATE ... SET last_number =
    last_number + 1 RETURNING last_number`` (crmsync.crm.outbound), so workers on many
    machines never hand out the same number.
    """

    __tablename__ = "token_counters"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True
    )
    last_number: Mapped[int] = mapped_column(BigInteger, default=0)


class QueueItem(IdMixin, Base):
    __tablename__ = "queue_items"
    __table_args__ = (UniqueConstraint("queue_id", "activity_id"),)

    queue_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("queues.id", ondelete="CASCADE"))
    activity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    worked_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

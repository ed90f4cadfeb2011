"""Activities — email, appointment, task — sharing one activity core, and their parties.

The core table ``activities`` holds what every activity has (subject, owner, regarding
record, state, direction, schedule); ``emails``, ``appointments`` and ``tasks`` hold the
rest (joined-table inheritance), so a timeline is one query over the core.

``regarding`` is a (record type, id) pair: an activity can regard any customer record.
A party points to a record, or keeps the address it could not resolve; never both empty.
``occurred_at`` is the moment the timeline sorts by (an email's date, an appointment's
start, else creation time).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crmsync.core.types import (
    ActivityState,
    CorrelationMethod,
    Direction,
    EmailStatus,
    Participation,
    Priority,
    RecordType,
)
from crmsync.crm.db import Base, IdMixin, TimestampMixin, db_enum, utcnow
from crmsync.crm.models.records import OwnedMixin


class Activity(IdMixin, TimestampMixin, OwnedMixin, Base):
    __tablename__ = "activities"
    __table_args__ = (
        Index("ix_activities_regarding", "regarding_type", "regarding_id"),
        Index("ix_activities_org_occurred", "organisation_id", "occurred_at"),
    )

    activity_type: Mapped[RecordType] = mapped_column(db_enum(RecordType))
    subject: Mapped[str] = mapped_column(String(400), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    regarding_type: Mapped[RecordType | None] = mapped_column(db_enum(RecordType))
    regarding_id: Mapped[uuid.UUID | None] = mapped_column()
    state: Mapped[ActivityState] = mapped_column(db_enum(ActivityState), default=ActivityState.OPEN)
    direction: Mapped[Direction | None] = mapped_column(db_enum(Direction))
    scheduled_start: Mapped[datetime | None] = mapped_column()
    scheduled_end: Mapped[datetime | None] = mapped_column()
    actual_start: Mapped[datetime | None] = mapped_column()
    actual_end: Mapped[datetime | None] = mapped_column()
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)

    parties: Mapped[list[ActivityParty]] = relationship(
        back_populates="activity",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="ActivityParty.position",
    )
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="activity", cascade="all, delete-orphan", lazy="selectin"
    )

    __mapper_args__ = {"polymorphic_on": "activity_type"}

    @property
    def record_type(self) -> RecordType:
        return self.activity_type


class Email(Activity):
    __tablename__ = "emails"
    __mapper_args__ = {"polymorphic_identity": RecordType.EMAIL}

    id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[EmailStatus] = mapped_column(db_enum(EmailStatus), default=EmailStatus.DRAFT)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[str | None] = mapped_column(Text)
    conversation_index: Mapped[str | None] = mapped_column(String(400))
    # Derived at write time so correlation is one indexed lookup per kind.
    conversation_guid: Mapped[str | None] = mapped_column(String(36), index=True)
    normalised_subject: Mapped[str | None] = mapped_column(String(400), index=True)
    tracking_token: Mapped[str | None] = mapped_column(String(64), index=True)
    correlation_method: Mapped[CorrelationMethod] = mapped_column(
        db_enum(CorrelationMethod), default=CorrelationMethod.NONE
    )
    # The tracked email correlation matched (In-Reply-To/References, tracking token,
    # Thread-Index, smart matching): "why was it tracked" links to it. Kept when a person
    # later changes the regarding record; cleared when that email is deleted.
    correlated_with_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("emails.id", ondelete="SET NULL"), index=True
    )
    # What the sender wrote, hashed (crmsync.tracking.fingerprint): a message reusing a
    # tracked email's Message-ID is the same message only if this agrees too. NULL for
    # emails stored before it existed (the Message-ID alone decides for them).
    content_fingerprint: Mapped[str | None] = mapped_column(String(80))
    # Why it was tracked, as data (crmsync.core.why.Why.as_json): the rule that took it in
    # and what it matched — the earlier email, token, conversation, record regarding, the
    # sender record created, the attachments not kept. NULL for emails written in the CRM
    # and for those tracked before it was kept (their ledger rows say it in words).
    why: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    body_text: Mapped[str] = mapped_column(Text, default="")
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    # What the parser could not read as written (an unknown charset, a header cut short at
    # its limit, HTML shown as text): one line each, naming headers and parts, never
    # content. The raw message is kept, so it can be parsed again once that improves.
    parse_defects: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")

    # Outgoing email (crmsync.sync.outgoing, crmsync.crm.outbound): the mailbox that sends
    # it, the tracked email it answers, when to try again, which worker holds it while it
    # is handed to the server, what went wrong, and whether the Sent copy is still owed.
    send_mailbox_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="SET NULL")
    )
    reply_to_email_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("emails.id", ondelete="SET NULL")
    )
    next_send_at: Mapped[datetime | None] = mapped_column()
    send_claim: Mapped[str | None] = mapped_column(String(200))
    send_claimed_at: Mapped[datetime | None] = mapped_column()
    send_error_code: Mapped[str | None] = mapped_column(String(64))
    send_error: Mapped[str | None] = mapped_column(Text)
    # An earlier attempt may have reached the server (the connection broke while the
    # message was handed over): look for it in the Sent folder before sending again.
    maybe_sent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    copy_pending: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A delivery status notification (RFC 3464) said it could not be delivered.
    bounced_at: Mapped[datetime | None] = mapped_column()
    bounce_recipient: Mapped[str | None] = mapped_column(String(320))
    bounce_status: Mapped[str | None] = mapped_column(String(32))
    bounce_reason: Mapped[str | None] = mapped_column(Text)


# The outgoing engine's queue: one mailbox's emails in one status.
Index("ix_emails_send_mailbox_status", Email.send_mailbox_id, Email.status)


class Appointment(Activity):
    __tablename__ = "appointments"
    __mapper_args__ = {"polymorphic_identity": RecordType.APPOINTMENT}

    id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    location: Mapped[str] = mapped_column(String(400), default="")
    is_all_day: Mapped[bool] = mapped_column(Boolean, default=False)


class Task(Activity):
    __tablename__ = "tasks"
    __mapper_args__ = {"polymorphic_identity": RecordType.TASK}

    id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True
    )
    priority: Mapped[Priority] = mapped_column(db_enum(Priority), default=Priority.NORMAL)
    percent_complete: Mapped[int] = mapped_column(Integer, default=0)


class ActivityParty(IdMixin, Base):
    __tablename__ = "activity_parties"
    __table_args__ = (
        Index("ix_activity_parties_party", "party_type", "party_id"),
        CheckConstraint("party_id IS NOT NULL OR address IS NOT NULL", name="resolved_or_address"),
    )

    activity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)
    participation: Mapped[Participation] = mapped_column(db_enum(Participation))
    party_type: Mapped[RecordType | None] = mapped_column(db_enum(RecordType))
    party_id: Mapped[uuid.UUID | None] = mapped_column()
    address: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str] = mapped_column(String(300), default="")

    activity: Mapped[Activity] = relationship(back_populates="parties")

    @property
    def is_resolved(self) -> bool:
        return self.party_id is not None


class Blob(Base):
    """Content-addressed bytes (raw messages, attachments); the bytes live in the blob store."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(IdMixin, Base):
    __tablename__ = "attachments"

    activity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), index=True
    )
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    filename: Mapped[str] = mapped_column(String(400))
    content_type: Mapped[str] = mapped_column(String(200), default="application/octet-stream")
    size: Mapped[int] = mapped_column(Integer)
    content_id: Mapped[str | None] = mapped_column(String(400))

    activity: Mapped[Activity] = relationship(back_populates="attachments")

"""Email server profiles, mailboxes, their channels, test runs, alerts and item failures.

A profile says how to reach a mail system; a mailbox (exactly one per user and per queue)
says whose mail it is and what to do with it. Each mailbox has three channels — incoming,
outgoing, appointments/contacts/tasks — each with its own method, enabled flag, status
and error state, so one failing channel never stops the others.

Credentials are stored only as ciphertext (``*_ciphertext`` columns, see
crmsync.crm.secrets); nothing here ever holds a secret in clear.

A channel's life:

    not_run ──Test & Enable ok──▶ success ◀──sync ok──┐
       │                             │                 │
       └──check fails──▶ failure ◀───┘ sync fails ─────┘
                           │ permanent error, or transient past the retry limit
                           ▼
                       enabled = False (alert raised; Test & Enable re-enables)
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
    UniqueConstraint,
    text,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crmsync.core.types import (
    AlertCause,
    AlertSeverity,
    AlertState,
    Approval,
    AuthMethod,
    Channel,
    ChannelStatus,
    ConnectionSecurity,
    CredentialScope,
    IncomingMethod,
    ItemResolution,
    OutgoingAuth,
    RecordType,
    ServerType,
    SyncMethod,
)
from crmsync.crm.db import Base, IdMixin, TimestampMixin, db_enum, utcnow
from crmsync.crm.models.records import OwnedMixin


class EmailServerProfile(IdMixin, TimestampMixin, OwnedMixin, Base):
    __tablename__ = "email_server_profiles"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)
    __encrypted__ = ("password_ciphertext", "oauth_client_secret_ciphertext")
    record_type = RecordType.EMAIL_SERVER_PROFILE

    name: Mapped[str] = mapped_column(String(200))
    server_type: Mapped[ServerType] = mapped_column(db_enum(ServerType))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)

    incoming_host: Mapped[str | None] = mapped_column(String(255))
    incoming_port: Mapped[int | None] = mapped_column(Integer)
    incoming_security: Mapped[ConnectionSecurity] = mapped_column(
        db_enum(ConnectionSecurity), default=ConnectionSecurity.IMPLICIT_TLS
    )
    outgoing_host: Mapped[str | None] = mapped_column(String(255))
    outgoing_port: Mapped[int | None] = mapped_column(Integer)
    outgoing_security: Mapped[ConnectionSecurity] = mapped_column(
        db_enum(ConnectionSecurity), default=ConnectionSecurity.STARTTLS
    )
    exchange_url: Mapped[str | None] = mapped_column(String(500))
    allow_plaintext: Mapped[bool] = mapped_column(Boolean, default=False)
    verify_certificates: Mapped[bool] = mapped_column(Boolean, default=True)
    ca_pem: Mapped[str | None] = mapped_column(Text)

    auth_method: Mapped[AuthMethod] = mapped_column(
        db_enum(AuthMethod), default=AuthMethod.PASSWORD
    )
    credential_scope: Mapped[CredentialScope] = mapped_column(
        db_enum(CredentialScope), default=CredentialScope.MAILBOX
    )
    # The SMTP side may do without AUTH (a relay trusting crmsync's address), but only when
    # an administrator chose it here: crmsync never drops AUTH because a server lacks it.
    outgoing_auth: Mapped[OutgoingAuth] = mapped_column(
        db_enum(OutgoingAuth),
        default=OutgoingAuth.SAME_AS_INCOMING,
        server_default=OutgoingAuth.SAME_AS_INCOMING.value,
    )
    username: Mapped[str | None] = mapped_column(String(320))
    password_ciphertext: Mapped[str | None] = mapped_column(Text)
    # How the profile's account logs in as a mailbox, e.g. Dovecot's master user
    # "{mailbox}*{username}"; {mailbox} is the mailbox's login, {username} the profile's.
    impersonation_format: Mapped[str] = mapped_column(String(100), default="{mailbox}*{username}")
    oauth_client_id: Mapped[str | None] = mapped_column(String(300))
    oauth_client_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    oauth_token_url: Mapped[str | None] = mapped_column(String(500))
    oauth_authorize_url: Mapped[str | None] = mapped_column(String(500))
    oauth_scopes: Mapped[str | None] = mapped_column(String(1000))
    oauth_tenant: Mapped[str | None] = mapped_column(String(200))

    process_email_after: Mapped[datetime | None] = mapped_column()
    min_polling_seconds: Mapped[int] = mapped_column(Integer, default=60)
    max_concurrent_connections: Mapped[int] = mapped_column(Integer, default=10)
    connection_timeout_seconds: Mapped[int] = mapped_column(Integer, default=30)
    move_failed_to_folder: Mapped[str | None] = mapped_column(String(300))
    alert_on_majority_failure: Mapped[bool] = mapped_column(Boolean, default=True)
    # Outgoing email: append a copy of each sent message to the mailbox's Sent folder
    # (IMAP). Off for servers that file submitted mail themselves (Gmail, Exchange Online).
    save_sent_copy: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())


class Mailbox(IdMixin, TimestampMixin, OwnedMixin, Base):
    __tablename__ = "mailboxes"
    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (queue_id IS NULL)", name="user_or_queue"),
    )
    __encrypted__ = (
        "password_ciphertext",
        "oauth_refresh_token_ciphertext",
        "oauth_access_token_ciphertext",
    )
    record_type = RecordType.MAILBOX

    name: Mapped[str] = mapped_column(String(300))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    queue_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), unique=True
    )
    profile_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("email_server_profiles.id", ondelete="SET NULL"), index=True
    )
    email_address: Mapped[str | None] = mapped_column(String(320))
    incoming_method: Mapped[IncomingMethod] = mapped_column(
        db_enum(IncomingMethod), default=IncomingMethod.SERVER_SIDE_SYNC
    )
    outgoing_method: Mapped[SyncMethod] = mapped_column(
        db_enum(SyncMethod), default=SyncMethod.SERVER_SIDE_SYNC
    )
    act_method: Mapped[SyncMethod] = mapped_column(db_enum(SyncMethod), default=SyncMethod.NONE)
    approval: Mapped[Approval] = mapped_column(db_enum(Approval), default=Approval.PENDING)
    delete_after_processing: Mapped[bool] = mapped_column(Boolean, default=False)

    username: Mapped[str | None] = mapped_column(String(320))
    password_ciphertext: Mapped[str | None] = mapped_column(Text)
    oauth_refresh_token_ciphertext: Mapped[str | None] = mapped_column(Text)
    oauth_access_token_ciphertext: Mapped[str | None] = mapped_column(Text)
    oauth_access_expires_at: Mapped[datetime | None] = mapped_column()

    profile: Mapped[EmailServerProfile | None] = relationship(lazy="joined")
    channels: Mapped[list[MailboxChannel]] = relationship(
        back_populates="mailbox",
        cascade="all, delete-orphan",
        lazy="selectin",
        order_by="MailboxChannel.channel",
    )

    def channel(self, which: Channel) -> MailboxChannel:
        for channel in self.channels:
            if channel.channel is which:
                return channel
        raise LookupError(f"mailbox {self.id} has no {which.value} channel")

    def method_of(self, which: Channel) -> Any:
        return {
            Channel.INCOMING: self.incoming_method,
            Channel.OUTGOING: self.outgoing_method,
            Channel.ACT: self.act_method,
        }[which]

    @property
    def has_own_credentials(self) -> bool:
        return bool(self.password_ciphertext or self.oauth_refresh_token_ciphertext)


class MailboxChannel(IdMixin, Base):
    __tablename__ = "mailbox_channels"
    __table_args__ = (UniqueConstraint("mailbox_id", "channel"),)

    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    channel: Mapped[Channel] = mapped_column(db_enum(Channel))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ChannelStatus] = mapped_column(
        db_enum(ChannelStatus), default=ChannelStatus.NOT_RUN
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column()
    last_success_at: Mapped[datetime | None] = mapped_column()
    items_processed: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Polls in a row that found nothing: quiet mailboxes are polled less often.
    quiet_polls: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error_code: Mapped[str | None] = mapped_column(String(64))
    last_error_detail: Mapped[str | None] = mapped_column(Text)
    # One worker at a time per channel: whoever holds an unexpired lease.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column()

    mailbox: Mapped[Mailbox] = relationship(back_populates="channels")


class MailboxTest(IdMixin, Base):
    """One Test & Enable run: each step with its result and time."""

    __tablename__ = "mailbox_tests"

    mailbox_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    ok: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"channel": "incoming", "name": "auth", "ok": false, "seconds": 0.01,
    #   "detail": "...", "code": "AUTH_FAILED"}, ...]
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Alert(IdMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_org_created", "organisation_id", "created_at"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    profile_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("email_server_profiles.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel | None] = mapped_column(db_enum(Channel))
    # Who is told: the mailbox's owner and the profile's owner (admins see every alert).
    mailbox_owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    profile_owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"))
    severity: Mapped[AlertSeverity] = mapped_column(db_enum(AlertSeverity))
    code: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    remediation: Mapped[str] = mapped_column(Text, default="")
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Its life (crm/alerts.py): open → acknowledged / dismissed / resolved; raised again
    # after it resolved, it opens again.
    state: Mapped[AlertState] = mapped_column(
        db_enum(AlertState), default=AlertState.OPEN, server_default=text("'open'")
    )
    # What makes it resolve itself; None for an alert only a person closes.
    cause: Mapped[AlertCause | None] = mapped_column(db_enum(AlertCause))
    acknowledged_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    dismissed_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    dismissed_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    resolution: Mapped[str | None] = mapped_column(Text)  # why: "the channel succeeded again"


class ItemFailure(IdMixin, Base):
    """One item (a message, an event) a channel could not process; kept, not dropped."""

    __tablename__ = "item_failures"
    __table_args__ = (UniqueConstraint("mailbox_id", "channel", "item_ref"),)

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[Channel] = mapped_column(db_enum(Channel))
    item_ref: Mapped[str] = mapped_column(String(500))
    code: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text, default="")
    raw_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column()
    # How and by whom it left the triage queue; the email it became, when it was tracked.
    resolution: Mapped[ItemResolution | None] = mapped_column(db_enum(ItemResolution))
    resolved_by_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    email_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("emails.id", ondelete="SET NULL"))

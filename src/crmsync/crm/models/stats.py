"""Pass statistics: one row per sync pass of one mailbox channel, for the dashboard.

Written by the engines where a pass records its outcome, in the same transaction as the
channel's health (crmsync.crm.stats.record_pass), so the dashboard's history survives
restarts and is the same whichever process or machine ran the pass. Rows older than
``RETENTION`` are purged as passes go (crmsync.crm.stats).

``hour`` is ``started_at`` in whole hours since the Unix epoch: grouping by ``hour``,
``hour / 6`` or ``hour / 24`` gives the dashboard's buckets with plain integer
arithmetic that SQLite and PostgreSQL agree on.

Holds counts and durations only — never an address, a subject or a credential.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crmsync.core.types import Channel
from crmsync.crm.db import Base, IdMixin, db_enum


class SyncPass(IdMixin, Base):
    __tablename__ = "sync_passes"
    __table_args__ = (
        Index("ix_sync_passes_org_hour", "organisation_id", "hour"),
        Index("ix_sync_passes_mailbox_started", "mailbox_id", "started_at"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="CASCADE"))
    profile_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("email_server_profiles.id", ondelete="SET NULL")
    )
    channel: Mapped[Channel] = mapped_column(db_enum(Channel))
    # "imap", "pop3", "smtp", "ews", "graph" — or "none" when no plan could be made.
    protocol: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column()
    hour: Mapped[int] = mapped_column(Integer)
    duration_seconds: Mapped[float] = mapped_column(Float)
    fetched: Mapped[int] = mapped_column(Integer, default=0)
    tracked: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    # started_at minus the channel's previous success; None before its first success.
    lag_seconds: Mapped[float | None] = mapped_column(Float)
    # From the server's IDLE notice to this pass's commit; None for a polled pass.
    push_latency_seconds: Mapped[float | None] = mapped_column(Float)
    error_code: Mapped[str | None] = mapped_column(String(64))

"""Shares and the email-address index.

A share gives one team or one user read (and optionally write) access to one record,
beyond what their roles grant. The address index maps a normalised address to every
email-enabled record carrying it, so resolving a sender is one indexed lookup; it is
derived data, kept in step by crmsync.crm.addresses on every flush.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from crmsync.core.types import RecordType
from crmsync.crm.db import Base, IdMixin, TimestampMixin, db_enum


class RecordShare(IdMixin, TimestampMixin, Base):
    __tablename__ = "record_shares"
    __table_args__ = (
        Index("ix_record_shares_record", "record_type", "record_id"),
        CheckConstraint("(team_id IS NULL) <> (user_id IS NULL)", name="exactly_one_principal"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    record_type: Mapped[RecordType] = mapped_column(db_enum(RecordType))
    record_id: Mapped[uuid.UUID] = mapped_column()
    team_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("teams.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)


class EmailAddressEntry(IdMixin, Base):
    __tablename__ = "email_address_index"
    __table_args__ = (
        Index("ix_email_address_index_lookup", "organisation_id", "address"),
        Index("ix_email_address_index_record", "record_type", "record_id"),
    )

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    address: Mapped[str] = mapped_column(String(320))
    record_type: Mapped[RecordType] = mapped_column(db_enum(RecordType))
    record_id: Mapped[uuid.UUID] = mapped_column()
    field: Mapped[str] = mapped_column(String(64))

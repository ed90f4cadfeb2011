"""Customer records: accounts, contacts, leads, opportunities, cases.

Every record has an owner (a user) and the owner's business unit, copied at assignment
so that access checks are one comparison. Email-enabled records list their address
columns in ``__email_fields__``; crmsync.crm.addresses keeps the address index in step.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from crmsync.core.types import Priority, RecordState, RecordType
from crmsync.crm.db import Base, IdMixin, TimestampMixin, db_enum


class OwnedMixin:
    """Organisation, owner and owning business unit: what access control looks at."""

    @declared_attr
    def organisation_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)

    @declared_attr
    def owner_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(ForeignKey("users.id"), index=True)

    @declared_attr
    def owning_business_unit_id(cls) -> Mapped[uuid.UUID]:  # noqa: N805
        return mapped_column(ForeignKey("business_units.id"), index=True)


class CustomerRecord(IdMixin, TimestampMixin, OwnedMixin):
    record_type: RecordType
    __email_fields__: tuple[str, ...] = ()

    state: Mapped[RecordState] = mapped_column(db_enum(RecordState), default=RecordState.ACTIVE)
    description: Mapped[str] = mapped_column(Text, default="")


class Account(CustomerRecord, Base):
    __tablename__ = "accounts"
    record_type = RecordType.ACCOUNT
    __email_fields__ = ("email1",)

    name: Mapped[str] = mapped_column(String(200))
    email1: Mapped[str | None] = mapped_column(String(320))
    website: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(50))
    parent_account_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("accounts.id"))


class Contact(CustomerRecord, Base):
    __tablename__ = "contacts"
    record_type = RecordType.CONTACT
    __email_fields__ = ("email1", "email2", "email3")

    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100))
    email1: Mapped[str | None] = mapped_column(String(320))
    email2: Mapped[str | None] = mapped_column(String(320))
    email3: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))
    job_title: Mapped[str | None] = mapped_column(String(100))
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Lead(CustomerRecord, Base):
    __tablename__ = "leads"
    record_type = RecordType.LEAD
    __email_fields__ = ("email1",)

    subject: Mapped[str] = mapped_column(String(300))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    company_name: Mapped[str | None] = mapped_column(String(200))
    email1: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(50))


class Opportunity(CustomerRecord, Base):
    __tablename__ = "opportunities"
    record_type = RecordType.OPPORTUNITY

    name: Mapped[str] = mapped_column(String(300))
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    estimated_value: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    estimated_close: Mapped[datetime | None] = mapped_column()


class Case(CustomerRecord, Base):
    __tablename__ = "cases"
    record_type = RecordType.CASE

    title: Mapped[str] = mapped_column(String(300))
    ticket_number: Mapped[str | None] = mapped_column(String(50), unique=True)
    account_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    contact_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    priority: Mapped[Priority] = mapped_column(db_enum(Priority), default=Priority.NORMAL)

"""Customer record shapes: accounts, contacts, leads, opportunities, cases."""

from __future__ import annotations

import uuid
from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.api.schemas.common import EmailAddress, Moment, OwnedPublic, partial
from crmsync.core.types import Priority, RecordState


class RecordCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=100_000)
    state: RecordState = RecordState.ACTIVE


class AccountCreate(RecordCreate):
    name: str = Field(min_length=1, max_length=200)
    email1: EmailAddress | None = None
    website: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=50)
    parent_account_id: uuid.UUID | None = None


class ContactCreate(RecordCreate):
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    email1: EmailAddress | None = None
    email2: EmailAddress | None = None
    email3: EmailAddress | None = None
    phone: str | None = Field(default=None, max_length=50)
    job_title: str | None = Field(default=None, max_length=100)
    account_id: uuid.UUID | None = None


class LeadCreate(RecordCreate):
    subject: str = Field(min_length=1, max_length=300)
    first_name: str = Field(default="", max_length=100)
    last_name: str = Field(default="", max_length=100)
    company_name: str | None = Field(default=None, max_length=200)
    email1: EmailAddress | None = None
    phone: str | None = Field(default=None, max_length=50)


class OpportunityCreate(RecordCreate):
    name: str = Field(min_length=1, max_length=300)
    account_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    estimated_value: Decimal | None = Field(default=None, max_digits=18, decimal_places=2)
    estimated_close: Moment | None = None


class CaseCreate(RecordCreate):
    title: str = Field(min_length=1, max_length=300)
    ticket_number: str | None = Field(default=None, max_length=50)
    account_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    priority: Priority = Priority.NORMAL


class AccountPublic(AccountCreate, OwnedPublic):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


class ContactPublic(ContactCreate, OwnedPublic):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


class LeadPublic(LeadCreate, OwnedPublic):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


class OpportunityPublic(OpportunityCreate, OwnedPublic):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


class CasePublic(CaseCreate, OwnedPublic):
    model_config = ConfigDict(from_attributes=True, extra="ignore")


AccountUpdate = partial(AccountCreate, "AccountUpdate")
ContactUpdate = partial(ContactCreate, "ContactUpdate")
LeadUpdate = partial(LeadCreate, "LeadUpdate")
OpportunityUpdate = partial(OpportunityCreate, "OpportunityUpdate")
CaseUpdate = partial(CaseCreate, "CaseUpdate")

"""Activity shapes: email, appointment, task, their parties, the timeline."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from crmsync.api.schemas.common import EmailAddress, Moment, OwnedPublic, WholeNumber, partial
from crmsync.core.types import (
    ActivityState,
    CorrelationMethod,
    Direction,
    EmailStatus,
    Participation,
    Priority,
    RecordType,
)
from crmsync.crm.timeline import TimelineItem

PartyType = Literal["user", "queue", "contact", "account", "lead"]
RegardingType = Literal["account", "contact", "lead", "opportunity", "case"]


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    participation: Participation
    party_type: PartyType | None = None
    party_id: uuid.UUID | None = None
    address: EmailAddress | None = None
    display_name: str = Field(default="", max_length=300)

    @model_validator(mode="after")
    def _record_or_address(self) -> PartyIn:
        if (self.party_type is None) != (self.party_id is None):
            raise ValueError("party_type and party_id go together")
        if self.party_id is None and self.address is None:
            raise ValueError("a party needs party_type and party_id, or an address")
        return self


class PartyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    participation: Participation
    party_type: RecordType | None
    party_id: uuid.UUID | None
    address: str | None
    display_name: str


class ActivityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(default="", max_length=400)
    description: str = Field(default="", max_length=1_000_000)
    regarding_type: RegardingType | None = None
    regarding_id: uuid.UUID | None = None
    state: ActivityState = ActivityState.OPEN
    direction: Direction | None = None
    scheduled_start: Moment | None = None
    scheduled_end: Moment | None = None
    actual_start: Moment | None = None
    actual_end: Moment | None = None
    parties: list[PartyIn] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _consistent(self) -> ActivityCreate:
        if (self.regarding_type is None) != (self.regarding_id is None):
            raise ValueError("regarding_type and regarding_id go together")
        for start, end in (
            (self.scheduled_start, self.scheduled_end),
            (self.actual_start, self.actual_end),
        ):
            if start and end and end < start:
                raise ValueError("an end must not be before its start")
        return self


class EmailCreate(ActivityCreate):
    # Sending (pending_send and after) is the outgoing engine's; through the API an email
    # is written as a draft or recorded as already completed.
    status: Literal[EmailStatus.DRAFT, EmailStatus.COMPLETED] = EmailStatus.DRAFT
    body_text: str = Field(default="", max_length=1_000_000)


class AppointmentCreate(ActivityCreate):
    location: str = Field(default="", max_length=400)
    is_all_day: bool = False


class TaskCreate(ActivityCreate):
    priority: Priority = Priority.NORMAL
    percent_complete: WholeNumber = Field(default=0, ge=0, le=100)


class ActivityPublic(OwnedPublic):
    model_config = ConfigDict(from_attributes=True)

    activity_type: RecordType
    subject: str
    description: str
    regarding_type: RecordType | None
    regarding_id: uuid.UUID | None
    state: ActivityState
    direction: Direction | None
    scheduled_start: AwareDatetime | None
    scheduled_end: AwareDatetime | None
    actual_start: AwareDatetime | None
    actual_end: AwareDatetime | None
    occurred_at: AwareDatetime
    parties: list[PartyPublic]


class EmailPublic(ActivityPublic):
    status: EmailStatus
    body_text: str
    message_id: str | None
    in_reply_to: str | None
    references: str | None
    conversation_index: str | None
    tracking_token: str | None
    correlation_method: CorrelationMethod
    correlated_with_id: uuid.UUID | None = Field(
        description="The tracked email correlation matched (GET /emails/{id}/tracking "
        "names it, if you may read it). Says no more than in_reply_to and references do."
    )
    delivery_attempts: int
    parse_defects: list[str] = Field(
        description="What the parser could not read as written; the raw message is kept."
    )


class AppointmentPublic(ActivityPublic):
    location: str
    is_all_day: bool


class TaskPublic(ActivityPublic):
    priority: Priority
    percent_complete: int


class ViaPublic(BaseModel):
    """The record an activity came into a timeline through, e.g. a contact of the account."""

    model_config = ConfigDict(from_attributes=True)

    record_type: RecordType
    record_id: uuid.UUID
    name: str


class TimelineEntry(ActivityPublic):
    """One activity in a timeline; type-specific fields are in the activity's own route."""

    via: ViaPublic | None = Field(
        description="null for the record's own activities; else the related record it "
        "came through (an account's contact, opportunity or case; a contact's opportunity "
        "or case)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_item(cls, data: Any) -> Any:
        if not isinstance(data, TimelineItem):
            return data
        activity = data.activity
        names = set(ActivityPublic.model_fields)
        return {name: getattr(activity, name) for name in names} | {"via": data.via}


EmailUpdate = partial(EmailCreate, "EmailUpdate")
AppointmentUpdate = partial(AppointmentCreate, "AppointmentUpdate")
TaskUpdate = partial(TaskCreate, "TaskUpdate")

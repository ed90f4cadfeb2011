"""Side panel shapes: connect codes, the code exchange, and what a lookup answers."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from crmsync.api.schemas.common import AS_WHOLE_NUMBER
from crmsync.core.types import CorrelationMethod, Participation, RecordType
from crmsync.crm import connect
from crmsync.crm.panel_lookup import EmailState, Resolution

# Control characters have no place in a name people read, and PostgreSQL refuses NUL.
PRINTABLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"
PanelDays = Annotated[int, Field(ge=1, le=365), AS_WHOLE_NUMBER]


class ConnectCodeIssued(BaseModel):
    code: str = Field(
        description="Type it into the side panel (or let the add-in's dialog pass it on) "
        f"within {int(connect.CODE_LIFETIME.total_seconds() // 60)} minutes; it works "
        "once. Shown only now.",
        examples=["7K3M-Q9XD"],
    )
    expires_at: AwareDatetime


class PanelTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        min_length=1,
        max_length=32,
        description="The connect code, as shown (XXXX-XXXX); case, spaces and dashes do "
        "not matter. An unknown, used or expired code is 401 CONNECT_CODE_INVALID.",
    )
    name: str = Field(
        default="Side panel",
        min_length=1,
        max_length=200,
        pattern=PRINTABLE_PATTERN,
        description="Where the panel runs, for its owner's token list: 'Outlook on LAPTOP-1'.",
    )
    expires_in_days: PanelDays = Field(
        default=int(connect.PANEL_TOKEN_LIFETIME.days),
        description="How long the panel token lives.",
    )


class RecordRefPublic(BaseModel):
    record_type: RecordType
    id: uuid.UUID
    name: str


class MatchPublic(BaseModel):
    record_type: RecordType
    id: uuid.UUID
    name: str
    colleague: bool = Field(description="A user's or a queue's address.")
    account: RecordRefPublic | None = Field(
        description="A contact's account, when you can read it."
    )


class PersonPublic(BaseModel):
    address: str
    name: str = Field(description="The display name the email gave, if any.")
    roles: list[Participation]
    resolution: Resolution = Field(
        description="record: CRM records you can read carry the address; colleague: a "
        "user or queue does; unresolved: nothing you can read does."
    )
    records: list[MatchPublic]


class EmailFindingPublic(BaseModel):
    state: EmailState = Field(
        description="tracked: an email you can read has this Message-ID; seen: a mailbox "
        "you can read saw it, and no email you can read tracks it; unknown: neither."
    )
    message_id: str | None = Field(description="The Message-ID looked for, bracketed.")
    email_id: uuid.UUID | None = Field(description="tracked: the email, for its page.")
    subject: str | None = Field(description="tracked: the CRM email's; else the one given.")
    regarding: RecordRefPublic | None = Field(
        description="tracked: what it is regarding, when you can read that."
    )
    correlation_method: CorrelationMethod | None
    can_write: bool = Field(description="tracked: whether you may change it.")
    reason: str | None = Field(description="seen: why the mailbox did not track it.")


class PanelLookupPublic(BaseModel):
    people: list[PersonPublic]
    email: EmailFindingPublic

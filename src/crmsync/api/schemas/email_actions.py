"""Shapes of the actions on a tracked email: regarding, untrack, track, resolve an address.

Each request schema says exactly what validation accepts: alternatives are separate
shapes (``anyOf``), not one shape with fields that must come in pairs.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from crmsync.api.schemas.activities import EmailPublic, RegardingType
from crmsync.api.schemas.common import EmailAddress
from crmsync.core.types import RecordType


class RegardingSet(BaseModel):
    """Make the email regard this record."""

    model_config = ConfigDict(extra="forbid")

    regarding_type: RegardingType
    regarding_id: uuid.UUID


class RegardingClear(BaseModel):
    """Make the email regard nothing: both null, or left out."""

    model_config = ConfigDict(extra="forbid")

    regarding_type: None = None
    regarding_id: None = None


class UntrackResult(BaseModel):
    email_id: uuid.UUID = Field(description="The email that was deleted.")
    sightings: int = Field(
        description="How many mailboxes' records of the message now say it was untracked."
    )


class TrackByMessageId(BaseModel):
    """A message by its Internet Message-ID, with or without angle brackets."""

    model_config = ConfigDict(extra="forbid")

    message_id: str = Field(min_length=1, max_length=998)


class TrackByLedgerId(BaseModel):
    """A message by the id of one mailbox's record of it (a sighting)."""

    model_config = ConfigDict(extra="forbid")

    ledger_id: uuid.UUID


class TrackResult(BaseModel):
    reason: str = Field(description="What the mailboxes' records of the message now say.")
    email: EmailPublic


class ResolveAddress(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: EmailAddress
    display_name: str = Field(default="", max_length=300)
    as_type: Literal["contact", "lead"] = Field(
        alias="as", description="What to create for the address."
    )


class ResolvedAddress(BaseModel):
    record_type: RecordType
    record_id: uuid.UUID
    name: str
    parties: int = Field(
        description="Unresolved parties with this address in the organisation, now linked "
        "to the new record."
    )

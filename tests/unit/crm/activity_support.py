"""Builders of activities for the tests of timelines, search and record pages."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from crmsync.core.types import RecordType
from crmsync.crm import activities
from crmsync.crm.access import Principal
from crmsync.crm.activities import PartySpec
from crmsync.crm.models import Email


def add_email(
    session: Any,
    principal: Principal,
    subject: str,
    minutes: int,
    *,
    start: datetime,
    regarding: tuple[RecordType, uuid.UUID] | None = None,
    parties: list[PartySpec] | None = None,
    owner_id: uuid.UUID | None = None,
    **values: Any,
) -> uuid.UUID:
    """An email ``minutes`` after ``start``, regarding a record and with parties if given;
    ``values`` are its other columns."""
    values = {"subject": subject, "actual_start": start + timedelta(minutes=minutes), **values}
    if regarding is not None:
        values["regarding_type"], values["regarding_id"] = regarding
    email = activities.create_activity(
        session, principal, Email, values, parties or [], owner_id=owner_id
    )
    return email.id

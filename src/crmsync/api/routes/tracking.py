"""Why an email was tracked: every mailbox that saw it, what was decided there, and the
tracked email correlation matched (only if the caller may read that one too): the same
facts the email page shows (crmsync.crm.email_context)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.core.types import CorrelationMethod
from crmsync.crm import email_context
from crmsync.crm.activities import get_activity
from crmsync.crm.models.activities import Email

router = APIRouter(tags=["emails"])


class Sighting(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mailbox_id: uuid.UUID
    mailbox_name: str
    folder: str
    tracked: bool
    reason: str
    seen_at: datetime


class CorrelatedEmail(BaseModel):
    id: uuid.UUID
    subject: str


class TrackingExplanation(BaseModel):
    email_id: uuid.UUID
    correlation_method: CorrelationMethod
    correlated_with: CorrelatedEmail | None = Field(
        description="The tracked email correlation matched (what this one answers, or "
        "shares a token or conversation with); null when there is none or you may not "
        "read it."
    )
    sightings: list[Sighting]
    parse_defects: list[str] = Field(
        description="What the parser could not read as written (an unknown charset, a "
        "header cut at its limit, HTML shown as text); the raw message is kept."
    )


@router.get("/emails/{email_id}/tracking", response_model=TrackingExplanation)
def explain_tracking(
    email_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> TrackingExplanation:
    """Which mailboxes saw this email, why it was tracked and how it was correlated."""
    email = get_activity(session, principal, Email, email_id)
    found = email_context.explain_tracking(session, principal, email)
    return TrackingExplanation.model_validate(found, from_attributes=True)

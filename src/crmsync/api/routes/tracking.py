"""Why an email was tracked: every mailbox that saw it, and what was decided there."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.crm.activities import get_activity
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.types import CorrelationMethod

router = APIRouter(tags=["emails"])


class Sighting(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    mailbox_id: uuid.UUID
    mailbox_name: str
    folder: str
    tracked: bool
    reason: str
    seen_at: datetime


class TrackingExplanation(BaseModel):
    email_id: uuid.UUID
    correlation_method: CorrelationMethod
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
    rows = session.execute(
        select(MailboxMessage, Mailbox.name)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(MailboxMessage.email_id == email.id)
        .order_by(MailboxMessage.seen_at)
    )
    return TrackingExplanation(
        email_id=email.id,
        correlation_method=email.correlation_method,
        parse_defects=list(email.parse_defects or []),
        sightings=[
            Sighting(
                mailbox_id=row.mailbox_id,
                mailbox_name=name,
                folder=row.folder,
                tracked=row.tracked,
                reason=row.reason,
                seen_at=row.seen_at,
            )
            for row, name in rows
        ],
    )

"""Why an email was tracked: every mailbox that saw it, what was decided there, and the
tracked email correlation matched (only if the caller may read that one too)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.activities import get_activity
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.types import CorrelationMethod, Privilege

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
    rows = session.execute(
        select(MailboxMessage, Mailbox.name)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(MailboxMessage.email_id == email.id)
        .order_by(MailboxMessage.seen_at)
    )
    return TrackingExplanation(
        email_id=email.id,
        correlation_method=email.correlation_method,
        correlated_with=_correlated(session, principal, email),
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


def _correlated(session: Session, principal: Principal, email: Email) -> CorrelatedEmail | None:
    if email.correlated_with_id is None:
        return None
    matched = session.get(Email, email.correlated_with_id)
    if matched is None or not access.can(session, principal, matched, Privilege.READ):
        return None
    return CorrelatedEmail(id=matched.id, subject=matched.subject)

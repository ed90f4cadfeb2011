"""Sending CRM email: queue it, cancel it, see how its delivery went.

    POST /api/v1/emails/{id}/send      draft (or failed) → pending_send   (write on it)
    POST /api/v1/emails/{id}/cancel    pending_send → canceled            (write on it)
    GET  /api/v1/emails/{id}/delivery  status, attempts, errors, bounce   (read on it)

The routes only record the wish (crmsync.crm.outbound); the outgoing engine sends,
through the sender's mailbox, outside any request. Sending needs a recipient with an
address and a sending mailbox with an address; a mailbox that cannot send yet (not
approved, outgoing disabled) keeps the email pending, and ``send_error`` says why.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.core.types import ActivityState, EmailStatus, Privilege
from crmsync.crm import outbound
from crmsync.crm.activities import get_activity
from crmsync.crm.models.activities import Email

router = APIRouter(prefix="/emails", tags=["emails"])


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reply_to_email_id: uuid.UUID | None = None


class DeliveryPublic(BaseModel):
    """Where an email is on its way out."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    status: EmailStatus
    state: ActivityState
    subject: str
    send_mailbox_id: uuid.UUID | None
    message_id: str | None
    tracking_token: str | None
    in_reply_to: str | None
    references: str | None
    delivery_attempts: int
    next_send_at: AwareDatetime | None
    send_error_code: str | None
    send_error: str | None
    sent_at: AwareDatetime | None
    bounced_at: AwareDatetime | None
    bounce_recipient: str | None
    bounce_status: str | None
    bounce_reason: str | None

    @classmethod
    def of(cls, email: Email) -> DeliveryPublic:
        sent_at: datetime | None = email.actual_end if email.status is EmailStatus.SENT else None
        return cls.model_validate({**_columns(email), "sent_at": sent_at})


def _columns(email: Email) -> dict[str, object]:
    names = set(DeliveryPublic.model_fields) - {"sent_at"}
    return {name: getattr(email, name) for name in names}


@router.post("/{email_id}/send", response_model=DeliveryPublic, name="send_email")
def send_email(
    email_id: uuid.UUID,
    session: SessionDep,
    principal: CurrentPrincipal,
    body: SendRequest | None = None,
) -> DeliveryPublic:
    """Queue the email for sending from its sender's mailbox (draft or failed only).

    ``reply_to_email_id`` names the tracked email this one answers: In-Reply-To,
    References and the Outlook Thread-Index follow it.
    """
    email = get_activity(session, principal, Email, email_id, Privilege.WRITE)
    reply_to = body.reply_to_email_id if body is not None else None
    outbound.request_send(session, principal, email, reply_to_email_id=reply_to)
    return DeliveryPublic.of(email)


@router.post("/{email_id}/cancel", response_model=DeliveryPublic, name="cancel_email")
def cancel_email(
    email_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> DeliveryPublic:
    """Take a queued email out of the queue; 409 once it is being sent."""
    email = get_activity(session, principal, Email, email_id, Privilege.WRITE)
    return DeliveryPublic.of(outbound.cancel_send(session, principal, email))


@router.get("/{email_id}/delivery", response_model=DeliveryPublic, name="email_delivery")
def email_delivery(
    email_id: uuid.UUID, session: SessionDep, principal: CurrentPrincipal
) -> DeliveryPublic:
    return DeliveryPublic.of(get_activity(session, principal, Email, email_id))

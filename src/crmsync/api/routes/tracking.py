"""Why an email was tracked: every mailbox that saw it, what was decided there, the rule
that took it in and what it matched (each email or record only if the caller may read it
too): the same facts the email page shows (crmsync.crm.email_context)."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from crmsync.api.deps import CurrentPrincipal, SessionDep
from crmsync.api.schemas.panel import RecordRefPublic
from crmsync.core.types import AttachmentRefusal, CorrelationMethod, RecordType, TrackRule
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


class NotKeptAttachment(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    filename: str
    refusal: AttachmentRefusal
    limit: int | None = Field(description="The size limit in bytes it was over (too_large).")


class TrackingReason(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    recorded: bool = Field(
        description="False for an email tracked before reasons were kept as data: rule "
        "is then null, sentence is what its first mailbox's ledger said, and the rest is "
        "derived from the email's own fields."
    )
    rule: TrackRule | None = Field(description="The rule that took the message in.")
    sentence: str | None = Field(description="The rule and what it matched, in words.")
    correlation_method: CorrelationMethod = Field(
        description="How it was found to continue a tracked email, when it was."
    )
    matched_email_id: uuid.UUID | None = Field(
        description="The tracked email it continues (named by its In-Reply-To or "
        "References, sharing its tracking token or Outlook conversation, or by smart "
        "matching); null when there is none or you may not read it."
    )
    matched_message_id: str | None = Field(
        description="The Message-ID its In-Reply-To or References named (in_reply_to)."
    )
    token: str | None = Field(description="The tracking token it matched (tracking_token).")
    conversation_guid: str | None = Field(
        description="The Outlook conversation (Thread-Index GUID) it matched (conversation_index)."
    )
    regarding: RecordRefPublic | None = Field(
        description="The record the matched email regarded, which this one took; null "
        "when there is none or you may not read it."
    )
    collides_with: uuid.UUID | None = Field(
        description="The email holding the same Message-ID with other content, which this "
        "message was kept apart from; null when there is none or you may not read it."
    )
    created_sender: RecordType | None = Field(
        description="The record (contact or lead) created for its unknown sender."
    )
    refused_attachments: list[NotKeptAttachment]

    @classmethod
    def of(cls, reason: email_context.TrackingReason) -> TrackingReason:
        """The service's reason, its emails named by id."""
        return cls.model_validate(
            {
                **vars(reason),
                "matched_email_id": reason.matched_email.id if reason.matched_email else None,
                "collides_with": reason.collides_with.id if reason.collides_with else None,
                "refused_attachments": list(reason.refused_attachments),
            },
            from_attributes=True,
        )


class TrackingExplanation(BaseModel):
    email_id: uuid.UUID
    correlation_method: CorrelationMethod
    correlated_with: CorrelatedEmail | None = Field(
        description="The tracked email correlation matched (what this one answers, or "
        "shares a token or conversation with); null when there is none or you may not "
        "read it."
    )
    reason: TrackingReason = Field(description="Why it was tracked, as data.")
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
    return TrackingExplanation.model_validate(
        {**vars(found), "reason": TrackingReason.of(found.reason)}, from_attributes=True
    )

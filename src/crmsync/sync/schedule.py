"""When each mailbox channel is next due: polling with adaptive backoff, and retries.

A channel that found mail is polled again after the profile's minimum interval; each
quiet poll doubles the wait, up to ``MAX_INTERVAL``, so a thousand quiet mailboxes cost
little while a busy one stays prompt. A failed channel waits for its retry time instead.
Push (IDLE) only makes a channel due at once; missing every push still converges within
one polling interval.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import Approval, Channel
from crmsync.crm.models.mail import EmailServerProfile, Mailbox, MailboxChannel
from crmsync.crm.models.org import Organisation
from crmsync.crm.settings import OrganisationSettings

MAX_INTERVAL = timedelta(minutes=15)
DEFAULT_MIN_INTERVAL = timedelta(seconds=60)


@dataclass(frozen=True)
class ChannelState:
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    quiet_polls: int
    min_interval: timedelta


def poll_interval(min_interval: timedelta, quiet_polls: int) -> timedelta:
    factor = 2 ** min(quiet_polls, 16)
    interval: timedelta = min(MAX_INTERVAL, max(min_interval, min_interval * factor))
    return interval


def next_due(state: ChannelState) -> datetime | None:
    """When the channel should run next; None means now (never run)."""
    if state.next_attempt_at is not None:
        return state.next_attempt_at
    if state.last_attempt_at is None:
        return None
    return state.last_attempt_at + poll_interval(state.min_interval, state.quiet_polls)


def _approval_required(session: Session) -> dict[uuid.UUID, bool]:
    return {
        organisation.id: OrganisationSettings.model_validate(
            organisation.settings
        ).process_email_only_for_approved
        for organisation in session.scalars(select(Organisation))
    }


def due_mailboxes(session: Session, channel: Channel, now: datetime) -> list[uuid.UUID]:
    """Enabled channels whose time has come and that nobody holds a lease on."""
    approval_required = _approval_required(session)
    query = (
        select(
            Mailbox.id,
            Mailbox.organisation_id,
            Mailbox.approval,
            MailboxChannel.last_attempt_at,
            MailboxChannel.next_attempt_at,
            MailboxChannel.quiet_polls,
            MailboxChannel.lease_expires_at,
            EmailServerProfile.min_polling_seconds,
        )
        .join(MailboxChannel, MailboxChannel.mailbox_id == Mailbox.id)
        .outerjoin(EmailServerProfile, EmailServerProfile.id == Mailbox.profile_id)
        .where(MailboxChannel.channel == channel, MailboxChannel.enabled.is_(True))
    )
    due = []
    for row in session.execute(query):
        mailbox_id, organisation_id, approval, last, retry_at, quiet, lease_until, min_seconds = row
        if approval is not Approval.APPROVED and approval_required.get(organisation_id, True):
            continue
        if lease_until is not None and lease_until > now:
            continue
        minimum = timedelta(seconds=min_seconds) if min_seconds else DEFAULT_MIN_INTERVAL
        when = next_due(ChannelState(last, retry_at, quiet, minimum))
        if when is None or when <= now:
            due.append(mailbox_id)
    return due

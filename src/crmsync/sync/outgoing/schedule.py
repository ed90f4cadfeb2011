"""When a mailbox has outgoing work: email due to be sent, or an orphan to settle.

For the embedded runtime (and Celery beat later): ``due_outgoing`` lists mailboxes whose
OUTGOING channel can run now — it sends (approved where required, outgoing method
server-side sync, enabled), is not leased, is not waiting out a channel failure — and
that have a ``pending_send`` email whose ``next_send_at`` has come, or a ``sending``
email whose worker is gone (a dead process of this host, or a claim older than the
lease TTL). A mailbox that cannot send is not listed: its queued email waits, and the
alert raised when it was queued (crmsync.crm.outbound.hold) says why.

Read-only; one short transaction, the caller's.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from crmsync.core.types import Channel, EmailStatus
from crmsync.crm import outbound
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.sync import leases
from crmsync.sync.leases import owner_is_dead as dead_local_owner


def due_outgoing(
    session: Session, now: datetime, lease_ttl: timedelta = leases.DEFAULT_TTL
) -> list[uuid.UUID]:
    """Mailboxes with outgoing work that can run now (see the module docstring)."""
    pending = (Email.status == EmailStatus.PENDING_SEND) & or_(
        Email.next_send_at.is_(None), Email.next_send_at <= now
    )
    rows = session.execute(
        select(Email.send_mailbox_id, Email.status, Email.send_claim, Email.send_claimed_at)
        .where(
            Email.send_mailbox_id.is_not(None),
            or_(pending, Email.status == EmailStatus.SENDING),
        )
        .distinct()
    ).all()
    wanted: set[uuid.UUID] = set()
    for mailbox_id, status, claim, claimed_at in rows:
        if mailbox_id is None:
            continue
        stale = claimed_at is None or claimed_at < now - lease_ttl
        if status is EmailStatus.PENDING_SEND or stale or dead_local_owner(claim):
            wanted.add(mailbox_id)
    due = []
    for mailbox in session.scalars(select(Mailbox).where(Mailbox.id.in_(wanted))):
        if outbound.sending_blocker(session, mailbox):
            continue
        channel = mailbox.channel(Channel.OUTGOING)
        if channel.lease_expires_at is not None and channel.lease_expires_at > now:
            continue
        if channel.next_attempt_at is not None and channel.next_attempt_at > now:
            continue
        due.append(mailbox.id)
    return due


def pending_by_mailbox(session: Session) -> dict[uuid.UUID, int]:
    """How many emails each mailbox has queued (due now or later), for progress bars."""
    rows = session.execute(
        select(Email.send_mailbox_id, func.count(Email.id))
        .where(Email.status == EmailStatus.PENDING_SEND, Email.send_mailbox_id.is_not(None))
        .group_by(Email.send_mailbox_id)
    )
    return {mailbox_id: int(count) for mailbox_id, count in rows if mailbox_id is not None}

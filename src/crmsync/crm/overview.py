"""The administrators' overview: how many mailboxes fail, wait or work, the live alerts
by severity, the item failures not yet resolved — counts only, for the /admin home page.

Each count covers what the principal may read, by the same rules as the lists they
summarise: mailboxes through ``access.visible``; alerts as ``crm.alerts.visible_alerts``
shows them (all of the organisation's for whoever reads every mailbox, else those of
the mailboxes and profiles the principal owns); item failures of the mailboxes the
principal may read.

Must never count a row the principal could not list, and never load rows to count them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, exists, func, or_, select
from sqlalchemy.orm import Session

from crmsync.core.types import AlertSeverity, Approval, ChannelStatus, Privilege, RecordType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.alerts import LIVE
from crmsync.crm.models.mail import Alert, ItemFailure, Mailbox, MailboxChannel


@dataclass(frozen=True)
class MailboxCounts:
    """``failing``: a channel's last attempt failed; ``pending_approval``: waiting for an
    administrator; ``healthy``: approved, nothing failing, a channel has synchronised.
    A mailbox may be both failing and pending; ``total`` counts each once."""

    total: int = 0
    failing: int = 0
    pending_approval: int = 0
    healthy: int = 0


@dataclass(frozen=True)
class Overview:
    mailboxes: MailboxCounts = MailboxCounts()
    # Every severity present, most severe first; zero where there is none.
    alerts: dict[AlertSeverity, int] = field(default_factory=dict)
    unresolved_failures: int = 0

    @property
    def open_alerts(self) -> int:
        return sum(self.alerts.values())


def _channel_with(status: ChannelStatus) -> ColumnElement[bool]:
    return exists().where(MailboxChannel.mailbox_id == Mailbox.id, MailboxChannel.status == status)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def mailbox_counts(session: Session, principal: Principal) -> MailboxCounts:
    failing = _channel_with(ChannelStatus.FAILURE)
    pending = Mailbox.approval == Approval.PENDING
    healthy = and_(
        Mailbox.approval == Approval.APPROVED, ~failing, _channel_with(ChannelStatus.SUCCESS)
    )

    row = session.execute(
        select(
            func.count(Mailbox.id), _count_if(failing), _count_if(pending), _count_if(healthy)
        ).where(access.visible(Mailbox, principal))
    ).one()
    return MailboxCounts(*(int(value or 0) for value in row))


def _visible_alerts(principal: Principal) -> ColumnElement[bool]:
    # The rule of crm.alerts.visible_alerts, as a filter to count with.
    clause = Alert.organisation_id == principal.organisation_id
    if principal.is_admin_of(RecordType.MAILBOX, Privilege.READ):
        return clause
    return and_(
        clause,
        or_(
            Alert.mailbox_owner_id == principal.user_id,
            Alert.profile_owner_id == principal.user_id,
        ),
    )


def alert_counts(session: Session, principal: Principal) -> dict[AlertSeverity, int]:
    """``{ERROR: 2, WARNING: 0, INFORMATION: 5}``: the live alerts (open or acknowledged:
    a problem someone should look at) the principal would see on the alert wall."""
    rows = session.execute(
        select(Alert.severity, func.count(Alert.id))
        .where(_visible_alerts(principal), Alert.state.in_(LIVE))
        .group_by(Alert.severity)
    ).all()
    found = {AlertSeverity(severity): int(count) for severity, count in rows}
    return {severity: found.get(severity, 0) for severity in AlertSeverity}


def unresolved_failures(session: Session, principal: Principal) -> int:
    """Item failures not yet resolved, of the mailboxes the principal may read."""
    count = session.scalar(
        select(func.count(ItemFailure.id))
        .join(Mailbox, Mailbox.id == ItemFailure.mailbox_id)
        .where(ItemFailure.resolved_at.is_(None), access.visible(Mailbox, principal))
    )
    return int(count or 0)


def overview(session: Session, principal: Principal) -> Overview:
    return Overview(
        mailboxes=mailbox_counts(session, principal),
        alerts=alert_counts(session, principal),
        unresolved_failures=unresolved_failures(session, principal),
    )

"""Alerts, item-level failures and channel health, as stored records.

An alert tells the mailbox's owner and the profile's owner (administrators see them all)
what went wrong and what to do. The same problem on the same mailbox channel is one
alert whose ``occurrences`` grows, not a flood: while it is open or acknowledged, or
within an hour of when it was last seen. Item failures record one message or event that
could not be processed — kept with its raw bytes, never dropped.

An alert's life::

    raised ──▶ open ──acknowledge──▶ acknowledged ──┐
                │  ▲                     │           │ cause gone (channel ok again,
                │  └──raised again───┐   │           │ profile no longer mostly failing)
                │                    │   ▼           ▼
                ├──dismiss──▶ dismissed  resolved ◀──┘
                └──cause gone──────────────▲

An alert with a ``cause`` resolves itself when that cause is gone (``mark_channel_ok``
resolves the channel's; a profile's "most mailboxes failing" resolves when the failing
share drops to half or less); one without (a renumbered folder, a bounced send) waits for
a person. Raised again within the hour, a resolved alert opens again (a new occurrence);
a dismissed one stays dismissed — someone said it is no problem — and an acknowledged
one stays acknowledged.

Must never let someone act on an alert they cannot see (``visible_alerts``' rule).
Both alerts and resolved item failures are kept for the organisation's retention period
(``alert_retention_days``) and then purged (``purge_expired``, hourly under serve).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, case, delete, func, or_, select
from sqlalchemy.orm import Session, object_session

from crmsync.core.alerts import ALERTS, AlertCode, title_of
from crmsync.core.types import (
    AlertCause,
    AlertSeverity,
    AlertState,
    Channel,
    ChannelStatus,
    Privilege,
    RecordType,
)
from crmsync.crm.access import Principal
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import Alert, EmailServerProfile, ItemFailure, Mailbox, MailboxChannel
from crmsync.crm.models.org import Organisation
from crmsync.crm.pagination import Page, paginate
from crmsync.crm.settings import OrganisationSettings

DEDUPE_WINDOW = timedelta(hours=1)
LIVE = (AlertState.OPEN, AlertState.ACKNOWLEDGED)  # a problem someone should look at
CLOSED = (AlertState.DISMISSED, AlertState.RESOLVED)


def _same(column: Any, value: object) -> ColumnElement[bool]:
    return column.is_(None) if value is None else column == value  # type: ignore[no-any-return]


def raise_alert(
    session: Session,
    *,
    organisation_id: uuid.UUID,
    severity: AlertSeverity,
    code: str,
    title: str,
    detail: str = "",
    remediation: str = "",
    mailbox: Mailbox | None = None,
    profile: EmailServerProfile | None = None,
    channel: Channel | None = None,
    cause: AlertCause | None = None,
    now: datetime | None = None,
) -> Alert:
    """The alert for this problem, raised anew or once more (``occurrences`` + 1).

    ``cause`` says what makes it resolve itself; None leaves it to a person.
    """
    now = now or utcnow()
    profile = profile or (mailbox.profile if mailbox is not None else None)
    recent = session.scalars(
        select(Alert)
        .where(
            Alert.organisation_id == organisation_id,
            _same(Alert.mailbox_id, mailbox.id if mailbox else None),
            _same(Alert.profile_id, profile.id if profile else None),
            _same(Alert.channel, channel),
            Alert.code == code,
            or_(Alert.state.in_(LIVE), Alert.last_seen_at >= now - DEDUPE_WINDOW),
        )
        .order_by(Alert.last_seen_at.desc())
        .limit(1)
    ).first()
    if recent is not None:
        # The latest word wins: a retried failure may since have disabled the channel.
        recent.occurrences += 1
        recent.last_seen_at = now
        recent.severity, recent.title = severity, title
        recent.detail, recent.remediation = detail, remediation
        recent.cause = cause
        if recent.state is AlertState.RESOLVED:  # the cause is back
            recent.state, recent.resolved_at, recent.resolution = AlertState.OPEN, None, None
        return recent
    alert = Alert(
        organisation_id=organisation_id,
        mailbox_id=mailbox.id if mailbox else None,
        profile_id=profile.id if profile else None,
        channel=channel,
        mailbox_owner_id=mailbox.owner_id if mailbox else None,
        profile_owner_id=profile.owner_id if profile else None,
        severity=severity,
        code=code,
        title=title,
        detail=detail,
        remediation=remediation,
        state=AlertState.OPEN,
        cause=cause,
        created_at=now,
        last_seen_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def raise_catalogued(
    session: Session,
    code: AlertCode,
    *,
    organisation_id: uuid.UUID,
    detail: str,
    remediation: str | None = None,
    mailbox: Mailbox | None = None,
    profile: EmailServerProfile | None = None,
    channel: Channel | None = None,
    cause: AlertCause | None = None,
    now: datetime | None = None,
    **title_fields: object,
) -> Alert:
    """``raise_alert`` for a code of the alert catalogue (``core.alerts``): its severity,
    title and remediation come from there; ``remediation`` is given only where the
    catalogue leaves it to the underlying error."""
    text = ALERTS[code]
    return raise_alert(
        session,
        organisation_id=organisation_id,
        severity=text.severity,
        code=code.value,
        title=title_of(code, **title_fields),
        detail=detail,
        remediation=text.remediation if remediation is None else remediation,
        mailbox=mailbox,
        profile=profile,
        channel=channel,
        cause=cause,
        now=now,
    )


def resolve_alerts(session: Session, query: Select[Alert], why: str, now: datetime) -> int:
    """Resolve the live alerts ``query`` selects; how many were."""
    resolved = 0
    for alert in session.scalars(query.where(Alert.state.in_(LIVE))):
        alert.state, alert.resolved_at, alert.resolution = AlertState.RESOLVED, now, why
        resolved += 1
    return resolved


def resolve_channel_alerts(
    session: Session, mailbox_id: uuid.UUID, channel: Channel, now: datetime
) -> int:
    """The channel succeeded: its failure alerts (and "channel disabled") are over."""
    return resolve_alerts(
        session,
        select(Alert).where(
            Alert.mailbox_id == mailbox_id,
            Alert.channel == channel,
            Alert.cause == AlertCause.CHANNEL_FAILING,
        ),
        f"The {channel.value} channel succeeded again.",
        now,
    )


def resolve_profile_alerts_if_recovered(
    session: Session, profile: EmailServerProfile, now: datetime
) -> int:
    """Resolve the profile's "most mailboxes failing" once half or fewer fail."""
    live = list(
        session.scalars(
            select(Alert).where(
                Alert.profile_id == profile.id,
                Alert.mailbox_id.is_(None),
                Alert.cause == AlertCause.PROFILE_FAILING,
                Alert.state.in_(LIVE),
            )
        )
    )
    if not live:  # the usual case: a successful pass costs one query here
        return 0
    session.flush()
    failing, total = failing_share(session, profile, now)
    if total and failing * 2 > total:
        return 0
    for alert in live:
        alert.state, alert.resolved_at = AlertState.RESOLVED, now
        alert.resolution = f"{failing} of {total} mailboxes fail now."
    return len(live)


def _visible(principal: Principal) -> Select[Alert]:
    query = select(Alert).where(Alert.organisation_id == principal.organisation_id)
    if not principal.is_admin_of(RecordType.MAILBOX, Privilege.READ):
        query = query.where(
            or_(
                Alert.mailbox_owner_id == principal.user_id,
                Alert.profile_owner_id == principal.user_id,
            )
        )
    return query


def visible_alerts(
    session: Session,
    principal: Principal,
    *,
    mailbox_id: uuid.UUID | None = None,
    severity: AlertSeverity | None = None,
    states: tuple[AlertState, ...] | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Alert]:
    """The alerts the caller is told about, newest first; ``states`` None means all."""
    query = _visible(principal)
    if mailbox_id is not None:
        query = query.where(Alert.mailbox_id == mailbox_id)
    if severity is not None:
        query = query.where(Alert.severity == severity)
    if states is not None:
        query = query.where(Alert.state.in_(states))
    return paginate(session, query, Alert.created_at, Alert.id, cursor=cursor, limit=limit)


SEVERITY_RANK = {AlertSeverity.ERROR: 0, AlertSeverity.WARNING: 1, AlertSeverity.INFORMATION: 2}
STATE_RANK = {
    AlertState.OPEN: 0,
    AlertState.ACKNOWLEDGED: 1,
    AlertState.RESOLVED: 2,
    AlertState.DISMISSED: 3,
}


def alert_wall(
    session: Session, principal: Principal, states: tuple[AlertState, ...], *, limit: int = 200
) -> list[Alert]:
    """The caller's alerts in ``states``: open first, then by severity, latest first."""
    query = (
        _visible(principal)
        .where(Alert.state.in_(states))
        .order_by(
            case(STATE_RANK, value=Alert.state, else_=9),
            case(SEVERITY_RANK, value=Alert.severity, else_=9),
            Alert.last_seen_at.desc(),
            Alert.id,
        )
        .limit(limit)
    )
    return list(session.scalars(query))


def get_alert(session: Session, principal: Principal, alert_id: uuid.UUID) -> Alert:
    """An alert the caller can see; NotFound otherwise, whether or not it exists."""
    alert = session.scalar(_visible(principal).where(Alert.id == alert_id))
    if alert is None:
        raise NotFound("alert", alert_id)
    return alert


def acknowledge_alert(
    session: Session, principal: Principal, alert_id: uuid.UUID, now: datetime | None = None
) -> Alert:
    """Someone is on it: an open alert becomes acknowledged (others are left as they are)."""
    alert = get_alert(session, principal, alert_id)
    if alert.state is AlertState.OPEN:
        alert.state = AlertState.ACKNOWLEDGED
        alert.acknowledged_by_id, alert.acknowledged_at = principal.user_id, now or utcnow()
    return alert


def dismiss_alert(
    session: Session, principal: Principal, alert_id: uuid.UUID, now: datetime | None = None
) -> Alert:
    """Not a problem: a live alert leaves the wall (a resolved one stays resolved)."""
    alert = get_alert(session, principal, alert_id)
    if alert.state in LIVE:
        alert.state = AlertState.DISMISSED
        alert.dismissed_by_id, alert.dismissed_at = principal.user_id, now or utcnow()
    return alert


def record_item_failure(
    session: Session,
    mailbox: Mailbox,
    channel: Channel,
    item_ref: str,
    code: str,
    detail: str,
    raw_sha256: str | None = None,
    now: datetime | None = None,
) -> ItemFailure:
    now = now or utcnow()
    failure = session.scalar(
        select(ItemFailure).where(
            ItemFailure.mailbox_id == mailbox.id,
            ItemFailure.channel == channel,
            ItemFailure.item_ref == item_ref,
        )
    )
    if failure is None:
        failure = ItemFailure(
            organisation_id=mailbox.organisation_id,
            mailbox_id=mailbox.id,
            channel=channel,
            item_ref=item_ref,
            code=code,
            detail=detail,
            raw_sha256=raw_sha256,
            first_seen_at=now,
            last_seen_at=now,
        )
        session.add(failure)
    else:
        failure.attempts += 1
        failure.code, failure.detail, failure.last_seen_at = code, detail, now
        failure.raw_sha256 = raw_sha256 or failure.raw_sha256
        # Failing again puts it back in the triage queue, whatever became of it before.
        failure.resolved_at = failure.resolution = failure.resolved_by_id = None
    session.flush()
    return failure


def item_failures(
    session: Session, mailbox: Mailbox, *, cursor: str | None = None, limit: int = 50
) -> Page[ItemFailure]:
    query = select(ItemFailure).where(ItemFailure.mailbox_id == mailbox.id)
    return paginate(
        session, query, ItemFailure.last_seen_at, ItemFailure.id, cursor=cursor, limit=limit
    )


def purge_older_than(session: Session, organisation_id: uuid.UUID, cutoff: datetime) -> int:
    """Delete alerts last seen, and resolved item failures, before ``cutoff``."""
    alerts = session.execute(
        delete(Alert).where(Alert.organisation_id == organisation_id, Alert.last_seen_at < cutoff)
    )
    failures = session.execute(
        delete(ItemFailure).where(
            ItemFailure.organisation_id == organisation_id,
            ItemFailure.resolved_at.is_not(None),
            ItemFailure.resolved_at < cutoff,
        )
    )
    return int(alerts.rowcount or 0) + int(failures.rowcount or 0)  # type: ignore[attr-defined]


def purge_expired(session: Session, now: datetime) -> int:
    """Purge, in every organisation, the alerts and resolved item failures older than its
    ``alert_retention_days``; how many rows went."""
    purged = 0
    for organisation in session.scalars(select(Organisation)):
        days = OrganisationSettings.model_validate(organisation.settings).alert_retention_days
        purged += purge_older_than(session, organisation.id, now - timedelta(days=days))
    return purged


def failing_share(session: Session, profile: EmailServerProfile, now: datetime) -> tuple[int, int]:
    """(mailboxes of the profile with a channel failing in the last hour, all of them)."""
    total = (
        session.scalar(select(func.count(Mailbox.id)).where(Mailbox.profile_id == profile.id)) or 0
    )
    failing = (
        session.scalar(
            select(func.count(func.distinct(Mailbox.id)))
            .join(MailboxChannel, MailboxChannel.mailbox_id == Mailbox.id)
            .where(
                Mailbox.profile_id == profile.id,
                MailboxChannel.status == ChannelStatus.FAILURE,
                MailboxChannel.last_attempt_at >= now - timedelta(hours=1),
            )
        )
        or 0
    )
    return int(failing), int(total)


def mark_channel_ok(
    channel: MailboxChannel, *, now: datetime, enable: bool = False, items: int = 0
) -> None:
    """Record a successful attempt (a sync, or a Test & Enable that passed).

    The causes it removes go with it: the channel's failure alerts resolve, and so does
    its profile's "most mailboxes failing" once half or fewer fail (in the channel's
    session, when it has one).
    """
    channel.quiet_polls = 0 if items else channel.quiet_polls + 1
    channel.status = ChannelStatus.SUCCESS
    channel.last_attempt_at = channel.last_success_at = now
    channel.consecutive_failures = 0
    channel.next_attempt_at = None
    channel.last_error_code = channel.last_error_detail = None
    channel.items_processed += items
    if enable:
        channel.enabled = True
    session = object_session(channel)
    if session is None:
        return
    resolve_channel_alerts(session, channel.mailbox_id, channel.channel, now)
    profile = channel.mailbox.profile
    if profile is not None:
        resolve_profile_alerts_if_recovered(session, profile, now)


def mark_channel_failed(
    channel: MailboxChannel,
    *,
    now: datetime,
    code: str,
    detail: str,
    disable: bool,
    retry_at: datetime | None,
) -> None:
    """Record a failed attempt; ``disable`` when the error is (or became) permanent."""
    channel.status = ChannelStatus.FAILURE
    channel.last_attempt_at = now
    channel.consecutive_failures += 1
    channel.last_error_code, channel.last_error_detail = code, detail
    channel.next_attempt_at = None if disable else retry_at
    if disable:
        channel.enabled = False

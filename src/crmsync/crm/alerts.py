"""Alerts, item-level failures and channel health, as stored records.

An alert tells the mailbox's owner and the profile's owner (administrators see them all)
what went wrong and what to do. The same problem on the same mailbox channel within an
hour is one alert whose ``occurrences`` grows, not a flood. Item failures record one
message or event that could not be processed — kept with its raw bytes, never dropped.

Both are kept for the organisation's retention period and then purged.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.orm import Session

from crmsync.crm.access import Principal
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Alert, EmailServerProfile, ItemFailure, Mailbox, MailboxChannel
from crmsync.crm.pagination import Page, paginate
from crmsync.crm.types import AlertSeverity, Channel, ChannelStatus, Privilege, RecordType

DEDUPE_WINDOW = timedelta(hours=1)


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
    now: datetime | None = None,
) -> Alert:
    now = now or utcnow()
    profile = profile or (mailbox.profile if mailbox is not None else None)
    recent = session.scalar(
        select(Alert).where(
            Alert.organisation_id == organisation_id,
            _same(Alert.mailbox_id, mailbox.id if mailbox else None),
            _same(Alert.profile_id, profile.id if profile else None),
            _same(Alert.channel, channel),
            Alert.code == code,
            Alert.last_seen_at >= now - DEDUPE_WINDOW,
        )
    )
    if recent is not None:
        # The latest word wins: a retried failure may since have disabled the channel.
        recent.occurrences += 1
        recent.last_seen_at = now
        recent.severity, recent.title = severity, title
        recent.detail, recent.remediation = detail, remediation
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
        created_at=now,
        last_seen_at=now,
    )
    session.add(alert)
    session.flush()
    return alert


def visible_alerts(
    session: Session,
    principal: Principal,
    *,
    mailbox_id: uuid.UUID | None = None,
    severity: AlertSeverity | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[Alert]:
    query = select(Alert).where(Alert.organisation_id == principal.organisation_id)
    if not principal.is_admin_of(RecordType.MAILBOX, Privilege.READ):
        query = query.where(
            or_(
                Alert.mailbox_owner_id == principal.user_id,
                Alert.profile_owner_id == principal.user_id,
            )
        )
    if mailbox_id is not None:
        query = query.where(Alert.mailbox_id == mailbox_id)
    if severity is not None:
        query = query.where(Alert.severity == severity)
    return paginate(session, query, Alert.created_at, Alert.id, cursor=cursor, limit=limit)


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
        failure.resolved_at = None
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
    channel.quiet_polls = 0 if items else channel.quiet_polls + 1
    channel.status = ChannelStatus.SUCCESS
    channel.last_attempt_at = channel.last_success_at = now
    channel.consecutive_failures = 0
    channel.next_attempt_at = None
    channel.last_error_code = channel.last_error_detail = None
    channel.items_processed += items
    if enable:
        channel.enabled = True


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

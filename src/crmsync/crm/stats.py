"""Pass statistics: written by the engines, read as the performance dashboard's series.

Writing — ``record_pass`` adds one ``SyncPass`` row in the caller's transaction (the one
that records the pass's outcome on its channel), and drops that mailbox's rows older
than ``RETENTION`` (an indexed range that is almost always empty, so each pass pays
little and no separate purge job is needed).

Reading — ``dashboard(session, principal, window)`` aggregates one window into buckets::

    window  bucket   buckets      e.g. dashboard(...).buckets[0] → 1796029200 (epoch s)
    24h     1 hour   24
    7d      6 hours  28
    30d     1 day    30

per bucket: messages fetched, tracked and failed (incoming), emails sent (outgoing),
push latency (median and 95th percentile of the IDLE-triggered passes); per mailbox the
longest sync lag of each bucket (the mailboxes with the longest lag, at most
``MAX_LAG_SERIES``); per profile the window's totals. Only an administrator of mailboxes
(organisation-depth read) gets it — anyone else is told the dashboard does not exist
(NotFound) — and only mailboxes and profiles ``crm/access.py`` lets them read count.

``channel_states`` counts mailbox channels by state for the Prometheus gauge: it is the
operator's view of the whole host (the /metrics endpoint is protected by the operator's
token), made of counts and profile names, never of a person's address.

Must never return an address, a subject or anything else of a message; never read past
access control for a person.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select
from sqlalchemy.orm import Session

from crmsync.core.types import Channel, ChannelStatus, Privilege, Protocol, RecordType, ServerType
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.db import utcnow
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import EmailServerProfile, Mailbox, MailboxChannel
from crmsync.crm.models.stats import SyncPass

RETENTION = timedelta(days=30)
MAX_LAG_SERIES = 8
HOUR = 3600


class Window(enum.StrEnum):
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def bucket_hours(self) -> int:
        return {Window.DAY: 1, Window.WEEK: 6, Window.MONTH: 24}[self]

    @property
    def bucket_count(self) -> int:
        return {Window.DAY: 24, Window.WEEK: 28, Window.MONTH: 30}[self]

    @property
    def label(self) -> str:
        return {Window.DAY: "24 hours", Window.WEEK: "7 days", Window.MONTH: "30 days"}[self]


def channel_protocol(server_type: ServerType | None, channel: Channel) -> str:
    """The protocol a channel of a profile speaks: ``imap``, ``pop3``, ``smtp`` (outgoing
    beside IMAP or POP3), ``ews``, ``graph`` — ``none`` without a profile."""
    if server_type is None:
        return "none"
    incoming = server_type.incoming_protocol
    if channel is Channel.OUTGOING and incoming.is_internet_mail:
        return Protocol.SMTP.value
    return incoming.value


def epoch_hour(when: datetime) -> int:
    """Whole hours since the Unix epoch: ``2026-12-06 17:40 UTC`` → 493553."""
    return int(when.timestamp()) // HOUR


# -- writing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PassFigures:
    """What one pass did, as the engine counted it."""

    protocol: str
    started_at: datetime
    fetched: int = 0
    tracked: int = 0
    failed: int = 0
    sent: int = 0
    pushed_at: datetime | None = None  # the IDLE notice that triggered the pass
    error_code: str | None = None


def record_pass(
    session: Session,
    mailbox: Mailbox,
    channel: Channel,
    figures: PassFigures,
    *,
    previous_success: datetime | None,
    now: datetime,
) -> SyncPass:
    """Add the pass's row; call it before the channel's ``last_success_at`` is updated
    (``previous_success`` is the value it had when the pass started)."""
    lag = (figures.started_at - previous_success).total_seconds() if previous_success else None
    latency = (now - figures.pushed_at).total_seconds() if figures.pushed_at else None
    row = SyncPass(
        organisation_id=mailbox.organisation_id,
        mailbox_id=mailbox.id,
        profile_id=mailbox.profile_id,
        channel=channel,
        protocol=figures.protocol[:16],
        started_at=figures.started_at,
        hour=epoch_hour(figures.started_at),
        duration_seconds=max(0.0, (now - figures.started_at).total_seconds()),
        fetched=figures.fetched,
        tracked=figures.tracked,
        failed=figures.failed,
        sent=figures.sent,
        lag_seconds=max(0.0, lag) if lag is not None else None,
        push_latency_seconds=max(0.0, latency) if latency is not None else None,
        error_code=figures.error_code,
    )
    session.add(row)
    session.execute(
        delete(SyncPass).where(
            SyncPass.mailbox_id == mailbox.id, SyncPass.started_at < now - RETENTION
        )
    )
    return row


# -- reading: the dashboard ----------------------------------------------------------------


@dataclass(frozen=True)
class ProfileOption:
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class LagSeries:
    """One mailbox's longest lag (seconds) per bucket; None where it had no pass."""

    mailbox: str
    values: list[float | None]


@dataclass(frozen=True)
class ProfileTotals:
    name: str
    passes: int
    fetched: int
    tracked: int
    failed: int
    sent: int
    errors: int


@dataclass
class Dashboard:
    window: Window
    profile_id: uuid.UUID | None
    buckets: list[int]  # each bucket's start, seconds since the epoch (UTC)
    fetched: list[int]
    tracked: list[int]
    failed: list[int]
    sent: list[int]
    push_median: list[float | None]
    push_p95: list[float | None]
    lag: list[LagSeries]
    profiles: list[ProfileOption]
    by_profile: list[ProfileTotals] = field(default_factory=list)
    passes: int = 0
    errors: int = 0
    push_passes: int = 0

    @property
    def bucket_seconds(self) -> int:
        return self.window.bucket_hours * HOUR


def require_dashboard(principal: Principal) -> None:
    """Only those who administer the organisation's mailboxes see how they run."""
    if not principal.is_admin_of(RecordType.MAILBOX, Privilege.READ):
        raise NotFound("dashboard", "")


def visible_profiles(session: Session, principal: Principal) -> list[ProfileOption]:
    rows = session.execute(
        select(EmailServerProfile.id, EmailServerProfile.name)
        .where(access.visible(EmailServerProfile, principal))
        .order_by(EmailServerProfile.name)
    )
    return [ProfileOption(row.id, row.name) for row in rows]


def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile: ``percentile([1, 2, 3, 4], 0.5)`` → 2."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def dashboard(
    session: Session,
    principal: Principal,
    window: Window,
    *,
    profile_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> Dashboard:
    """The window's series, for the mailboxes (and the profile) the principal may read.

    A ``profile_id`` the principal may not read is NotFound, like the profile itself.
    """
    require_dashboard(principal)
    profiles = visible_profiles(session, principal)
    if profile_id is not None and profile_id not in {option.id for option in profiles}:
        raise NotFound("email_server_profile", profile_id)
    size = window.bucket_hours
    last = epoch_hour(now or utcnow()) // size
    first = last - window.bucket_count + 1
    buckets = list(range(first, last + 1))

    bucket = (SyncPass.hour // size).label("bucket")
    scope = [
        SyncPass.organisation_id == principal.organisation_id,
        SyncPass.hour >= first * size,
        access.visible(Mailbox, principal),
    ]
    if profile_id is not None:
        scope.append(SyncPass.profile_id == profile_id)

    sums: dict[int, tuple[int, int, int, int]] = {}
    passes = errors = 0
    for b, *totals in session.execute(_scoped(scope, bucket, *_totals()).group_by(bucket)):
        bucket_passes, fetched, tracked, failed, sent, bucket_errors = (
            int(value or 0) for value in totals
        )
        sums[int(b)] = (fetched, tracked, failed, sent)
        passes += bucket_passes
        errors += bucket_errors

    def series(index: int) -> list[int]:
        return [sums.get(b, (0, 0, 0, 0))[index] for b in buckets]

    latencies: dict[int, list[float]] = defaultdict(list)
    for b, seconds in session.execute(
        _scoped(scope, bucket, SyncPass.push_latency_seconds).where(
            SyncPass.push_latency_seconds.is_not(None)
        )
    ):
        latencies[int(b)].append(float(seconds))

    return Dashboard(
        window=window,
        profile_id=profile_id,
        buckets=[b * size * HOUR for b in buckets],
        fetched=series(0),
        tracked=series(1),
        failed=series(2),
        sent=series(3),
        push_median=[percentile(latencies.get(b, []), 0.5) for b in buckets],
        push_p95=[percentile(latencies.get(b, []), 0.95) for b in buckets],
        lag=_lag_series(session, scope, bucket, buckets),
        profiles=profiles,
        by_profile=_by_profile(session, scope, profiles),
        passes=passes,
        errors=errors,
        push_passes=sum(len(values) for values in latencies.values()),
    )


def _scoped(scope: list[ColumnElement[bool]], *columns: Any) -> Select[Any]:
    """``SELECT columns FROM sync_passes JOIN mailboxes WHERE scope``."""
    return select(*columns).join(Mailbox, Mailbox.id == SyncPass.mailbox_id).where(*scope)


def _totals() -> tuple[Any, ...]:
    """The passes' totals, in ``ProfileTotals``' order: passes, fetched, tracked, failed,
    sent, errors (a pass with an error code)."""
    return (
        func.count(SyncPass.id),
        func.sum(SyncPass.fetched),
        func.sum(SyncPass.tracked),
        func.sum(SyncPass.failed),
        func.sum(SyncPass.sent),
        func.count(SyncPass.error_code),
    )


def _lag_series(
    session: Session, scope: list[ColumnElement[bool]], bucket: Any, buckets: list[int]
) -> list[LagSeries]:
    rows = session.execute(
        _scoped(scope, Mailbox.id, Mailbox.name, bucket, func.max(SyncPass.lag_seconds))
        .where(SyncPass.channel == Channel.INCOMING, SyncPass.lag_seconds.is_not(None))
        .group_by(Mailbox.id, Mailbox.name, bucket)
    )
    by_mailbox: dict[uuid.UUID, tuple[str, dict[int, float]]] = {}
    for mailbox_id, name, b, lag in rows:
        by_mailbox.setdefault(mailbox_id, (name, {}))[1][int(b)] = float(lag)
    # The mailboxes that lag most are the ones worth a line of their own.
    worst = sorted(by_mailbox.values(), key=lambda item: (-max(item[1].values()), item[0]))
    return [
        LagSeries(name, [values.get(b) for b in buckets]) for name, values in worst[:MAX_LAG_SERIES]
    ]


def _by_profile(
    session: Session, scope: list[ColumnElement[bool]], profiles: list[ProfileOption]
) -> list[ProfileTotals]:
    names = {option.id: option.name for option in profiles}
    rows = session.execute(
        _scoped(scope, SyncPass.profile_id, *_totals()).group_by(SyncPass.profile_id)
    )
    totals = [
        ProfileTotals(
            names.get(row[0], "(no profile)") if row[0] else "(no profile)",
            *(int(value or 0) for value in row[1:]),
        )
        for row in rows
    ]
    return sorted(totals, key=lambda item: item.name.lower())


# -- reading: the operator's gauge -------------------------------------------------------


@dataclass(frozen=True)
class ChannelCount:
    """How many mailbox channels are in one state, e.g. incoming/success/enabled on
    profile 'Dovecot' (imap): 12."""

    channel: Channel
    status: ChannelStatus
    enabled: bool
    profile_id: uuid.UUID | None
    profile_name: str | None
    protocol: str
    count: int


def channel_states(session: Session) -> list[ChannelCount]:
    """Every organisation's mailbox channels, counted by state (for the operator)."""
    keys = (
        MailboxChannel.channel,
        MailboxChannel.status,
        MailboxChannel.enabled,
        EmailServerProfile.id,
        EmailServerProfile.name,
        EmailServerProfile.server_type,
    )
    rows = session.execute(
        select(*keys, func.count(MailboxChannel.id))
        .join(Mailbox, Mailbox.id == MailboxChannel.mailbox_id)
        .outerjoin(EmailServerProfile, EmailServerProfile.id == Mailbox.profile_id)
        .group_by(*keys)
    )
    return [
        ChannelCount(
            channel,
            status,
            bool(enabled),
            profile_id,
            name,
            channel_protocol(server_type, channel),
            int(count),
        )
        for channel, status, enabled, profile_id, name, server_type, count in rows
    ]

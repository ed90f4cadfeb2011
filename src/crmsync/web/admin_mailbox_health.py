"""What the mailbox pages show of a mailbox's health: one row per mailbox, one cell per
channel, and the steps of a Test & Enable run.

``mailbox_rows(session, principal, show, now)`` reads every mailbox the principal may
read (``crm/access.visible``), their unresolved item failures and their latest finished
Test & Enable, and turns them into ``MailboxRow``s::

    MailboxRow(name="Alice Jones", kind="User", address="alice@acme.test",
               approval=Approval.APPROVED, channels=[ChannelCell(label="Incoming",
               state="failing", code="AUTH_FAILED", remediation="Check the user name …",
               lag="3 min", mode="push (IDLE)", failed_items=2, …), …])

``run_steps(run, planned, now)`` lists a run's steps for the page: those finished (ok or
failed), then, while it runs, the one under way and those still to come.

Push or poll: nothing records which one a running watcher uses, so the cell says what
the last Test & Enable found — IMAP with IDLE is pushed, anything else polled.

Must never show a mailbox the principal may not read, nor any credential: cells carry
states, times, counts, codes and the error catalogue's sentences only.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crmsync.core.errors import CATALOGUE, ErrorCode
from crmsync.core.types import (
    Approval,
    Channel,
    ChannelStatus,
    IncomingMethod,
    Protocol,
    SyncMethod,
)
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.models.mail import ItemFailure, Mailbox, MailboxChannel, MailboxTest
from crmsync.sync.check_enable import is_stale
from crmsync.sync.schedule import DEFAULT_MIN_INTERVAL, ChannelState, next_due
from crmsync.web.templating import format_datetime

CHANNEL_LABELS = {
    Channel.INCOMING: "Incoming",
    Channel.OUTGOING: "Outgoing",
    Channel.ACT: "Appointments, contacts, tasks",
}
STEP_LABELS = {
    "dns": "Name lookup",
    "tcp": "Connection",
    "tls": "Secure connection",
    "auth": "Sign-in",
    "inbox": "Inbox",
    "ehlo": "Greeting",
    "configuration": "Configuration",
}


class Show(enum.StrEnum):
    """The table's filters, as the query parameter ``show`` spells them."""

    ALL = "all"
    FAILING = "failing"
    PENDING = "pending"


@dataclass(frozen=True)
class ChannelCell:
    channel: Channel
    label: str
    used: bool  # its method is not "none"
    enabled: bool
    state: str  # ok · failing · not run · off · not used: the cell's colour
    last_success: str
    lag: str
    next_run: str
    mode: str
    items_processed: int
    failed_items: int
    code: str | None
    title: str | None
    remediation: str | None
    detail: str | None


@dataclass(frozen=True)
class MailboxRow:
    id: uuid.UUID
    name: str
    kind: str  # User · Queue
    address: str
    profile: str
    approval: Approval
    channels: list[ChannelCell]

    @property
    def failing(self) -> bool:
        return any(cell.state == "failing" for cell in self.channels)


@dataclass(frozen=True)
class StepView:
    channel: str
    channel_label: str
    name: str
    label: str
    state: str  # ok · failed · running · pending
    detail: str
    code: str | None
    remediation: str | None
    seconds: float | None


def human_span(span: timedelta) -> str:
    """``timedelta(seconds=40)`` → ``40 s``; 200 s → ``3 min``; 5 h → ``5 h``; 3 days → ``3 d``."""
    seconds = max(0, int(span.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def catalogue_entry(code: str | None) -> tuple[str | None, str | None]:
    """(title, remediation) of an error code; (None, None) for a code not in the catalogue."""
    if not code:
        return None, None
    try:
        entry = CATALOGUE[ErrorCode(code)]
    except ValueError:
        return None, None
    return entry.title, entry.remediation


def _used(mailbox: Mailbox, which: Channel) -> bool:
    return mailbox.method_of(which) not in (SyncMethod.NONE, IncomingMethod.NONE)


def _state(used: bool, channel: MailboxChannel) -> str:
    if not used:
        return "not used"
    if channel.status is ChannelStatus.FAILURE:
        return "failing"
    if channel.status is ChannelStatus.NOT_RUN:
        return "not run"
    return "ok" if channel.enabled else "off"


def _mode(mailbox: Mailbox, which: Channel, capabilities: str | None) -> str:
    if which is not Channel.INCOMING:
        return "poll"
    if mailbox.incoming_method is IncomingMethod.FORWARD_MAILBOX:
        return "forward mailbox"
    protocol = mailbox.profile.server_type.incoming_protocol if mailbox.profile else None
    if protocol != Protocol.IMAP:
        return "poll"
    if capabilities is None:
        return "push if the server offers IDLE"
    return "push (IDLE)" if "IDLE" in capabilities.split() else "poll (no IDLE)"


def _cell(
    mailbox: Mailbox,
    channel: MailboxChannel,
    failed: int,
    capabilities: str | None,
    now: datetime,
) -> ChannelCell:
    used = _used(mailbox, channel.channel)
    code = channel.last_error_code if channel.status is ChannelStatus.FAILURE else None
    title, remediation = catalogue_entry(code)
    profile = mailbox.profile
    interval = timedelta(seconds=profile.min_polling_seconds) if profile else DEFAULT_MIN_INTERVAL
    due = next_due(
        ChannelState(
            channel.last_attempt_at, channel.next_attempt_at, channel.quiet_polls, interval
        )
    )
    if not (used and channel.enabled):
        next_run = ""
    elif due is None or due <= now:
        next_run = "due now"
    else:
        next_run = f"in {human_span(due - now)}"
    success = channel.last_success_at
    return ChannelCell(
        channel=channel.channel,
        label=CHANNEL_LABELS[channel.channel],
        used=used,
        enabled=channel.enabled,
        state=_state(used, channel),
        last_success=format_datetime(success) if success else "never",
        lag=human_span(now - success) if success else "",
        next_run=next_run,
        mode=_mode(mailbox, channel.channel, capabilities),
        items_processed=channel.items_processed,
        failed_items=failed,
        code=code,
        title=title,
        remediation=remediation,
        detail=channel.last_error_detail if code else None,
    )


def _failed_items(session: Session, ids: Sequence[uuid.UUID]) -> dict[tuple[Any, Any], int]:
    if not ids:
        return {}
    query = (
        select(ItemFailure.mailbox_id, ItemFailure.channel, func.count(ItemFailure.id))
        .where(ItemFailure.mailbox_id.in_(ids), ItemFailure.resolved_at.is_(None))
        .group_by(ItemFailure.mailbox_id, ItemFailure.channel)
    )
    return {(mailbox_id, which): int(count) for mailbox_id, which, count in session.execute(query)}


def incoming_capabilities(steps: Iterable[dict[str, Any]]) -> str | None:
    """The capabilities an incoming ``inbox`` step reported, or None if there was none."""
    for step in steps:
        if step.get("channel") == Channel.INCOMING.value and step.get("name") == "inbox":
            detail = str(step.get("detail") or "")
            return detail.partition("capabilities:")[2].partition(";")[0]
    return None


def _latest_capabilities(session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    latest = (
        select(MailboxTest.mailbox_id, func.max(MailboxTest.started_at).label("started"))
        .where(MailboxTest.mailbox_id.in_(ids), MailboxTest.finished_at.is_not(None))
        .group_by(MailboxTest.mailbox_id)
        .subquery()
    )
    query = select(MailboxTest).join(
        latest,
        (MailboxTest.mailbox_id == latest.c.mailbox_id)
        & (MailboxTest.started_at == latest.c.started),
    )
    found: dict[uuid.UUID, str] = {}
    for run in session.scalars(query):
        capabilities = incoming_capabilities(run.steps)
        if capabilities is not None:
            found[run.mailbox_id] = capabilities
    return found


def _channel_order(channel: MailboxChannel) -> int:
    return list(Channel).index(channel.channel)


def build_rows(session: Session, mailboxes: Sequence[Mailbox], now: datetime) -> list[MailboxRow]:
    """The rows of ``mailboxes``, which the caller has read through crm/access."""
    ids = [mailbox.id for mailbox in mailboxes]
    failed = _failed_items(session, ids)
    capabilities = _latest_capabilities(session, ids)
    return [
        MailboxRow(
            id=mailbox.id,
            name=mailbox.name,
            kind="Queue" if mailbox.queue_id else "User",
            address=mailbox.email_address or "",
            profile=mailbox.profile.name if mailbox.profile else "",
            approval=mailbox.approval,
            channels=[
                _cell(
                    mailbox,
                    channel,
                    failed.get((mailbox.id, channel.channel), 0),
                    capabilities.get(mailbox.id),
                    now,
                )
                for channel in sorted(mailbox.channels, key=_channel_order)
            ],
        )
        for mailbox in mailboxes
    ]


def mailbox_rows(
    session: Session, principal: Principal, show: Show, now: datetime
) -> list[MailboxRow]:
    """Every mailbox the principal may read, as rows, narrowed by ``show``."""
    query = select(Mailbox).where(access.visible(Mailbox, principal))
    if show is Show.PENDING:
        query = query.where(Mailbox.approval == Approval.PENDING)
    found = session.scalars(query.order_by(Mailbox.name, Mailbox.id)).all()
    rows = build_rows(session, found, now)
    if show is Show.FAILING:
        rows = [row for row in rows if row.failing]
    return rows


def run_steps(
    run: MailboxTest, planned: Sequence[tuple[Channel, str]], now: datetime
) -> list[StepView]:
    """The run's steps in order: finished ones, then (while it runs) the rest planned."""
    done = list(run.steps)
    views = [_done_step(step) for step in done]
    if run.finished_at is not None or is_stale(run, now):
        return views
    finished = {(step.get("channel"), step.get("name")) for step in done}
    stopped = {step.get("channel") for step in done if not step.get("ok")}
    running_shown = False
    for channel, name in planned:
        if channel.value in stopped or (channel.value, name) in finished:
            continue
        state = "pending" if running_shown else "running"
        running_shown = True
        views.append(
            StepView(
                channel.value,
                CHANNEL_LABELS[channel],
                name,
                STEP_LABELS.get(name, name),
                state,
                "",
                None,
                None,
                None,
            )
        )
    return views


def _done_step(step: dict[str, Any]) -> StepView:
    channel = str(step.get("channel", ""))
    name = str(step.get("name", ""))
    ok = bool(step.get("ok"))
    code = None if ok else step.get("code")
    _title, remediation = catalogue_entry(code)
    try:
        channel_label = CHANNEL_LABELS[Channel(channel)]
    except ValueError:
        channel_label = channel
    return StepView(
        channel,
        channel_label,
        name,
        STEP_LABELS.get(name, name),
        "ok" if ok else "failed",
        str(step.get("detail") or ""),
        code,
        remediation,
        float(step["seconds"]) if step.get("seconds") is not None else None,
    )

"""One pass of one channel of one mailbox, the same for every engine.

An engine (``ChannelEngine``) supplies only its protocol work and its figures; the runner
does the rest, in this order::

    lease ──▶ engine.admit ──▶ token renewal ──▶ load_context
     │ busy      │ no: why_not                      ├─ NotRunnable → engine.blocked, why_not
     │ → why_not │                                  ├─ Unusable ───┐ (a failed pass)
     │           │                                  └─ Runnable ──▶ engine.check ──▶ engine.run
     │           │                                                 │ SyncError, a bug, LeaseLost
     │           │                                                 ▼
     │           │        record, in one transaction: the pass's statistics, the channel's
     │           │        health (ok, or retry/disable and an alert), engine.failed;
     │           │        then the operator's log line and this process's counters
     └───────────┴──────────────────────────────────────────────────────▶ release the lease

What a pass did is its report (``PassReport`` and the engine's subclass of it): ``ran``
says whether it reached the server, ``why_not`` why it did not, ``error`` what failed.

Must never let an exception out of ``run_pass`` (a bug is an INTERNAL failure of that
channel, retried; it must not stop the loop that runs the other mailboxes), hold a
database transaction while the engine talks to its server, or log an error's detail (a
server's text may quote an address or a subject: the detail is stored, the code logged).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import Channel
from crmsync.crm.alerts import mark_channel_ok
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Mailbox, MailboxChannel
from crmsync.crm.models.stats import SyncPass
from crmsync.crm.secrets import SecretBox
from crmsync.crm.stats import PassFigures, channel_protocol, record_pass
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics, profile_label
from crmsync.sync import leases
from crmsync.sync.context import MailboxContext, NotRunnable, Runnable, Unusable, load_context
from crmsync.sync.health import record_failure
from crmsync.sync.oauth_tokens import token_problem

log = logging.getLogger(__name__)


@dataclass
class ChannelOptions:
    """What every engine's pass is run with."""

    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    worker: str | None = None
    lease_ttl: timedelta = leases.DEFAULT_TTL
    # This process's Prometheus counters (crmsync.metrics), when it exposes them.
    metrics: SyncMetrics | None = None


@dataclass
class PassReport:
    mailbox_id: uuid.UUID
    ran: bool = False
    why_not: str = ""
    error: SyncError | None = None
    started_at: datetime = field(default_factory=utcnow)


class LeaseLost(Exception):
    """Another worker holds this channel now: the pass stops at once."""


@dataclass(frozen=True)
class Count:
    """One figure of a pass for the operator's line: ``3 fetched``."""

    field: str  # its name in the log record's extra (and in a JSON line)
    label: str  # its word in the line
    value: int
    always: bool = True  # shown even when 0


@dataclass(frozen=True)
class Recorded:
    """What the runner knows once the pass is stored, for the log line and counters."""

    protocol: str
    profile: str  # the metrics label of the mailbox's profile
    stats: SyncPass


ReportT = TypeVar("ReportT", bound=PassReport)
OptionsT = TypeVar("OptionsT", bound=ChannelOptions)


class ChannelEngine(Generic[ReportT, OptionsT]):
    """The protocol work of one channel; the defaults are what an engine without a
    special case does."""

    channel: Channel
    # Why a pass does not run when another worker holds the lease.
    busy: str = "another worker holds this channel"

    def __init__(self, options: OptionsT) -> None:
        self.options = options
        # Who holds the lease: this process, unless a test names a worker.
        self.worker = options.worker or leases.worker_name()

    def new_report(self, mailbox_id: uuid.UUID) -> ReportT:
        raise NotImplementedError

    def admit(self, store: Store, mailbox_id: uuid.UUID) -> str:
        """Why the pass may not start now, though it holds the lease ('' when it may)."""
        return ""

    def blocked(self, session: Session, blocked: NotRunnable, report: ReportT) -> None:
        """The channel cannot run now; its engine may tell the waiting work why."""

    def check(self, session: Session, ready: Runnable) -> SyncError | None:
        """A problem that makes this pass fail before it connects, or None."""
        return None

    def run(self, store: Store, ready: Runnable, report: ReportT) -> None:
        """The protocol work: raises SyncError (or LeaseLost) when it cannot go on."""
        raise NotImplementedError

    def figures(self, report: ReportT, protocol: str) -> PassFigures:
        raise NotImplementedError

    def items(self, report: ReportT) -> int:
        """How many items the pass processed, for the channel's health."""
        raise NotImplementedError

    def failed(
        self, session: Session, mailbox: Mailbox, channel: MailboxChannel, report: ReportT
    ) -> None:
        """Called in the recording transaction after a failed pass."""

    def tally(self, report: ReportT) -> list[Count]:
        """The pass's figures, in the order the operator's line gives them."""
        raise NotImplementedError

    def where(self, protocol: str) -> str:
        """What the line names after the mailbox: ``INBOX``, ``POP3``, ``SMTP``."""
        return protocol.upper()

    def count(self, metrics: SyncMetrics, report: ReportT, recorded: Recorded) -> None:
        raise NotImplementedError


def run_pass(
    store: Store,
    box: SecretBox,
    mailbox_id: uuid.UUID,
    engine: ChannelEngine[ReportT, OptionsT],
) -> ReportT:
    """One pass of ``engine``'s channel of the mailbox; see the module docstring."""
    options = engine.options
    report = engine.new_report(mailbox_id)
    worker = engine.worker
    if not leases.acquire(store, mailbox_id, engine.channel, worker, options.lease_ttl):
        report.why_not = engine.busy
        return report
    try:
        why_not = engine.admit(store, mailbox_id)
        if why_not:
            report.why_not = why_not
            return report
        token_error = token_problem(store, box, mailbox_id)
        setup_error: SyncError | None = token_error
        with store.transaction() as session:
            context = load_context(session, box, mailbox_id, engine.channel)
            if isinstance(context, NotRunnable):
                engine.blocked(session, context, report)
                report.why_not = context.why
                return report
            if isinstance(context, Unusable):
                facts: MailboxContext = context.mailbox
                setup_error = setup_error or context.error
            else:
                facts = context
                setup_error = setup_error or engine.check(session, context)
        report.ran = True
        _run(store, context, setup_error, engine, report)
        _record(store, facts, report, engine)
        return report
    finally:
        leases.release(store, mailbox_id, engine.channel, worker)


def _run(
    store: Store,
    context: Runnable | Unusable,
    setup_error: SyncError | None,
    engine: ChannelEngine[ReportT, OptionsT],
    report: ReportT,
) -> None:
    try:
        if setup_error is not None:
            raise setup_error
        assert isinstance(context, Runnable)  # an Unusable context always has an error
        engine.run(store, context, report)
    except LeaseLost:
        report.why_not = "the lease was taken over by another worker"
    except SyncError as exc:
        report.error = exc
    except Exception as exc:  # a bug must not kill the sync loop; the channel retries
        log.exception("%s: mailbox %s failed", engine.channel.value, report.mailbox_id)
        report.error = SyncError(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}"[:500])


def _record(
    store: Store,
    context: MailboxContext,
    report: ReportT,
    engine: ChannelEngine[ReportT, OptionsT],
) -> None:
    """The pass's outcome: its statistics and the channel's health, together; then the
    operator's line and this process's counters, once the transaction has committed."""
    now = utcnow()
    with store.transaction() as session:
        mailbox = session.get(Mailbox, context.mailbox_id)
        if mailbox is None:  # deleted while the pass ran
            return
        channel = mailbox.channel(engine.channel)
        profile = mailbox.profile
        protocol = channel_protocol(profile.server_type if profile else None, engine.channel)
        label = profile_label(profile.name if profile is not None else None, mailbox.profile_id)
        previous = channel.last_success_at
        stats = record_pass(
            session,
            mailbox,
            engine.channel,
            engine.figures(report, protocol),
            previous_success=previous,
            now=now,
        )
        if report.error is None:
            mark_channel_ok(channel, now=now, items=engine.items(report))
        else:
            policy = engine.options.retry_policy
            record_failure(session, mailbox, channel, report.error, policy=policy, now=now)
            engine.failed(session, mailbox, channel, report)
    recorded = Recorded(protocol=protocol, profile=label, stats=stats)
    _log_pass(engine, context, report, recorded)
    if engine.options.metrics is not None:
        engine.count(engine.options.metrics, report, recorded)


def _log_pass(
    engine: ChannelEngine[ReportT, OptionsT],
    context: MailboxContext,
    report: ReportT,
    recorded: Recorded,
) -> None:
    """The operator's line for the pass, ``ann@acme.test INBOX: 3 fetched, 3 tracked, 0
    failed in 0.41 s``: its figures, duration and the error's code — never the error's
    detail (a server's text may quote an address or a subject). The same figures go into
    the record's extra, for JSON lines."""
    counts = engine.tally(report)
    where = engine.where(recorded.protocol)
    seconds = recorded.stats.duration_seconds
    code = report.error.code.value if report.error is not None else None
    shown = [count for count in counts if count.always or count.value]
    logging.getLogger(f"crmsync.sync.{engine.channel.value}").log(
        logging.WARNING if code else logging.INFO,
        "%s %s: %s in %.2f s%s",
        context.address or str(context.mailbox_id),
        where,
        ", ".join(f"{count.value} {count.label}" for count in shown),
        seconds,
        f", error {code}" if code else "",
        extra={
            "event": f"{engine.channel.value}_pass",
            "mailbox_id": str(context.mailbox_id),
            "mailbox": context.address,
            "protocol": recorded.protocol,
            "where": where,
            **{count.field: count.value for count in counts},
            "duration_s": round(seconds, 3),
            "error_code": code,
        },
    )

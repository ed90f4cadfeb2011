"""``sync_outgoing(store, box, mailbox_id)``: send a mailbox's queued CRM email, never twice.

One pass, for one mailbox's OUTGOING channel::

    lease ──▶ within the profile's connection limit? ──▶ context ──▶ runnable?
     │ busy → return            │ no → release, return      │ no: queued email stays
     │                          ▼                           ▼ pending; owner alerted why
     │                        verify ──▶ send ──▶ copies ──▶ channel health ──▶ release
     │                          │          │         └ APPEND to Sent (IMAP), \\Seen
     │                          │          └ one SMTP session for the batch; per email:
     │                          │            claim+compose (commit) → SMTP → record
     │                          └ emails whose fate is unknown, looked up in Sent by
     │                            Message-ID: orphans left ``sending`` by a dead worker,
     │                            retries after a connection broke mid-transaction
     └ the lease is renewed with every claim; lost → the pass stops at once

The status flow of each email is drawn in crmsync.crm.outbound; the decisions are the
pure functions of crmsync.sync.outgoing.decide.

Never twice — how, and what remains:
1. ``sending`` and the Message-ID are committed before the first SMTP command; the
   claim (``pending_send → sending``) is a conditional UPDATE, so no two workers send the
   same email, and an email in ``sending`` is never picked up for sending again.
2. The moment the server answers 250 to DATA, ``sent`` is committed (one short local
   transaction); the Sent copy is appended afterwards.
3. A worker that dies between (1) and (2) leaves the email ``sending``. The next pass —
   at once when the dead worker was a process of this host, else once its claim is
   older than the lease TTL — looks the Message-ID up in the Sent folder: found (servers
   like Gmail and Exchange Online file submitted mail themselves) → sent; not found →
   failed with DELIVERY_UNCERTAIN and an alert to the owner. It is *not* sent again
   automatically: a crash cannot tell "the server had not accepted it yet" from "the
   server accepted it but the 250 was not recorded", and only the first is safe to
   resend. ``OutgoingOptions.resend_when_uncertain`` trades this for at-least-once.
Remaining windows: (a) a connection that breaks after the server took the final "."
but before its 250 arrived (TIMEOUT/CONNECTION_LOST during DATA) is a network error,
retried as the issue asks — after a look in the Sent folder (``maybe_sent``); on a server
that does not file submitted mail, that retry can deliver a second copy (RFC 5321 §6.1
prefers that to losing it). (b) A worker that stalls inside one SMTP transaction for
longer than the lease TTL (10 minutes; SMTP commands time out after the profile's
connection timeout, 30 s by default) can be judged gone; the other worker then marks the
email uncertain — still never sends it — and the stalled worker, if it gets its 250,
corrects it to sent.

Must never hold a database transaction across network I/O, send an email not claimed by
this worker in this pass, or put message content or credentials into logs or details.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from crmsync.connectors.base import SendResult
from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.core.alerts import AlertCode
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import Channel, EmailStatus, Protocol
from crmsync.crm import outbound
from crmsync.crm import outbound_transitions as transitions
from crmsync.crm.alerts import raise_catalogued
from crmsync.crm.db import utcnow
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox, MailboxChannel
from crmsync.crm.secrets import SecretBox
from crmsync.crm.stats import PassFigures
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.sync.context import NotRunnable, Runnable
from crmsync.sync.outgoing import io as outgoing_io
from crmsync.sync.outgoing.decide import AMBIGUOUS, Verdict, after_send
from crmsync.sync.outgoing.io import SentFolderSession, SmtpSession
from crmsync.sync.outgoing.schedule import due_outgoing, pending_by_mailbox
from crmsync.sync.outgoing.send import Prepared, Sender, log_outcome, prepare, record
from crmsync.sync.outgoing.sent_copy import Copy, save_copies
from crmsync.sync.outgoing.verify import Verifier
from crmsync.sync.runner import (
    ChannelEngine,
    ChannelOptions,
    Count,
    LeaseLost,
    PassReport,
    Recorded,
    run_pass,
)


@dataclass
class OutgoingOptions(ChannelOptions):
    max_emails: int = 500
    resend_when_uncertain: bool = False
    on_email: Callable[[uuid.UUID, Verdict], None] | None = None
    open_smtp: Callable[[Endpoint, Credentials], SmtpSession] = outgoing_io.open_smtp
    open_imap: Callable[[Endpoint, Credentials], SentFolderSession] = outgoing_io.open_imap


@dataclass
class OutgoingReport(PassReport):
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    recovered: int = 0  # found in the Sent folder after all
    uncertain: int = 0  # failed with DELIVERY_UNCERTAIN
    unverified: int = 0  # waiting for the Sent folder to be searchable
    held: int = 0
    copies: int = 0
    copy_error: SyncError | None = None

    def count(self, verdict: Verdict) -> None:
        if verdict is Verdict.SENT:
            self.sent += 1
        elif verdict is Verdict.RETRY:
            self.retrying += 1
        elif verdict is Verdict.FAILED:
            self.failed += 1


def _renew(session: Session, mailbox_id: uuid.UUID, worker: str, until: datetime) -> None:
    renewed = session.execute(
        update(MailboxChannel)
        .where(
            MailboxChannel.mailbox_id == mailbox_id,
            MailboxChannel.channel == Channel.OUTGOING,
            MailboxChannel.lease_owner == worker,
        )
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    if renewed.rowcount != 1:  # type: ignore[attr-defined]
        raise LeaseLost


def _connection_limit(store: Store, mailbox_id: uuid.UUID, now: datetime) -> str:
    """Why this pass may not open an SMTP connection now ('' when it may): the profile's
    ``max_concurrent_connections`` counts its mailboxes holding an outgoing lease, this
    one included. Checked after taking the lease, so two workers racing both back off
    rather than both go over."""
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        profile = mailbox.profile if mailbox is not None else None
        if profile is None:
            return ""
        active = session.scalar(
            select(func.count(MailboxChannel.id))
            .join(Mailbox, Mailbox.id == MailboxChannel.mailbox_id)
            .where(
                Mailbox.profile_id == profile.id,
                MailboxChannel.channel == Channel.OUTGOING,
                MailboxChannel.lease_owner.is_not(None),
                MailboxChannel.lease_expires_at > now,
            )
        )
        limit = max(1, profile.max_concurrent_connections)
        if int(active or 0) > limit:
            return f"all {limit} connections of profile {profile.name!r} are in use"
        return ""


def _sender(session: Session, ctx: Runnable) -> Sender:
    mailbox = session.get(Mailbox, ctx.mailbox_id)
    assert mailbox is not None
    profile = mailbox.profile
    return Sender(
        mailbox_id=mailbox.id,
        organisation_id=mailbox.organisation_id,
        address=(mailbox.email_address or "").strip(),
        display_name=outbound.display_name_of(session, mailbox),
        save_copy=bool(
            profile is not None
            and profile.save_sent_copy
            and ctx.plan.protocol is Protocol.IMAP
            and ctx.plan.incoming is not None
        ),
        settings=ctx.settings,
    )


class OutgoingEngine(ChannelEngine[OutgoingReport, OutgoingOptions]):
    channel = Channel.OUTGOING
    busy = "another worker is sending from this mailbox"
    sender: Sender | None = None

    def new_report(self, mailbox_id: uuid.UUID) -> OutgoingReport:
        return OutgoingReport(mailbox_id)

    def admit(self, store: Store, mailbox_id: uuid.UUID) -> str:
        return _connection_limit(store, mailbox_id, utcnow())

    def blocked(self, session: Session, blocked: NotRunnable, report: OutgoingReport) -> None:
        """Queued email stays pending, and its owner is told why (outbound.hold)."""
        mailbox = session.get(Mailbox, blocked.mailbox.mailbox_id)
        assert mailbox is not None
        report.held = outbound.hold(session, mailbox, blocked.why)

    def check(self, session: Session, ready: Runnable) -> SyncError | None:
        self.sender = _sender(session, ready)
        if ready.plan.outgoing is None:
            return SyncError(
                ErrorCode.CONFIGURATION, "the profile has no outgoing (SMTP) server set"
            )
        if not self.sender.address:
            return SyncError(ErrorCode.CONFIGURATION, "the mailbox has no email address")
        return None

    def run(self, store: Store, ready: Runnable, report: OutgoingReport) -> None:
        assert self.sender is not None  # check() ran
        _Pass(store, ready, self.sender, self.options, self.worker, report).run()

    def figures(self, report: OutgoingReport, protocol: str) -> PassFigures:
        return PassFigures(
            protocol=protocol,
            started_at=report.started_at,
            sent=report.sent + report.recovered,
            failed=report.failed + report.uncertain,
            error_code=report.error.code.value if report.error is not None else None,
        )

    def items(self, report: OutgoingReport) -> int:
        return report.sent

    def failed(
        self, session: Session, mailbox: Mailbox, channel: MailboxChannel, report: OutgoingReport
    ) -> None:
        """Each waiting email says why it waits."""
        assert report.error is not None
        waiting = "waiting: " if channel.enabled else "waiting for Test & Enable: "
        session.execute(
            update(Email)
            .where(
                Email.send_mailbox_id == mailbox.id,
                Email.status == EmailStatus.PENDING_SEND,
                Email.maybe_sent.is_(False),
                Email.send_error_code.is_(None),
            )
            .values(
                send_error_code=report.error.code.value,
                send_error=f"{waiting}{report.error.entry.title} ({report.error.detail})"[:4000],
            )
            .execution_options(synchronize_session=False)
        )

    def tally(self, report: OutgoingReport) -> list[Count]:
        return [
            Count("sent", "sent", report.sent),
            Count("failed", "failed", report.failed),
            Count("retrying", "retrying", report.retrying, always=False),
            Count("recovered", "found in Sent", report.recovered, always=False),
            Count("uncertain", "uncertain", report.uncertain, always=False),
            Count("copies", "copied to Sent", report.copies, always=False),
        ]

    def count(self, metrics: SyncMetrics, report: OutgoingReport, recorded: Recorded) -> None:
        metrics.outgoing_pass(
            protocol=recorded.protocol,
            profile=recorded.profile,
            seconds=recorded.stats.duration_seconds,
            ok=report.error is None,
            outcomes={
                "sent": report.sent + report.recovered,
                "failed": report.failed,
                "retry": report.retrying,
                "uncertain": report.uncertain,
            },
        )


def sync_outgoing(
    store: Store,
    box: SecretBox,
    mailbox_id: uuid.UUID,
    options: OutgoingOptions | None = None,
) -> OutgoingReport:
    """One pass over ``mailbox_id``'s queued email; see the module docstring."""
    return run_pass(store, box, mailbox_id, OutgoingEngine(options or OutgoingOptions()))


class _Pass:
    """verify → send → copies, for one mailbox, by one worker holding its lease."""

    def __init__(
        self,
        store: Store,
        ctx: Runnable,
        sender: Sender,
        options: OutgoingOptions,
        worker: str,
        report: OutgoingReport,
    ) -> None:
        self.store, self.ctx, self.sender = store, ctx, sender
        self.options, self.worker, self.report = options, worker, report
        self.plan = ctx.plan
        self.sent_now: set[uuid.UUID] = set()

    @property
    def imap(self) -> Endpoint | None:
        return self.plan.incoming if self.plan.protocol is Protocol.IMAP else None

    def run(self) -> None:
        self.verify()
        self.send()
        self.save_copies()

    def _tell(self, email_id: uuid.UUID, verdict: Verdict) -> None:
        self.report.count(verdict)
        if self.options.on_email is not None:
            self.options.on_email(email_id, verdict)

    # -- verify -------------------------------------------------------------------------
    def verify(self) -> None:
        settled = Verifier(
            store=self.store,
            mailbox_id=self.sender.mailbox_id,
            worker=self.worker,
            lease_ttl=self.options.lease_ttl,
            retry_policy=self.options.retry_policy,
            resend_when_uncertain=self.options.resend_when_uncertain,
            open_imap=self.options.open_imap,
            imap=self.imap,
            credentials=self.plan.credentials,
            address=self.sender.address,
        ).run()
        report = self.report
        report.recovered += settled.recovered
        report.uncertain += settled.uncertain
        report.unverified += settled.unverified
        if settled.error is not None and settled.unverified:
            self._alert_once(
                AlertCode.SENT_LOOKUP_FAILED,
                f"{settled.unverified} email(s) may have been sent already; crmsync sends "
                f"them again only once it has looked for them in the Sent folder: "
                f"{settled.error.detail}",
                settled.error.remediation,
            )

    # -- send ---------------------------------------------------------------------------
    def _due(self) -> list[uuid.UUID]:
        now = utcnow()
        with self.store.transaction() as session:
            return list(
                session.scalars(
                    select(Email.id)
                    .where(
                        Email.send_mailbox_id == self.sender.mailbox_id,
                        Email.status == EmailStatus.PENDING_SEND,
                        Email.maybe_sent.is_(False),
                        or_(Email.next_send_at.is_(None), Email.next_send_at <= now),
                    )
                    .order_by(Email.created_at, Email.id)
                    .limit(self.options.max_emails)
                )
            )

    def send(self) -> None:
        due = self._due()
        if not due:
            return
        assert self.plan.outgoing is not None
        smtp = self.options.open_smtp(self.plan.outgoing, self.plan.credentials)
        try:
            for email_id in due:
                if not self._send_one(smtp, email_id):
                    break
        finally:
            smtp.quit()

    def _send_one(self, smtp: SmtpSession, email_id: uuid.UUID) -> bool:
        """Claim, send and record one email; False when the session is gone."""
        now = utcnow()
        with self.store.transaction() as session:
            _renew(session, self.sender.mailbox_id, self.worker, now + self.options.lease_ttl)
            prepared = prepare(session, self.store.blobs, self.sender, email_id, self.worker, now)
        if prepared is None:
            return True
        if not isinstance(prepared, Prepared):
            log_outcome(self.sender.address, email_id, prepared)
            self._tell(email_id, prepared.verdict)
            return True
        composed = prepared.composed
        outcome: SendResult | SyncError
        try:
            outcome = smtp.send(composed.envelope_from, list(composed.recipients), composed.raw)
        except SyncError as exc:
            outcome = exc
        decision = after_send(outcome, prepared.attempts, self.options.retry_policy, utcnow())
        with self.store.transaction() as session:
            record(session, self.sender, prepared, decision, self.worker, utcnow())
            if decision.refused:
                self._alert_refused(session, decision.refused)
        if decision.verdict is Verdict.SENT:
            self.sent_now.add(email_id)
        recipients = len(composed.recipients)
        log_outcome(self.sender.address, email_id, decision, outcome=outcome, recipients=recipients)
        self._tell(email_id, decision.verdict)
        if isinstance(outcome, SyncError) and (outcome.code in AMBIGUOUS or not smtp.is_open):
            self.report.error = outcome  # the session is gone: the channel retries later
            return False
        return True

    def _alert_refused(self, session: Session, refused: str) -> None:
        self._alert(session, AlertCode.RECIPIENT_REJECTED, f"The server refused: {refused}")

    # -- copies -------------------------------------------------------------------------
    def save_copies(self) -> None:
        if not self.sender.save_copy or self.imap is None:
            return
        with self.store.transaction() as session:
            rows = session.execute(
                select(Email.id, Email.message_id, Email.raw_sha256, Email.actual_end)
                .where(
                    Email.send_mailbox_id == self.sender.mailbox_id,
                    Email.copy_pending.is_(True),
                )
                .limit(self.options.max_emails)
            ).all()
        copies = []
        for row in rows:
            try:
                raw = self.store.blobs.get(row.raw_sha256) if row.raw_sha256 else None
            except (OSError, ValueError):
                raw = None
            if raw is None:
                continue
            fresh = row.id in self.sent_now
            copies.append(Copy(row.id, row.message_id, raw, row.actual_end, fresh))
        result = save_copies(self.options.open_imap, self.imap, self.plan.credentials, copies)
        with self.store.transaction() as session:
            transitions.copies_saved(session, result.saved)
        self.report.copies += len(result.saved)
        if result.error is not None:
            self.report.copy_error = result.error
            self._alert_once(
                AlertCode.SENT_COPY_FAILED,
                f"{len(copies) - len(result.saved)} copies are still owed (crmsync tries "
                f"again with the next email sent): {result.error.detail}",
                result.error.remediation,
            )

    def _alert_once(self, code: AlertCode, detail: str, remediation: str | None = None) -> None:
        with self.store.transaction() as session:
            self._alert(session, code, detail, remediation)

    def _alert(
        self, session: Session, code: AlertCode, detail: str, remediation: str | None = None
    ) -> None:
        """A warning to the owner of the sending mailbox (deduplicated by raise_alert)."""
        mailbox = session.get(Mailbox, self.sender.mailbox_id)
        assert mailbox is not None
        raise_catalogued(
            session,
            code,
            organisation_id=mailbox.organisation_id,
            detail=detail[:2000],
            remediation=remediation,
            mailbox=mailbox,
            channel=Channel.OUTGOING,
            now=utcnow(),
        )


__all__ = [
    "LeaseLost",
    "OutgoingOptions",
    "OutgoingReport",
    "due_outgoing",
    "pending_by_mailbox",
    "sync_outgoing",
]

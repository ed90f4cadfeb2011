"""Settling emails whose fate is unknown, before anything is sent: look in Sent first.

    gather   (short transaction) this mailbox's emails that may have been accepted:
             ``sending`` ones whose worker is gone (orphans) and ``pending_send`` ones
             marked ``maybe_sent`` (a connection broke mid-transaction)
    ask      (no transaction) one IMAP session: each Message-ID in the Sent folder
    decide   crmsync.sync.outgoing.decide.after_lookup
    record   (one short transaction per email) sent / send again / failed as
             DELIVERY_UNCERTAIN (with an alert to the owner) / ask later

An orphan is a ``sending`` email whose claim is not this worker's live one: held by a
process of this host that has exited, by this same worker in an earlier pass that
broke off, or older than the lease TTL (a worker elsewhere that stopped renewing).
When the Sent folder cannot be searched, nothing is decided: the orphan's claim is
re-dated (looked at again after the TTL), a ``maybe_sent`` retry waits for its backoff,
and one alert (hourly) says why email is waiting.

Must never send, or decide "not found" from a search that failed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.core.errors import RetryPolicy, SyncError
from crmsync.core.types import EmailStatus
from crmsync.crm import outbound_transitions as transitions
from crmsync.crm.db import utcnow
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.store import Store
from crmsync.sync.leases import owner_is_dead as dead_local_owner
from crmsync.sync.outgoing.decide import (
    UNCERTAIN_DETAIL,
    Decision,
    Lookup,
    Verdict,
    after_lookup,
)
from crmsync.sync.outgoing.send import log_outcome
from crmsync.sync.outgoing.sent_copy import OpenImap, look_up


@dataclass(frozen=True)
class Unknown:
    email_id: uuid.UUID
    message_id: str | None
    orphan: bool
    claim: str | None
    subject: str
    attempts: int


@dataclass
class Settled:
    recovered: int = 0  # found in Sent: sent after all
    uncertain: int = 0  # failed with DELIVERY_UNCERTAIN
    released: int = 0  # free to be sent (again) now
    unverified: int = 0  # Sent not searchable: asked again later
    error: SyncError | None = None


@dataclass(frozen=True)
class Verifier:
    store: Store
    mailbox_id: uuid.UUID
    worker: str
    lease_ttl: timedelta
    retry_policy: RetryPolicy
    resend_when_uncertain: bool
    open_imap: OpenImap
    imap: Endpoint | None  # None: no Sent folder to look in (POP3)
    credentials: Credentials
    address: str = ""  # the sending mailbox's, for the log lines

    def orphaned(self, claim: str | None, claimed_at: datetime | None, now: datetime) -> bool:
        if claim is None or claim == self.worker or claimed_at is None:
            return True
        return dead_local_owner(claim) or claimed_at < now - self.lease_ttl

    def gather(self, now: datetime) -> list[Unknown]:
        with self.store.transaction() as session:
            rows = session.execute(
                select(
                    Email.id,
                    Email.message_id,
                    Email.status,
                    Email.send_claim,
                    Email.send_claimed_at,
                    Email.subject,
                    Email.delivery_attempts,
                ).where(
                    Email.send_mailbox_id == self.mailbox_id,
                    or_(
                        Email.status == EmailStatus.SENDING,
                        (Email.status == EmailStatus.PENDING_SEND)
                        & Email.maybe_sent.is_(True)
                        & (Email.next_send_at.is_(None) | (Email.next_send_at <= now)),
                    ),
                )
            ).all()
        return [
            Unknown(
                row.id,
                row.message_id,
                row.status is EmailStatus.SENDING,
                row.send_claim,
                row.subject,
                row.delivery_attempts,
            )
            for row in rows
            if row.status is EmailStatus.PENDING_SEND
            or self.orphaned(row.send_claim, row.send_claimed_at, now)
        ]

    def run(self) -> Settled:
        settled = Settled()
        unknown = self.gather(utcnow())
        if not unknown:
            return settled
        ids = [item.message_id for item in unknown if item.message_id]
        found, settled.error = look_up(self.open_imap, self.imap, self.credentials, ids)
        for item in unknown:
            lookup = found.get(item.message_id or "", Lookup.NOT_FOUND)
            decision = after_lookup(
                lookup, orphan=item.orphan, resend_when_uncertain=self.resend_when_uncertain
            )
            self._record(item, decision.verdict, settled)
        return settled

    def _record(self, item: Unknown, verdict: Verdict, settled: Settled) -> None:
        now = utcnow()
        with self.store.transaction() as session:
            if verdict is Verdict.KEEP:
                retry_at = now + timedelta(seconds=self.retry_policy.delay(item.attempts))
                transitions.postpone_lookup(
                    session,
                    item.email_id,
                    item.claim,
                    orphan=item.orphan,
                    now=now,
                    retry_at=retry_at,
                )
                settled.unverified += 1
            elif verdict is Verdict.SENT:
                facts = transitions.SentFacts(at=now, copy_pending=False)
                if (
                    transitions.record_sent(session, item.email_id, item.claim, facts)
                    if item.orphan
                    else transitions.sent_after_all(session, item.email_id, now)
                ):
                    settled.recovered += 1
                    log_outcome(self.address, item.email_id, Decision(Verdict.SENT))
            elif verdict is Verdict.SEND:
                if item.orphan:
                    transitions.release_for_resend(session, item.email_id, item.claim)
                else:
                    transitions.clear_maybe_sent(session, [item.email_id])
                settled.released += 1
            elif transitions.record_failed(
                session,
                item.email_id,
                item.claim,
                code=transitions.UNCERTAIN,
                detail=UNCERTAIN_DETAIL,
            ):
                settled.uncertain += 1
                failed = Decision(Verdict.FAILED, transitions.UNCERTAIN)
                log_outcome(self.address, item.email_id, failed)
                mailbox = session.get(Mailbox, self.mailbox_id)
                assert mailbox is not None
                transitions.alert_uncertain(session, mailbox, item.subject, now)

"""``sync_incoming(store, box, mailbox_id)``: one incoming pass, idempotent and crash-safe.

The channel runner (sync/runner.py) leases the channel, loads the context and records
the pass; this engine supplies the protocol work::

    Runnable context ──▶ IMAP: INBOX from its cursor (imap.py)   ──▶ ingest pipeline
                  └─▶ POP3: UIDLs not yet in the ledger (pop3.py)   (ingest.py)

and the figures of a pass: fetched, tracked, failed and bounced messages. Both passes
reach their server only through ``IncomingOptions.open_imap``/``open_pop3``, sessions
typed by the connector Protocols, so the in-memory server (connectors/memory.py) can
stand in for Dovecot.
Must never decide an email's fate itself (that is tracking/) or write a cursor outside
the batch transaction of the ingest pipeline.
"""

from __future__ import annotations

import uuid

from crmsync.core.types import Channel, Protocol
from crmsync.crm.secrets import SecretBox
from crmsync.crm.stats import PassFigures
from crmsync.crm.store import Store
from crmsync.metrics import SyncMetrics
from crmsync.sync.context import Runnable
from crmsync.sync.incoming.imap import sync_imap_inbox
from crmsync.sync.incoming.options import IncomingOptions, IncomingReport
from crmsync.sync.incoming.pop3 import sync_pop3
from crmsync.sync.runner import ChannelEngine, Count, Recorded, run_pass


class IncomingEngine(ChannelEngine[IncomingReport, IncomingOptions]):
    channel = Channel.INCOMING
    busy = "another worker is syncing this mailbox"

    def new_report(self, mailbox_id: uuid.UUID) -> IncomingReport:
        return IncomingReport(mailbox_id)

    def run(self, store: Store, ready: Runnable, report: IncomingReport) -> None:
        if ready.plan.protocol is Protocol.POP3:
            sync_pop3(store, ready, self.options, report)
        else:
            sync_imap_inbox(store, ready, self.options, report)

    def figures(self, report: IncomingReport, protocol: str) -> PassFigures:
        return PassFigures(
            protocol=protocol,
            started_at=report.started_at,
            fetched=report.seen,
            tracked=report.tracked,
            failed=report.failed,
            pushed_at=self.options.pushed_at,
            error_code=report.error.code.value if report.error is not None else None,
        )

    def items(self, report: IncomingReport) -> int:
        return report.tracked

    def tally(self, report: IncomingReport) -> list[Count]:
        return [
            Count("fetched", "fetched", report.seen),
            Count("tracked", "tracked", report.tracked),
            Count("failed", "failed", report.failed),
            Count("bounced", "bounced", report.bounced, always=False),
        ]

    def where(self, protocol: str) -> str:
        return "INBOX" if protocol == Protocol.IMAP else protocol.upper()

    def count(self, metrics: SyncMetrics, report: IncomingReport, recorded: Recorded) -> None:
        metrics.incoming_pass(
            protocol=recorded.protocol,
            profile=recorded.profile,
            seconds=recorded.stats.duration_seconds,
            ok=report.error is None,
            fetched=report.seen,
            tracked=report.tracked,
            failed=report.failed,
            bounced=report.bounced,
            push_latency=recorded.stats.push_latency_seconds,
        )


def sync_incoming(
    store: Store,
    box: SecretBox,
    mailbox_id: uuid.UUID,
    options: IncomingOptions | None = None,
) -> IncomingReport:
    """One incoming pass over the mailbox; see the module docstring."""
    return run_pass(store, box, mailbox_id, IncomingEngine(options or IncomingOptions()))

"""What an incoming pass is run with (``IncomingOptions``) and what it did
(``IncomingReport``), shared by the engine, the IMAP and POP3 passes and the ingest
pipeline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from crmsync.sync.runner import ChannelOptions, PassReport


@dataclass
class IncomingOptions(ChannelOptions):
    batch_messages: int = 200
    batch_bytes: int = 16 * 1024 * 1024
    # Capabilities to treat as absent (a server quirk, or a test of the fallback path).
    ignore_capabilities: tuple[str, ...] = ()
    # When the server's IDLE notice that triggered this pass came (its push latency).
    pushed_at: datetime | None = None


@dataclass
class BatchResult:
    seen: int = 0
    tracked: int = 0
    failed: int = 0
    bounced: int = 0  # bounces of CRM email, which marked the original bounced


@dataclass
class IncomingReport(PassReport):
    seen: int = 0
    tracked: int = 0
    failed: int = 0
    bounced: int = 0

    def add(self, other: BatchResult) -> None:
        self.seen += other.seen
        self.tracked += other.tracked
        self.failed += other.failed
        self.bounced += other.bounced

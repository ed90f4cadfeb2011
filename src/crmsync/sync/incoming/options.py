"""What an incoming pass is run with (``IncomingOptions``) and what it did
(``IncomingReport``), shared by the engine, the IMAP and POP3 passes and the ingest
pipeline.

The passes reach their server only through ``open_imap``/``open_pop3``: factories of
sessions typed by the connector Protocols (``base.MailFolderSource``, ``base.MessageDrop``),
used as context managers. The defaults open the real connectors; tests hand in the
in-memory server (``connectors/memory.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from crmsync.connectors.base import MailFolderSource, MessageDrop
from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.pop3 import Pop3Connection
from crmsync.sync.runner import ChannelOptions, PassReport

# (endpoint, credentials, capabilities to ignore) → a session, closed when the block ends.
OpenImap = Callable[
    [Endpoint, Credentials, tuple[str, ...]], AbstractContextManager[MailFolderSource]
]
# (endpoint, credentials) → a session; a clean end QUITs (deletions apply), an error does not.
OpenPop3 = Callable[[Endpoint, Credentials], AbstractContextManager[MessageDrop]]


def open_imap(
    endpoint: Endpoint, credentials: Credentials, ignore_capabilities: tuple[str, ...]
) -> ImapConnection:
    """Connect, secure, log in and ENABLE (``ImapConnection.open``)."""
    return ImapConnection.open(endpoint, credentials, ignore_capabilities=ignore_capabilities)


def open_pop3(endpoint: Endpoint, credentials: Credentials) -> Pop3Connection:
    """Connect, secure and log in (``Pop3Connection.open``)."""
    return Pop3Connection.open(endpoint, credentials)


@dataclass
class IncomingOptions(ChannelOptions):
    batch_messages: int = 200
    batch_bytes: int = 16 * 1024 * 1024
    # Capabilities to treat as absent (a server quirk, or a test of the fallback path).
    ignore_capabilities: tuple[str, ...] = ()
    # When the server's IDLE notice that triggered this pass came (its push latency).
    pushed_at: datetime | None = None
    open_imap: OpenImap = open_imap
    open_pop3: OpenPop3 = open_pop3


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

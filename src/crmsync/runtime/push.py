"""IMAP IDLE watchers: push hints that make a mailbox's sync due at once.

One thread per watched mailbox holds an IDLE (RFC 2177) on INBOX and, whenever the server
reports a change, calls ``wake(mailbox_id, noticed_at)`` — the time of the server's
notice, from which the pass it triggers measures its push latency (crm/stats.py, the
``crmsync_push_latency_seconds`` metric); the wake-up after (re)connecting, which is no
notice, passes None. IDLE is re-issued every ``IDLE_SECONDS``, far under the 29 minutes
after which servers may drop an idle client; ``stop`` interrupts an IDLE in progress, so
a stopped watcher lets its connection go at once. A dropped connection is re-opened with
capped, doubling backoff, which starts again from one second only once a connection has
lasted through one IDLE: a server that accepts SELECT and then drops every IDLE is not
hammered once a second. A watcher only hints: it never syncs and never touches the
database, so a lost push costs at most one polling interval.

    connect ──▶ select INBOX ──▶ idle (≤ IDLE_SECONDS) ──changed──▶ wake ──▶ idle …
       ▲                            │ error, or stop (interrupt)
       └──────── backoff ◀──────────┘
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.connectors.imap import ImapConnection
from crmsync.core.errors import SyncError

log = logging.getLogger(__name__)

IDLE_SECONDS = 120.0
MAX_BACKOFF_SECONDS = 300.0

# wake(mailbox_id, when the server's notice came — None when there was none)
Wake = Callable[[uuid.UUID, datetime | None], None]
# Opens a logged-in connection; tests pass one that returns a fake.
Connect = Callable[[Endpoint, Credentials], ImapConnection]


class IdleWatcher(threading.Thread):
    def __init__(
        self,
        mailbox_id: uuid.UUID,
        endpoint: Endpoint,
        credentials: Credentials,
        wake: Wake,
        *,
        idle_seconds: float = IDLE_SECONDS,
        connect: Connect = ImapConnection.open,
    ) -> None:
        super().__init__(name=f"idle-{mailbox_id}", daemon=True)
        self.mailbox_id = mailbox_id
        self.endpoint = endpoint
        self.credentials = credentials
        self.wake = wake
        self.idle_seconds = idle_seconds
        self.connect = connect
        self.stopping = threading.Event()
        self.supported = True
        self._lock = threading.Lock()
        self._connection: ImapConnection | None = None

    def stop(self) -> None:
        """Stop now: an IDLE in progress is interrupted, not waited out."""
        self.stopping.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            connection.interrupt()

    def _watching(self, connection: ImapConnection | None) -> None:
        with self._lock:
            self._connection = connection

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            try:
                with self.connect(self.endpoint, self.credentials) as conn:
                    if "IDLE" not in conn.capabilities():
                        self.supported = False
                        return
                    # Before the stop check below, so that a stop from now on interrupts.
                    self._watching(conn)
                    conn.select_folder("INBOX", readonly=True)
                    # Whatever arrived while we were not watching: let the sync look.
                    self.wake(self.mailbox_id, None)
                    while not self.stopping.is_set():
                        outcome = conn.idle_wait(self.idle_seconds)
                        backoff = 1.0  # this connection held through an IDLE
                        if outcome.changed:
                            self.wake(self.mailbox_id, datetime.now(UTC))
            except SyncError as exc:
                if self.stopping.is_set():  # stop() interrupted the IDLE: nothing failed
                    return
                # The code only: a server's text may quote what it was sent.
                log.info(
                    "idle %s: %s; reconnecting in %.0fs", self.mailbox_id, exc.code.value, backoff
                )
            except Exception:  # a watcher must never die of a bug; it only hints
                if self.stopping.is_set():
                    return
                log.exception("idle %s failed; reconnecting in %.0fs", self.mailbox_id, backoff)
            finally:
                self._watching(None)
            self.stopping.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

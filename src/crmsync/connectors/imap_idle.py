"""IMAP IDLE (RFC 2177): wait, on a selected folder, until the server announces a change.

What it is for: the push watcher calls ``idle_wait(timeout)`` in a loop; a ``changed``
outcome schedules the same incremental sync the poller runs (push is only a hint,
DESIGN.md). The engine re-issues IDLE well before 29 minutes, after which RFC 2177 lets
a server drop an idle client; ``MAX_IDLE_SECONDS`` caps a single wait.

What it must never do: return while the server still thinks the session is idling (every
normal return has sent DONE and read the tagged answer), block past the deadline waiting
for a line, or keep using a connection it met an error on: after any failure the socket
is shut down and ``SyncError`` (CONNECTION_LOST for a hang-up or BYE) is raised.

    SELECTED ──"IDLE"──► await "+ idling" ──► IDLING
                                                │ OK "Still here", RECENT ...: stay
                                                │
        EXISTS/EXPUNGE/FETCH/VANISHED, or the   ├──────────► "DONE" ──► await tagged OK
        deadline passed                         │            (changes seen here count)
                                                │                     │
        tagged answer: the server ended IDLE    ├─────────────────────┤
                                                │                     ▼
        BYE, EOF or any error                   │      SELECTED, IdleOutcome(changed)
                                                ▼
                               socket shut down, SyncError raised

How waiting works: lines may already sit in imaplib's read buffer, or in the TLS layer,
where ``poll`` on the socket cannot see them. So each round first peeks, without
blocking, through imaplib's buffered reader; only when nothing is there does it ``poll``
the socket for the remaining time. A line is read (blocking, bounded by the endpoint
timeout) only once its first byte is known to be there. An empty peek on a TLS socket,
or a zero-byte ``MSG_PEEK`` on a plain one, is the server hanging up.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import ssl
import time
from typing import Any

from crmsync.connectors.base import IdleOutcome
from crmsync.connectors.imap_parse import IdleEvent, idle_event
from crmsync.connectors.imap_session import ImapSession
from crmsync.connectors.replies import imap_error_code, text_of
from crmsync.core.errors import ErrorCode, SyncError

MAX_IDLE_SECONDS = 25 * 60  # RFC 2177: re-issue at least every 29 minutes
MAX_DONE_LINES = 10_000  # untagged lines accepted between DONE and its tagged answer


class _Input(enum.Enum):
    READY = "ready"  # at least one byte of the next line can be read
    NONE = "none"  # nothing yet
    CLOSED = "closed"  # the server hung up


def _peek(client: Any) -> _Input:
    """What is waiting on the connection, without blocking and without consuming it."""
    sock = client.socket()
    reader = client._imap.file
    previous = sock.gettimeout()
    sock.setblocking(False)
    try:
        try:
            data = reader.peek(1)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return _Input.NONE
        except OSError:
            return _Input.CLOSED
        if data:
            return _Input.READY
        if isinstance(sock, ssl.SSLSocket):
            return _Input.CLOSED  # a TLS read returns no bytes only at end of stream
        # A plain buffered reader answers b"" both for "would block" and for EOF.
        try:
            probe = socket.socket.recv(sock, 1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return _Input.NONE
        except OSError:
            return _Input.CLOSED
        return _Input.CLOSED if probe == b"" else _Input.NONE
    finally:
        sock.settimeout(previous)


def _poll(sock: socket.socket, seconds: float) -> None:
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    poller.poll(max(0, int(seconds * 1000)))


class ImapIdle(ImapSession):
    """``idle_wait``; see the module docstring for the states."""

    def idle_wait(self, timeout: float) -> IdleOutcome:
        """IDLE until a change (``IdleOutcome(changed=True)``) or ``timeout`` seconds pass
        (``IdleOutcome(changed=False)``); ``timeout`` is capped at ``MAX_IDLE_SECONDS``.

        A folder must be selected. Raises NOT_SUPPORTED without IDLE, CONNECTION_LOST when
        the server hangs up (the connection is then closed: open a new one).
        """
        self._require(self.supports_idle, "IDLE")
        deadline = time.monotonic() + min(max(timeout, 0.0), MAX_IDLE_SECONDS)
        with self._guard():
            self._client.idle()
        try:
            changed = self._await_change(deadline)
            changed = self._leave_idle() or changed
        except BaseException:
            self._hang_up()
            raise
        return IdleOutcome(changed=changed)

    def interrupt(self) -> None:
        """From another thread: end a waiting ``idle_wait`` at once. The socket is shut
        down, so the waiting thread sees the connection closed (CONNECTION_LOST) and
        closes it; nothing is sent, so there is nothing to interleave with that thread."""
        with contextlib.suppress(OSError):  # already closed is the outcome wanted
            self._client.socket().shutdown(socket.SHUT_RDWR)

    def _idle_tag(self) -> Any:
        return self._client._idle_tag

    def _ended_by_server(self) -> bool:
        return bool(self._client._imap.tagged_commands.get(self._idle_tag()))

    def _await_change(self, deadline: float) -> bool:
        imap = self._client._imap
        while True:
            state = _peek(self._client)
            if state is _Input.CLOSED:
                raise SyncError(
                    ErrorCode.CONNECTION_LOST,
                    f"the server closed the connection while idling ({self.where})",
                )
            if state is _Input.NONE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                _poll(self._client.socket(), remaining)
                continue
            with self._guard():
                line = imap._get_response()
            if self._read_line(line):
                return True
            if self._ended_by_server():
                return False

    def _read_line(self, line: bytes | None) -> bool:
        """True for a change; raises for BYE."""
        event = idle_event(line)
        if event is IdleEvent.BYE:
            text = text_of(line)
            code = imap_error_code(text, ErrorCode.CONNECTION_LOST)
            raise SyncError(code, f"the server is closing the connection: {text} ({self.where})")
        return event is IdleEvent.CHANGE

    def _leave_idle(self) -> bool:
        """Send DONE (unless the server already ended IDLE) and read up to the tagged answer."""
        imap = self._client._imap
        tag = self._idle_tag()
        changed = False
        with self._guard():
            if not self._ended_by_server():
                imap.send(b"DONE\r\n")
            for _ in range(MAX_DONE_LINES):
                if self._ended_by_server():
                    break
                changed = self._read_line(imap._get_response()) or changed
            else:
                raise self._protocol_error("no answer to DONE")
            typ, data = imap.tagged_commands.pop(tag)
        imap.untagged_responses.clear()  # what IDLE reported has been read here
        if typ != "OK":
            raise self._protocol_error(f"IDLE ended with {typ} {text_of(data[-1])}")
        return changed

    def _hang_up(self) -> None:
        with contextlib.suppress(Exception):  # already gone is the outcome wanted
            self._client.shutdown()

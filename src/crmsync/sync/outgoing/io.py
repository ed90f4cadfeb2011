"""The two server sessions the outgoing engine uses: connector Protocols, and how to close.

``SmtpSession`` sends (``base.MessageSender``: one transaction per email, the session kept
open for the batch); ``SentFolderSession`` finds and fills the mailbox's Sent folder over
IMAP (``base.FolderSearch`` and ``base.FolderFiling``). Each adds only how the engine
ends the session. The engine takes factories for both (``OutgoingOptions.open_smtp``/
``open_imap``), so its state machine can be driven in tests by in-memory implementations
that fail on cue; the defaults open the real connectors.

Must never hold database state, or raise anything but ``SyncError``.
"""

from __future__ import annotations

from typing import Protocol

from crmsync.connectors.base import FolderFiling, FolderSearch, MessageSender, SendResult
from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.smtp import SmtpConnection


class SmtpSession(MessageSender, Protocol):
    @property
    def is_open(self) -> bool:
        """False once the server closed the session (a 421, a broken connection)."""
        ...

    def quit(self) -> None:
        """QUIT and close; never raises."""
        ...


class SentFolderSession(FolderSearch, FolderFiling, Protocol):
    def logout(self) -> None:
        """LOGOUT and close; never raises."""
        ...


class _Smtp:
    """``SmtpConnection`` as an ``SmtpSession``."""

    def __init__(self, connection: SmtpConnection) -> None:
        self._connection = connection

    @property
    def max_message_size(self) -> int | None:
        return self._connection.max_message_size

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> SendResult:
        return self._connection.send(envelope_from, recipients, raw)

    @property
    def is_open(self) -> bool:
        return self._connection.client.sock is not None

    def quit(self) -> None:
        self._connection.quit()


def open_smtp(endpoint: Endpoint, credentials: Credentials) -> SmtpSession:
    """Connect, secure, EHLO and authenticate (``SmtpConnection.open``)."""
    return _Smtp(SmtpConnection.open(endpoint, credentials))


def open_imap(endpoint: Endpoint, credentials: Credentials) -> SentFolderSession:
    """Connect, secure and log in (``ImapConnection.open``)."""
    return ImapConnection.open(endpoint, credentials)

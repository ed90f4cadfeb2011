"""The two server sessions the outgoing engine uses, as small Protocols.

``SmtpSession`` sends (one transaction per email, the session kept open for the batch);
``SentFolderSession`` finds and fills the mailbox's Sent folder over IMAP. The engine
takes factories for both (``OutgoingOptions.open_smtp``/``open_imap``), so its state
machine can be driven in tests by in-memory implementations that fail on cue; the
defaults open the real connectors.

Must never hold database state, or raise anything but ``SyncError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from crmsync.connectors.base import FolderStatus, SendResult
from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.smtp import SmtpConnection


class SmtpSession(Protocol):
    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> SendResult:
        """One MAIL/RCPT/DATA transaction (``base.MessageSender.send``)."""
        ...

    @property
    def is_open(self) -> bool:
        """False once the server closed the session (a 421, a broken connection)."""
        ...

    def quit(self) -> None:
        """QUIT and close; never raises."""
        ...


class SentFolderSession(Protocol):
    def find_sent_folder(self) -> str: ...

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus: ...

    def search_message_id(self, message_id: str) -> list[int]: ...

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = ("\\Seen",),
        when: datetime | None = None,
    ) -> int | None: ...

    def logout(self) -> None: ...


class _Smtp:
    """``SmtpConnection`` as an ``SmtpSession``."""

    def __init__(self, connection: SmtpConnection) -> None:
        self._connection = connection

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

"""What every part of ``ImapConnection`` shares: the client, error mapping, capabilities.

What it is for: ``ImapConnection`` (imap.py) is assembled from one class per concern —
reading (imap_fetch.py), change tracking (imap_changes.py), writing (imap_write.py) and
IDLE (imap_idle.py) — each a subclass of ``ImapSession``. This module holds what they
all need: ``translate`` (imapclient/imaplib exceptions → ``SyncError``), ``_guard`` (run
a block with that mapping), the capability attributes the engines read before sending a
command, and ``_uid_command`` for the few commands imapclient cannot express.

What it must never do: import crmsync.crm, let an imaplib/socket/ssl exception escape a
``_guard`` block, or report a capability the session cannot use (an ignored capability —
a server quirk — is reported as absent, and the command that needs it is never sent).

Capabilities (RFC 3501 §7.2.1) are read once the session is authenticated; CONDSTORE and
QRESYNC (RFC 7162) are switched on by ENABLE (RFC 5161) at login, and
``supports_qresync`` is true only if the server confirmed the ENABLE.
"""

from __future__ import annotations

import imaplib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from imapclient.exceptions import CapabilityError, LoginError

from crmsync.connectors.endpoints import Endpoint
from crmsync.connectors.replies import imap_error_code, text_of
from crmsync.connectors.transport import Translate, map_error, mapped_errors
from crmsync.sync.errors import ErrorCode, SyncError


def translate(where: str, *, default: ErrorCode) -> Translate:
    """Map imapclient/imaplib exceptions; ``default`` for a plain NO/BAD in this step."""

    def mapped(exc: Exception) -> SyncError | None:
        if isinstance(exc, imaplib.IMAP4.abort):
            if isinstance(exc.__context__, OSError):
                return map_error(exc.__context__, where)
            text = text_of(exc)
            code = imap_error_code(text, ErrorCode.CONNECTION_LOST)
            return SyncError(code, f"connection closed by the server: {text} ({where})")
        if isinstance(exc, CapabilityError):
            return SyncError(default, f"{text_of(exc)} ({where})")
        if isinstance(exc, LoginError):
            text = text_of(exc)
            code = imap_error_code(text, ErrorCode.AUTH_FAILED)
            return SyncError(code, f"login refused: {text} ({where})")
        if isinstance(exc, imaplib.IMAP4.error):
            text = text_of(exc)
            return SyncError(imap_error_code(text, default), f"server said: {text} ({where})")
        if isinstance(exc, UnicodeError):
            return SyncError(
                ErrorCode.AUTH_FAILED,
                f"the user name or password has characters IMAP LOGIN cannot carry ({where})",
            )
        return None

    return mapped


class ImapSession:
    """The state shared by the parts of ``ImapConnection`` (see module docstring)."""

    def __init__(
        self, client: Any, endpoint: Endpoint, *, ignore_capabilities: Iterable[str] = ()
    ) -> None:
        self._client = client
        self.endpoint = endpoint
        self._ignored = frozenset(c.upper() for c in ignore_capabilities)
        self._enabled: frozenset[str] = frozenset()
        # INTERNALDATE as timezone-aware datetimes, as the server sent them.
        client.normalise_times = False

    @property
    def client(self) -> Any:
        """The raw ``imapclient.IMAPClient`` for engines (wrap calls in ``mapped_errors``)."""
        return self._client

    @property
    def where(self) -> str:
        return self.endpoint.where

    @contextmanager
    def _guard(self, default: ErrorCode = ErrorCode.PROTOCOL_ERROR) -> Iterator[None]:
        """Run the block; any failure leaves as one ``SyncError`` (NO/BAD → ``default``)."""
        with mapped_errors(self.where, translate=translate(self.where, default=default)):
            yield

    def _protocol_error(self, what: str) -> SyncError:
        return SyncError(ErrorCode.PROTOCOL_ERROR, f"{what} ({self.where})")

    # -- capabilities -------------------------------------------------------------------
    def capabilities(self) -> frozenset[str]:
        """Upper-case capability names, e.g. ``frozenset({"IMAP4REV1", "IDLE", "MOVE"})``,
        without the ones this connection was told to ignore."""
        with self._guard():
            raw = self._client.capabilities()
        return frozenset(text_of(c).upper() for c in raw) - self._ignored

    @property
    def supports_condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities()

    @property
    def supports_qresync(self) -> bool:
        return "QRESYNC" in self._enabled and "QRESYNC" in self.capabilities()

    @property
    def supports_idle(self) -> bool:
        return "IDLE" in self.capabilities()

    @property
    def supports_move(self) -> bool:
        return "MOVE" in self.capabilities()

    @property
    def supports_uidplus(self) -> bool:
        return "UIDPLUS" in self.capabilities()

    def _require(self, supported: bool, what: str) -> None:
        """NOT_SUPPORTED before sending a command the server (or this session) lacks."""
        if not supported:
            raise SyncError(
                ErrorCode.NOT_SUPPORTED,
                f"the server does not offer {what} (or it is ignored for it) ({self.where})",
            )

    def _refresh(self) -> None:
        """NOOP, so the next command sees messages delivered since the last one.

        Dovecot (and RFC 3501 §5.2 allows it) runs a command against the folder as it was
        at the end of the previous command and reports new mail only after it: without
        this, ``UID SEARCH`` right after a delivery does not list the new UID.
        """
        with self._guard():
            self._client.noop()

    # -- raw commands -------------------------------------------------------------------
    def _uid_command(self, command: str, *args: str) -> list[Any]:
        """``UID <command> args`` through imaplib; the untagged data named like ``command``.

        For what imapclient cannot say: its ``fetch`` takes message IDs as ints only (it
        filters its answer by them), so ``UID FETCH 1:* ... (CHANGEDSINCE n)`` goes here.
        Call inside ``_guard``; a NO raises ``imaplib.IMAP4.error`` like imapclient does.
        """
        imap = self._client._imap
        typ, data = imap.uid(command, *args)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"UID {command} failed: {text_of(data[-1])}")
        return [item for item in data if item is not None]

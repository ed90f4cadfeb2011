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

SELECT's response codes other than EXISTS are optional (RFC 3501 §6.3.1, RFC 9051
§6.3.2): ``folder_status_of`` completes a SELECT answer that lacks them, in this order —
UIDVALIDITY from ``STATUS (UIDVALIDITY)`` (none at all: PROTOCOL_ERROR, UIDs would mean
nothing); UIDNEXT from ``STATUS (UIDNEXT)``, else from ``UID FETCH * (UID)`` + 1 (an empty
folder: 1); HIGHESTMODSEQ stays None. The server's row in ``quirks.py`` may skip a step
known to be useless for it.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from imapclient.exceptions import CapabilityError, LoginError
from imapclient.response_parser import parse_fetch_response

from crmsync.connectors.base import FolderStatus
from crmsync.connectors.endpoints import Endpoint
from crmsync.connectors.imap_parse import folder_status, highest_uid, status_number
from crmsync.connectors.quirks import ImapQuirks, quirks_for
from crmsync.connectors.replies import imap_error_code, text_of
from crmsync.connectors.transport import Translate, map_error, mapped_errors
from crmsync.core.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

# Where a folder's UIDNEXT came from, for Test & Enable's detail and the logs.
FROM_SELECT = "SELECT"
FROM_STATUS = "STATUS"
FROM_HIGHEST_UID = "UID FETCH *"


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
        self,
        client: Any,
        endpoint: Endpoint,
        *,
        ignore_capabilities: Iterable[str] = (),
        quirks: ImapQuirks | None = None,
    ) -> None:
        self._client = client
        self.endpoint = endpoint
        # The server's row of the quirks table: given by the caller, else found by its
        # greeting (imapclient keeps it as ``welcome``).
        self.quirks = quirks or quirks_for(getattr(client, "welcome", None))
        self._ignored = frozenset(c.upper() for c in ignore_capabilities) | {
            c.upper() for c in self.quirks.ignore_capabilities
        }
        self._enabled: frozenset[str] = frozenset()
        self.uidnext_source = FROM_SELECT
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

    # -- folder status ------------------------------------------------------------------
    def folder_status_of(self, name: str, values: Mapping[str, object]) -> FolderStatus:
        """A ``FolderStatus`` from SELECT data keyed by upper-case name, completed when the
        server left optional codes out (module docstring). PROTOCOL_ERROR if EXISTS is
        missing, or UIDVALIDITY cannot be learnt at all.

        ``{"EXISTS": 3, "UIDVALIDITY": 7}`` → ``FolderStatus(7, <from STATUS>, 3, None)``
        """
        completed = dict(values)
        if status_number(completed.get("UIDVALIDITY")) is None:
            completed["UIDVALIDITY"] = self._status_item(name, "UIDVALIDITY")
        self.uidnext_source = FROM_SELECT
        if status_number(completed.get("UIDNEXT")) is None:
            exists = status_number(completed.get("EXISTS"))
            if exists is None:
                raise self._protocol_error(f"SELECT {name} answered without EXISTS")
            completed["UIDNEXT"] = self._uidnext_fallback(name, exists)
        try:
            return folder_status(completed)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._protocol_error(f"SELECT {name} answered without a usable {exc}") from exc

    def _uidnext_fallback(self, name: str, exists: int) -> int:
        if self.quirks.select_reports_uidnext:
            logger.info("IMAP %s: SELECT %s reported no UIDNEXT; asking again", self.where, name)
        if self.quirks.status_reports_uidnext:
            found = self._status_item(name, "UIDNEXT", required=False)
            if found is not None:
                self.uidnext_source = FROM_STATUS
                return found
        self.uidnext_source = FROM_HIGHEST_UID
        if exists == 0:
            return 1  # nothing to list; the engine starts from UID 1, skipping nothing
        with self._guard():
            data = self._uid_command("FETCH", "*", "(UID)")
        try:
            highest = highest_uid(parse_fetch_response(data, False, False))
        except (ValueError, TypeError, imaplib.IMAP4.error) as exc:
            raise self._protocol_error(f"unreadable UID FETCH * answer: {exc}") from exc
        return 1 if highest is None else highest + 1

    def _status_item(self, name: str, item: str, *, required: bool = True) -> int | None:
        """``STATUS name (item)`` → the number; a refusal or no answer → None, or
        PROTOCOL_ERROR when ``required``. A dropped connection raises as usual."""
        try:
            with self._guard():
                answer = self._client.folder_status(name, [item])
            found = status_number({text_of(k).upper(): v for k, v in answer.items()}.get(item))
        except SyncError as exc:
            if exc.code is not ErrorCode.PROTOCOL_ERROR:
                raise
            found = None
        if found is None and required:
            raise self._protocol_error(f"neither SELECT nor STATUS {name} reported {item}")
        return found

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

"""Change tracking in an IMAP folder: CONDSTORE and QRESYNC (RFC 7162).

What it is for: instead of re-reading every message's flags, the incoming engine asks
"what changed since MODSEQ n?" (``changed_since``, CONDSTORE) and, with QRESYNC, "which
UIDs were expunged since n?" — either while opening the folder (``select_qresync``, one
round trip) or later in a selected folder (``vanished_since``).

What it must never do: send a CHANGEDSINCE or QRESYNC command to a server (or session)
without the capability — ``_require`` raises NOT_SUPPORTED first — or trust a VANISHED
answer for a UIDVALIDITY other than the one asked about.

Why some commands are written by hand: imapclient 3 has no QRESYNC support (no SELECT
parameters, no VANISHED parsing) and its ``fetch`` cannot take ``1:*``. ``select_qresync``
therefore sends ``SELECT "name" (QRESYNC (uidvalidity modseq [known-uids]))`` through
imaplib's ``_simple_command`` and then does what ``imaplib.IMAP4.select`` does after its
own SELECT (flush old untagged data before, set ``state``/``is_readonly`` after); the
FETCH lines are parsed with imapclient's public ``parse_fetch_response``.

Protocol facts relied on (RFC 7162):
- ``UID FETCH 1:* (UID FLAGS) (CHANGEDSINCE n)`` returns every message whose MODSEQ is
  above n — flag changes and messages added since — each with its MODSEQ (§3.1.4.1).
- QRESYNC must be ENABLEd before SELECT (§3.2.3); ``ImapConnection.login`` does that.
- ``SELECT ... (QRESYNC (v n))`` answers with the usual SELECT data plus
  ``* VANISHED (EARLIER) <uids>`` and ``* <seq> FETCH (UID u FLAGS (...) MODSEQ (m))``
  (§3.2.5). With a stale UIDVALIDITY v the server ignores the parameter (§3.2.5.2).
- ``UID FETCH 1:* (UID) (CHANGEDSINCE n VANISHED)`` reports expunges the same way in an
  already selected folder (§3.2.6).
"""

from __future__ import annotations

import imaplib
import re
from typing import Any

from imapclient.response_parser import parse_fetch_response

from crmsync.connectors.base import QresyncResult
from crmsync.connectors.imap_parse import (
    changes_from_fetch,
    untagged_status,
    vanished_uids,
)
from crmsync.connectors.imap_session import ImapSession
from crmsync.connectors.replies import text_of
from crmsync.core.errors import ErrorCode, SyncError

_UID_SET = re.compile(r"^\d+(?::\d+)?(?:,\d+(?::\d+)?)*$")


class ImapChanges(ImapSession):
    """CHANGEDSINCE, QRESYNC SELECT and VANISHED."""

    def _changes(self, data: list[Any]) -> list[tuple[int, int]]:
        try:
            return changes_from_fetch(parse_fetch_response(data, False, False))
        except (ValueError, TypeError, imaplib.IMAP4.error) as exc:  # incl. ProtocolError
            raise self._protocol_error(f"unreadable FETCH answer: {exc}") from exc

    def _vanished(self, data: list[Any]) -> list[int]:
        try:
            return vanished_uids(data)
        except ValueError as exc:
            raise self._protocol_error(f"unreadable VANISHED answer: {exc}") from exc

    def changed_since(self, modseq: int) -> list[tuple[int, int]]:
        """``[(uid, modseq), ...]`` ascending, for messages with MODSEQ above ``modseq``.

        ``changed_since(7)`` → ``[(2, 8), (5, 9)]``: UID 2's flags changed, UID 5 is new or
        changed. Requires CONDSTORE.
        """
        self._require(self.supports_condstore, "CONDSTORE")
        self._refresh()
        with self._guard():
            data = self._uid_command("FETCH", "1:*", "(UID FLAGS)", f"(CHANGEDSINCE {modseq:d})")
        return self._changes(data)

    def vanished_since(self, modseq: int) -> list[int]:
        """UIDs expunged from the selected folder since ``modseq``, ascending (QRESYNC)."""
        self._require(self.supports_qresync, "QRESYNC")
        self._refresh()
        untagged = self._client._imap.untagged_responses
        with self._guard():
            untagged.pop("VANISHED", None)  # stale unsolicited ones from earlier commands
            self._uid_command("FETCH", "1:*", "(UID)", f"(CHANGEDSINCE {modseq:d} VANISHED)")
            data = untagged.pop("VANISHED", [])
        return self._vanished(data)

    def select_qresync(
        self,
        name: str,
        uidvalidity: int,
        modseq: int,
        known_uids: str | None = None,
        *,
        readonly: bool = False,
    ) -> QresyncResult:
        """SELECT (EXAMINE when ``readonly``) with QRESYNC; see ``base.QresyncResult``.

        ``select_qresync("INBOX", 1795600523, 4, "1:3")`` →
        ``QresyncResult(status=FolderStatus(1795600523, 4, 2, 7), vanished=[3],
        changed=[(2, 5)])``. ``known_uids`` bounds the VANISHED answer; without it the
        server may list every UID expunged since ``modseq``.
        """
        self._require(self.supports_qresync, "QRESYNC")
        if known_uids is not None and not _UID_SET.match(known_uids):
            raise SyncError(ErrorCode.INTERNAL, f"not a UID set: {known_uids!r}")
        known = f" {known_uids}" if known_uids else ""
        parameters = f"(QRESYNC ({uidvalidity:d} {modseq:d}{known}))"
        imap = self._client._imap
        command = "EXAMINE" if readonly else "SELECT"
        with self._guard(ErrorCode.FOLDER_MISSING):
            imap.untagged_responses = {}  # as imaplib's select(): flush old responses
            imap.is_readonly = readonly
            typ, data = imap._simple_command(
                command, self._client._normalise_folder(name), parameters
            )
            if typ != "OK":
                imap.state = "AUTH"
                raise imaplib.IMAP4.error(f"{command} {name} failed: {text_of(data[-1])}")
            imap.state = "SELECTED"
        untagged = imap.untagged_responses
        vanished_data = untagged.pop("VANISHED", [])
        fetch_data = untagged.pop("FETCH", [])
        status = self.folder_status_of(name, untagged_status(untagged))
        if status.uidvalidity != uidvalidity:
            return QresyncResult(status=status)
        return QresyncResult(
            status=status,
            vanished=self._vanished(vanished_data),
            changed=self._changes(fetch_data),
        )

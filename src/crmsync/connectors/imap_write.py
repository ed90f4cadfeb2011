"""Changing an IMAP mailbox: APPEND a Sent copy, create folders, MOVE, delete.

What it is for: the outgoing engine stores the copy of a sent message in the Sent folder
(``find_sent_folder``, ``append``) and finds it again by Message-ID; folder-level
tracking moves messages (``move``); clean-up expunges them (``delete``).

What it must never do: touch messages other than the UIDs it was given when UIDPLUS
offers a way not to (``UID EXPUNGE``, RFC 4315 §2.1), create a folder that already
exists, or send MOVE to a server without it.

Facts relied on:
- APPEND answers ``OK [APPENDUID <uidvalidity> <uid>]`` with UIDPLUS (RFC 4315 §3), and
  ``NO [TRYCREATE]`` when the folder is missing (RFC 3501 §6.3.11) → FOLDER_MISSING.
- MOVE (RFC 6851) is atomic. Without it: ``UID COPY``, ``UID STORE +FLAGS.SILENT
  (\\Deleted)``, then ``UID EXPUNGE`` (UIDPLUS) — or, on a server without UIDPLUS, a plain
  ``EXPUNGE``, which also removes any other message already marked ``\\Deleted``
  (that is what ``\\Deleted`` asks for; RFC 3501 §2.3.2).
- Servers that support SPECIAL-USE (RFC 6154) mark the Sent folder ``\\Sent`` in LIST;
  others use a name by convention ("Sent", "Sent Items", "INBOX.Sent" ...).
- ``CREATE`` of an existing folder fails with ``NO [ALREADYEXISTS]`` (RFC 5530): another
  session won the race, which is success here.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from crmsync.connectors.imap_fetch import META_BATCH
from crmsync.connectors.imap_parse import appended_uid, batched, choose_sent_folder
from crmsync.connectors.imap_session import ImapSession
from crmsync.connectors.replies import response_code, text_of

logger = logging.getLogger(__name__)

DELETED = b"\\Deleted"
DEFAULT_SENT_NAME = "Sent"


class ImapWriting(ImapSession):
    """APPEND, CREATE, MOVE (or COPY + EXPUNGE) and delete."""

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = ("\\Seen",),
        when: datetime | None = None,
    ) -> int | None:
        """APPEND ``raw`` to ``folder``; the new UID (``12``) with UIDPLUS, else None.

        ``when`` becomes the INTERNALDATE (the server's clock when None). A missing folder
        raises FOLDER_MISSING; a full mailbox QUOTA.
        """
        with self._guard():
            response = self._client.append(folder, raw, tuple(flags), when)
        return appended_uid(response) if self.supports_uidplus else None

    def ensure_folder(self, name: str) -> None:
        """Create and subscribe ``name`` unless it already exists."""
        with self._guard():
            if self._client.folder_exists(name):
                return
            try:
                self._client.create_folder(name)
            except imaplib.IMAP4.error as exc:
                if response_code(text_of(exc)) != "ALREADYEXISTS":
                    raise
            self._client.subscribe_folder(name)
        logger.debug("IMAP %s: created folder %s", self.where, name)

    def _personal_prefix(self) -> str:
        if "NAMESPACE" not in self.capabilities():
            return ""
        with self._guard():
            personal = self._client.namespace().personal
        return str(personal[0][0]) if personal else ""

    def find_sent_folder(self) -> str:
        """The Sent folder's name: ``"Sent"``, ``"Sent Items"``, ``"INBOX.Sent"`` ...

        A folder marked ``\\Sent`` wins, then the usual names (``imap_parse.SENT_NAMES``)
        in the personal namespace; when there is none, "Sent" is created there.
        """
        with self._guard():
            listing = self._client.list_folders()
        prefix = self._personal_prefix()
        found = choose_sent_folder(listing, prefix)
        if found is not None:
            return found
        name = prefix + DEFAULT_SENT_NAME
        self.ensure_folder(name)
        return name

    def _expunge(self, uids: list[int]) -> None:
        if self.supports_uidplus:
            self._client.uid_expunge(uids)
        else:
            self._client.expunge()

    def move(self, uids: Iterable[int], folder: str) -> None:
        """Move messages of the selected folder to ``folder`` (MOVE, else COPY + EXPUNGE)."""
        wanted = sorted({int(uid) for uid in uids})
        for batch in batched(wanted, META_BATCH):
            with self._guard():  # NO [TRYCREATE] still means FOLDER_MISSING
                if self.supports_move:
                    self._client.move(batch, folder)
                else:
                    self._client.copy(batch, folder)
                    self._client.add_flags(batch, [DELETED], silent=True)
                    self._expunge(batch)

    def delete(self, uids: Iterable[int]) -> None:
        """Mark ``\\Deleted`` and expunge messages of the selected folder."""
        wanted = sorted({int(uid) for uid in uids})
        for batch in batched(wanted, META_BATCH):
            with self._guard():
                self._client.add_flags(batch, [DELETED], silent=True)
                self._expunge(batch)

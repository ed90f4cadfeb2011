"""The mailbox's Sent folder, for the outgoing engine: evidence, and the copy people see.

    look_up(ids)     one IMAP session: the Sent folder (SPECIAL-USE \\Sent, RFC 6154, else a
                     usual name), each Message-ID searched (``search_message_id`` compares
                     the whole header, not a substring) → Lookup per id
    save_copies(..)  one IMAP session: APPEND each message with \\Seen (RFC 3501 §6.3.11);
                     a copy owed from an earlier pass is searched for first, so a crash
                     between APPEND and recording it never leaves two copies

Evidence matters because many providers (Gmail, Exchange Online) file every submitted
message in Sent themselves, at the moment they accept it: finding it there proves the
acceptance a crashed worker never recorded. On servers that do not, the copy crmsync
appends comes after ``sent`` is committed, so it is a copy, not evidence.

Runs with no database transaction open; returns plain values. Must never log message
content or credentials; a failing IMAP server costs copies and evidence, never an email.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.core.errors import SyncError
from crmsync.sync.outgoing.decide import Lookup
from crmsync.sync.outgoing.io import SentFolderSession

log = logging.getLogger(__name__)

SEEN = ("\\Seen",)
OpenImap = Callable[[Endpoint, Credentials], SentFolderSession]


@dataclass(frozen=True)
class Copy:
    """A message owed to the Sent folder; ``fresh`` when sent in this pass (no search)."""

    email_id: uuid.UUID
    message_id: str | None
    raw: bytes
    sent_at: datetime | None
    fresh: bool


@dataclass
class CopyResult:
    saved: list[uuid.UUID] = field(default_factory=list)
    error: SyncError | None = None


def look_up(
    open_imap: OpenImap,
    endpoint: Endpoint | None,
    credentials: Credentials,
    message_ids: list[str],
) -> tuple[dict[str, Lookup], SyncError | None]:
    """``({'<a@x>': Lookup.FOUND, ...}, None)``; every id UNAVAILABLE and the error when
    the folder could not be searched; NOT_FOUND for all without IMAP (``endpoint`` None)."""
    if endpoint is None:
        return dict.fromkeys(message_ids, Lookup.NOT_FOUND), None
    try:
        session = open_imap(endpoint, credentials)
        try:
            folder = session.find_sent_folder()
            session.select_folder(folder, readonly=True)
            found = {
                mid: Lookup.FOUND if session.search_message_id(mid) else Lookup.NOT_FOUND
                for mid in message_ids
            }
        finally:
            session.logout()
    except SyncError as exc:
        log.info("outgoing: Sent folder not searchable: %s", exc)
        return dict.fromkeys(message_ids, Lookup.UNAVAILABLE), exc
    return found, None


def save_copies(
    open_imap: OpenImap, endpoint: Endpoint, credentials: Credentials, copies: list[Copy]
) -> CopyResult:
    """Append ``copies`` to the Sent folder; what was saved, and the error that stopped it."""
    result = CopyResult()
    if not copies:
        return result
    try:
        session = open_imap(endpoint, credentials)
        try:
            folder = session.find_sent_folder()
            if any(not copy.fresh for copy in copies):
                session.select_folder(folder, readonly=True)
            for copy in copies:
                if (
                    not copy.fresh
                    and copy.message_id
                    and session.search_message_id(copy.message_id)
                ):
                    result.saved.append(copy.email_id)  # appended before a crash: keep one
                    continue
                session.append(folder, copy.raw, SEEN, copy.sent_at)
                result.saved.append(copy.email_id)
        finally:
            session.logout()
    except SyncError as exc:
        log.info("outgoing: Sent copies stopped: %s", exc)
        result.error = exc
    return result

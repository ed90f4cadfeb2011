"""An in-memory mail server: IMAP folders and a POP3 drop that keep the RFCs' promises.

What it is for: the engines' state-machine tests, which need a server they can change
between any two steps (new mail, expunges, flag changes, a new UIDVALIDITY, a dropped
connection on cue), and trying a pass without a server. ``MemoryMailServer`` holds the
accounts and outlives sessions; ``open_imap`` gives a ``MemoryImapSession``
(``base.MailFolderSource``), ``open_pop3`` a ``MemoryPop3Session`` (``base.MessageDrop``),
with the signatures of the incoming engine's factories (``IncomingOptions``).

What it must never do: import anything but ``connectors/`` and ``core/``, do I/O, or be
kinder than a real server — what a test learns here must hold against Dovecot:

- UIDs only grow and are never reused within a UIDVALIDITY (RFC 3501 §2.3.1.1); an
  expunged UID stays unused. ``MemoryFolder.renumber`` is a UIDVALIDITY change: a new,
  different UIDVALIDITY and every message numbered again from 1.
- Each change (a delivery, a flag change, an expunge) raises the folder's HIGHESTMODSEQ,
  and the MODSEQ of the message it touched (RFC 7162 §3.1); they are reported only with
  CONDSTORE, and expunges as VANISHED only with QRESYNC.
- A session sees the capabilities the server offers, less those of its quirks row
  (``quirks.py``) and those the caller ignores. A row saying that neither SELECT nor
  STATUS reports UIDNEXT gives the connector's last fallback, the highest UID + 1 — below
  the true UIDNEXT once the newest messages are expunged.
- The POP3 drop is INBOX, as in Dovecot. A session numbers the messages 1..n in UID order
  and keeps those numbers, and the bytes (the drop is locked, RFC 1939 §8), until it
  ends; the next session numbers what is left again. A UIDL is the UID and UIDVALIDITY in
  hex (Dovecot's ``%08Xu%08Xv``): the same in every session, all new after a renumbering.
  DELE takes effect only at QUIT, i.e. when the ``with`` block ends without an exception.

Faults: ``fail_on_call(n)`` makes the n-th call from now, on any session of the server
(opening one counts, and so does each message body a fetch streams), raise
``SyncError(CONNECTION_LOST)`` — or the exception given, e.g. a test's stand-in for a
killed process. Its session is dead from then on, as after a dropped connection. ``calls``
counts the calls by name, for tests that assert what a pass asked of the server.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

from crmsync.connectors.base import (
    FolderStatus,
    IdleOutcome,
    MessageMeta,
    QresyncResult,
    RawMessage,
)
from crmsync.connectors.endpoints import Credentials, Endpoint
from crmsync.connectors.imap_parse import (
    message_id_from_header,
    normalise_message_id,
    parse_uid_set,
)
from crmsync.connectors.quirks import GENERIC, ImapQuirks
from crmsync.core.errors import ErrorCode, SyncError

if TYPE_CHECKING:
    from crmsync.connectors.base import MailFolderSource, MessageDrop

INBOX = "INBOX"
CAPABILITIES = frozenset({"IMAP4REV1", "ENABLE", "IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS"})


def header_of(raw: bytes) -> bytes:
    """The header section with its blank line (what POP3 ``TOP n 0`` answers)."""
    for end in (b"\r\n\r\n", b"\n\n"):
        at = raw.find(end)
        if at >= 0:
            return raw[: at + len(end)]
    return raw


@dataclass
class _Message:
    raw: bytes
    flags: frozenset[str]
    internaldate: datetime
    modseq: int


class MemoryFolder:
    """One folder's messages and counters. Tests change it with ``deliver``,
    ``expunge``, ``set_flags`` and ``renumber``, between or during sessions."""

    def __init__(self, server: MemoryMailServer, name: str) -> None:
        self._server = server
        self.name = name
        self.uidvalidity = server.next_uidvalidity()
        self.uidnext = 1
        self.highestmodseq = 1
        self.messages: dict[int, _Message] = {}  # by UID, kept ascending
        self._vanished: list[tuple[int, int]] = []  # (UID, the MODSEQ of its expunge)
        self.version = 0  # rises at every change: what IDLE waits for

    def _change(self) -> int:
        self.highestmodseq += 1
        self.version += 1
        self._server.lock.notify_all()
        return self.highestmodseq

    def deliver(self, raw: bytes, flags: Iterable[str] = (), when: datetime | None = None) -> int:
        """Add a message; its UID is above every UID used in this UIDVALIDITY."""
        with self._server.lock:
            uid = self.uidnext
            self.uidnext += 1
            received = when or datetime.now(UTC)
            self.messages[uid] = _Message(raw, frozenset(flags), received, self._change())
            return uid

    def expunge(self, uids: Iterable[int]) -> None:
        """Remove messages for good; their UIDs are never given out again."""
        with self._server.lock:
            for uid in sorted(set(uids)):
                if self.messages.pop(uid, None) is not None:
                    self._vanished.append((uid, self._change()))

    def set_flags(self, uid: int, flags: Iterable[str]) -> None:
        """Replace a message's flags (``UID STORE n FLAGS``); its MODSEQ rises."""
        with self._server.lock:
            message = self.messages[uid]
            message.flags = frozenset(flags) - {"\\Recent"}
            message.modseq = self._change()

    def renumber(self) -> int:
        """A UIDVALIDITY change: the messages, in order, get UIDs from 1 again.
        Returns the new UIDVALIDITY."""
        with self._server.lock:
            kept = [self.messages[uid] for uid in sorted(self.messages)]
            self.uidvalidity = self._server.next_uidvalidity()
            self.messages = dict(enumerate(kept, start=1))
            self.uidnext = len(kept) + 1
            self._vanished = []
            self._change()
            return self.uidvalidity

    def uids(self) -> list[int]:
        with self._server.lock:
            return sorted(self.messages)

    def raw(self, uid: int) -> bytes:
        with self._server.lock:
            return self.messages[uid].raw

    def uidl(self, uid: int) -> str:
        return f"{uid:08X}{self.uidvalidity:08X}"

    def status(self, capabilities: frozenset[str], quirks: ImapQuirks) -> FolderStatus:
        uidnext = self.uidnext
        if not (quirks.select_reports_uidnext or quirks.status_reports_uidnext):
            uidnext = max(self.messages, default=0) + 1  # UID FETCH * (UID), plus one
        modseq = self.highestmodseq if "CONDSTORE" in capabilities else None
        return FolderStatus(self.uidvalidity, uidnext, len(self.messages), modseq)

    def changed_since(self, modseq: int) -> list[tuple[int, int]]:
        return [(uid, m.modseq) for uid, m in sorted(self.messages.items()) if m.modseq > modseq]

    def vanished_since(self, modseq: int) -> list[int]:
        return sorted(uid for uid, at in self._vanished if at > modseq)


class MemoryAccount:
    """A login and its folders; INBOX always exists."""

    def __init__(self, server: MemoryMailServer, username: str, password: str | None) -> None:
        self._server = server
        self.username = username
        self.password = password
        self.folders: dict[str, MemoryFolder] = {INBOX: MemoryFolder(server, INBOX)}

    @property
    def inbox(self) -> MemoryFolder:
        return self.folders[INBOX]

    def folder(self, name: str) -> MemoryFolder:
        """The folder ``name``, made empty if it does not exist yet."""
        with self._server.lock:
            if name not in self.folders:
                self.folders[name] = MemoryFolder(self._server, name)
            return self.folders[name]


class MemoryMailServer:
    """The accounts, the capabilities offered, the quirks, and the faults to come."""

    def __init__(
        self,
        *,
        capabilities: Iterable[str] = CAPABILITIES,
        quirks: ImapQuirks = GENERIC,
        pop3_uidl: bool = True,
    ) -> None:
        self.capabilities = frozenset(c.upper() for c in capabilities)
        self.quirks = quirks
        self.pop3_uidl = pop3_uidl
        self.lock = threading.Condition(threading.RLock())
        self.accounts: dict[str, MemoryAccount] = {}
        self.calls: Counter[str] = Counter()
        self._uidvalidity = 1_700_000_000
        self._count = 0
        self._fail_at: int | None = None
        self._failure: BaseException | None = None

    def next_uidvalidity(self) -> int:
        with self.lock:
            self._uidvalidity += 1
            return self._uidvalidity

    def add_account(self, username: str, password: str | None = None) -> MemoryAccount:
        """A login; without ``password`` any password is accepted."""
        with self.lock:
            account = self.accounts[username] = MemoryAccount(self, username, password)
            return account

    def fail_on_call(self, n: int, error: BaseException | None = None) -> None:
        """The ``n``-th call from now (1 = the next) raises ``error``, by default a
        dropped connection; its session stays dead. Replaces a fault not yet fired."""
        with self.lock:
            self._fail_at = self._count + n
            self._failure = error

    def clear_faults(self) -> None:
        with self.lock:
            self._fail_at = self._failure = None

    def _call(self, name: str, where: str) -> None:
        """Count a call; raise the programmed fault when its turn has come."""
        with self.lock:
            self._count += 1
            self.calls[name] += 1
            if self._count != self._fail_at:
                return
            failure = self._failure
            self._fail_at = self._failure = None
        raise failure or SyncError(
            ErrorCode.CONNECTION_LOST, f"connection lost during {name} ({where})"
        )

    def _login(self, endpoint: Endpoint, credentials: Credentials) -> MemoryAccount:
        account = self.accounts.get(credentials.username)
        if account is None or (
            account.password is not None and credentials.password != account.password
        ):
            raise SyncError(ErrorCode.AUTH_FAILED, f"login refused ({endpoint.where})")
        return account

    def open_imap(
        self, endpoint: Endpoint, credentials: Credentials, ignore_capabilities: tuple[str, ...]
    ) -> MemoryImapSession:
        """Connect and log in (``IncomingOptions.open_imap``)."""
        self._call("open_imap", endpoint.where)
        ignored = {c.upper() for c in ignore_capabilities} | set(self.quirks.ignore_capabilities)
        return MemoryImapSession(
            self, self._login(endpoint, credentials), self.capabilities - ignored, endpoint.where
        )

    def open_pop3(self, endpoint: Endpoint, credentials: Credentials) -> MemoryPop3Session:
        """Connect and log in (``IncomingOptions.open_pop3``)."""
        self._call("open_pop3", endpoint.where)
        return MemoryPop3Session(self, self._login(endpoint, credentials), endpoint.where)


class _Session:
    def __init__(self, server: MemoryMailServer, account: MemoryAccount, where: str) -> None:
        self._server = server
        self._account = account
        self._where = where
        self._alive = True

    def _call(self, name: str) -> None:
        if not self._alive:
            raise SyncError(ErrorCode.CONNECTION_LOST, f"the connection is closed ({self._where})")
        try:
            self._server._call(name, self._where)
        except BaseException:
            self._alive = False
            raise

    def _refuse(self, what: str) -> SyncError:
        return SyncError(
            ErrorCode.NOT_SUPPORTED, f"the server does not offer {what} ({self._where})"
        )


class MemoryImapSession(_Session):
    """One IMAP session (``base.MailFolderSource``); close it with ``logout`` or ``with``."""

    def __init__(
        self,
        server: MemoryMailServer,
        account: MemoryAccount,
        capabilities: frozenset[str],
        where: str,
    ) -> None:
        super().__init__(server, account, where)
        self._capabilities = capabilities
        self._selected: MemoryFolder | None = None
        self._uidvalidity = 0  # of the selected folder when it was selected
        self._version = 0  # of the selected folder when last looked at

    @property
    def supports_condstore(self) -> bool:
        return "CONDSTORE" in self._capabilities

    @property
    def supports_qresync(self) -> bool:
        return {"QRESYNC", "ENABLE"} <= self._capabilities

    @property
    def supports_idle(self) -> bool:
        return "IDLE" in self._capabilities

    def _folder(self) -> MemoryFolder:
        folder = self._selected
        if folder is None:
            raise SyncError(ErrorCode.PROTOCOL_ERROR, f"no folder selected ({self._where})")
        if folder.uidvalidity != self._uidvalidity:
            # A server renumbering a selected folder ends the session (RFC 3501 §2.3.1.1).
            self._alive = False
            raise SyncError(ErrorCode.CONNECTION_LOST, f"UIDVALIDITY changed ({self._where})")
        return folder

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus:
        self._call("select_folder")
        with self._server.lock:
            folder = self._account.folders.get(name)
            if folder is None:
                raise SyncError(ErrorCode.FOLDER_MISSING, f"no folder {name} ({self._where})")
            self._selected, self._uidvalidity, self._version = (
                folder,
                folder.uidvalidity,
                folder.version,
            )
            return folder.status(self._capabilities, self._server.quirks)

    def select_qresync(
        self,
        name: str,
        uidvalidity: int,
        modseq: int,
        known_uids: str | None = None,
        *,
        readonly: bool = False,
    ) -> QresyncResult:
        if not self.supports_qresync:
            raise self._refuse("QRESYNC")
        with self._server.lock:
            status = self.select_folder(name, readonly=readonly)
            if status.uidvalidity != uidvalidity:
                return QresyncResult(status)  # the server ignores a stale request
            folder = self._folder()
            vanished = folder.vanished_since(modseq)
            if known_uids is not None:
                known = set(parse_uid_set(known_uids))
                vanished = [uid for uid in vanished if uid in known]
            return QresyncResult(status, vanished, folder.changed_since(modseq))

    def uids_after(self, last_uid: int) -> list[int]:
        self._call("uids_after")
        with self._server.lock:
            return [uid for uid in sorted(self._folder().messages) if uid > last_uid]

    def all_uids(self) -> list[int]:
        self._call("all_uids")
        with self._server.lock:
            return sorted(self._folder().messages)

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        self._call("fetch_meta")
        with self._server.lock:
            folder = self._folder()
            return [
                MessageMeta(
                    uid=uid,
                    size=len(message.raw),
                    flags=message.flags,
                    internaldate=message.internaldate,
                    message_id=message_id_from_header(header_of(message.raw)),
                    modseq=message.modseq if self.supports_condstore else None,
                )
                for uid in sorted(set(uids))
                if (message := folder.messages.get(uid)) is not None
            ]

    def fetch_raw(self, uids: Iterable[int], *, max_size: int | None) -> Iterator[RawMessage]:
        """Sizes now (one call), each body when the iterator reaches it (one call each):
        a message expunged in between is left out, as the real connector leaves it out."""
        self._call("fetch_raw")
        with self._server.lock:
            folder = self._folder()
            sizes = [
                (uid, len(folder.messages[uid].raw))
                for uid in sorted(set(uids))
                if uid in folder.messages
            ]
        return self._bodies(folder, sizes, max_size)

    def _bodies(
        self, folder: MemoryFolder, sizes: list[tuple[int, int]], max_size: int | None
    ) -> Iterator[RawMessage]:
        for uid, size in sizes:
            if max_size is not None and size > max_size:
                yield RawMessage(uid, None, size, too_large=True)
                continue
            self._call("fetch_body")
            with self._server.lock:
                message = self._folder().messages.get(uid)
            if message is not None:
                yield RawMessage(uid, message.raw, len(message.raw))

    def changed_since(self, modseq: int) -> list[tuple[int, int]]:
        if not self.supports_condstore:
            raise self._refuse("CONDSTORE")
        self._call("changed_since")
        with self._server.lock:
            return self._folder().changed_since(modseq)

    def vanished_since(self, modseq: int) -> list[int]:
        if not self.supports_qresync:
            raise self._refuse("QRESYNC")
        self._call("vanished_since")
        with self._server.lock:
            return self._folder().vanished_since(modseq)

    def search_message_id(self, message_id: str) -> list[int]:
        self._call("search_message_id")
        wanted = normalise_message_id(message_id)
        with self._server.lock:
            return [
                uid
                for uid, message in sorted(self._folder().messages.items())
                if message_id_from_header(header_of(message.raw)) == wanted
            ]

    def idle_wait(self, timeout: float) -> IdleOutcome:
        """Wait until the selected folder changes (since it was last looked at) or
        ``timeout`` seconds pass."""
        if not self.supports_idle:
            raise self._refuse("IDLE")
        self._call("idle_wait")
        with self._server.lock:
            folder = self._folder()
            changed = self._server.lock.wait_for(lambda: folder.version != self._version, timeout)
            self._version = folder.version
            return IdleOutcome(changed=bool(changed))

    def logout(self) -> None:
        """Close; never raises."""
        self._alive = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.logout()


class MemoryPop3Session(_Session):
    """One POP3 session over the account's INBOX (``base.MessageDrop``)."""

    def __init__(self, server: MemoryMailServer, account: MemoryAccount, where: str) -> None:
        super().__init__(server, account, where)
        with server.lock:
            inbox = account.inbox
            self._uidvalidity = inbox.uidvalidity
            # The session's numbering: message n is the n-th by UID, until QUIT.
            self._drop = [(uid, inbox.messages[uid].raw) for uid in sorted(inbox.messages)]
        self._deleted: set[int] = set()

    @property
    def supports_uidl(self) -> bool:
        return self._server.pop3_uidl

    def _numbers(self) -> list[int]:
        return [n for n in range(1, len(self._drop) + 1) if n not in self._deleted]

    def _message(self, number: int) -> bytes:
        if number not in self._numbers():
            raise SyncError(ErrorCode.PROTOCOL_ERROR, f"-ERR no such message ({self._where})")
        return self._drop[number - 1][1]

    def uidl(self) -> list[tuple[int, str]]:
        if not self.supports_uidl:
            raise self._refuse("UIDL")
        self._call("uidl")
        return [(n, f"{self._drop[n - 1][0]:08X}{self._uidvalidity:08X}") for n in self._numbers()]

    def list_sizes(self) -> dict[int, int]:
        self._call("list_sizes")
        return {n: len(self._drop[n - 1][1]) for n in self._numbers()}

    def retrieve(self, number: int, *, max_size: int | None) -> bytes | None:
        self._call("retrieve")
        raw = self._message(number)
        return None if max_size is not None and len(raw) > max_size else raw

    def header(self, number: int, *, max_size: int) -> bytes | None:
        self._call("header")
        head = header_of(self._message(number))
        return None if len(head) > max_size else head

    def delete(self, number: int) -> None:
        self._call("delete")
        self._message(number)
        self._deleted.add(number)

    def quit(self) -> None:
        """QUIT: the marked messages are removed (the UPDATE state, RFC 1939 §6). A QUIT
        lost with the connection removes nothing; like ``Pop3Connection.quit`` it never
        raises a ``SyncError``."""
        try:
            self._call("quit")
        except SyncError:
            return
        finally:
            self._alive = False
        with self._server.lock:
            inbox = self._account.inbox
            if inbox.uidvalidity == self._uidvalidity:
                inbox.expunge(self._drop[n - 1][0] for n in self._deleted)

    def close(self) -> None:
        """Close without QUIT: every message stays."""
        self._alive = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.quit()
        else:
            self.close()


if TYPE_CHECKING:

    def _implements(
        imap: MemoryImapSession, pop3: MemoryPop3Session
    ) -> tuple[MailFolderSource, MessageDrop]:
        return imap, pop3

"""What the sync engines may ask of a mail connector: small Protocols and their records.

What it is for: ``sync/`` programs against these Protocols, not against ``ImapConnection``,
``Pop3Connection`` or ``SmtpConnection``, so an in-memory implementation can stand in for
a server in the engines' state-machine tests, and an EWS or Graph connector can offer the
same shape later. The records (``FolderStatus``, ``MessageMeta``, ``RawMessage`` ...) are
the typed values that cross the protocol boundary: ints for UIDs, ``str`` flags,
timezone-aware datetimes, never bytes-keyed dicts.

What it must never do: import anything (no crm, no protocol library), or grow methods an
engine does not call. Implementations raise nothing but ``SyncError``
(``crmsync.core.errors``), with a catalogue code chosen at their edge.

Vocabulary (IMAP: RFC 3501 §2.3.1.1, RFC 7162; POP3: RFC 1939 §7; SMTP: RFC 5321 §3.3):

    UID           A message's number in one IMAP folder, a positive 32-bit int that only
                  grows: a new message always gets a UID above every UID ever used in the
                  folder, and a UID is never reused while the UIDVALIDITY stays the same.
    UIDVALIDITY   A folder's generation number. While it is unchanged, every UID keeps
                  meaning the same message. When it changes (folder deleted and created
                  again, server index rebuilt) every stored UID of that folder is void:
                  the engine forgets them and lists the folder again from scratch.
    UIDNEXT       The UID the next message will probably get (a lower bound); messages
                  with UID >= the UIDNEXT seen last time are new.
    MODSEQ        CONDSTORE (RFC 7162): each message carries a mod-sequence that rises
                  whenever its flags change; a folder's HIGHESTMODSEQ is the largest.
                  "Everything changed since MODSEQ n" is then one command.
    VANISHED      QRESYNC (RFC 7162 §3.2.5, §3.2.10): the UIDs expunged since a MODSEQ,
                  reported by the server instead of being found by listing all UIDs.
    Cursor        What an engine stores per folder to sync incrementally:
                  (UIDVALIDITY, last UID seen, HIGHESTMODSEQ). It advances only with, or
                  after, the records it covers (DESIGN.md).
    UIDL          POP3's unique-id listing (RFC 1939 §7): a server-chosen string, stable
                  across sessions, per message; message *numbers* are 1..n and valid only
                  within one session.
    Envelope      SMTP's MAIL FROM and RCPT TO addresses (RFC 5321 §3.3): who the server
                  delivers to, independent of the To/Cc/Bcc header lines in the message.

Capabilities are attributes (``supports_qresync`` ...), read before a command is sent:
an engine picks its strategy from them (QRESYNC, else CONDSTORE, else full UID listing;
IDLE, else polling) instead of sending a command and catching the refusal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT/EXAMINE reports; ``highestmodseq`` is None without CONDSTORE/NOMODSEQ.

    FolderStatus(uidvalidity=1795599498, uidnext=4, exists=3, highestmodseq=7)
    """

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None


@dataclass(frozen=True)
class MessageMeta:
    """What an engine needs to decide about a message before downloading it.

    MessageMeta(uid=7, size=2048, flags=frozenset({"\\\\Seen"}),
                internaldate=datetime(2026, 11, 25, 9, 55, 23, tzinfo=UTC),
                message_id="<a1@example.test>", modseq=12)

    ``flags`` never holds the session-only ``\\Recent``; ``message_id`` is the first
    Message-ID header, angle brackets kept, or None; ``modseq`` is None without CONDSTORE.
    """

    uid: int
    size: int
    flags: frozenset[str]
    internaldate: datetime | None
    message_id: str | None
    modseq: int | None


@dataclass(frozen=True)
class RawMessage:
    """A message's exact bytes, or ``raw=None, too_large=True`` when over the size cap."""

    uid: int
    raw: bytes | None
    size: int
    too_large: bool = False


@dataclass(frozen=True)
class QresyncResult:
    """A QRESYNC SELECT: the folder's status plus what changed since the client's MODSEQ.

    ``changed`` is ``[(uid, modseq), ...]`` (flags changed or message new), ``vanished``
    the expunged UIDs. Both are empty when ``status.uidvalidity`` differs from the one the
    client sent: the server then ignores the request and the client must start over.
    """

    status: FolderStatus
    vanished: list[int] = field(default_factory=list)
    changed: list[tuple[int, int]] = field(default_factory=list)


@dataclass(frozen=True)
class IdleOutcome:
    """How an IDLE wait ended: ``changed`` when the server announced a change, else timeout."""

    changed: bool


@dataclass(frozen=True)
class SendResult:
    """One SMTP transaction: who the server took, and who it refused with its reply.

    SendResult(accepted=["a@example.test"],
               refused={"nobody@example.test": (550, "5.1.1 <nobody@...>: User unknown")})
    """

    accepted: list[str]
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


class FolderSearch(Protocol):
    """Opening a folder and finding a message in it by its Message-ID: all the reading
    the outgoing engine does (its evidence in the Sent folder).

    Raises ``SyncError``: FOLDER_MISSING for a folder that does not exist,
    CONNECTION_LOST/TIMEOUT/... for the network.
    """

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus:
        """Open ``name``; its UIDVALIDITY/UIDNEXT/HIGHESTMODSEQ form the new cursor."""
        ...

    def search_message_id(self, message_id: str) -> list[int]:
        """UIDs whose Message-ID header is exactly ``message_id`` (brackets optional)."""
        ...


class MailFolderSource(FolderSearch, Protocol):
    """Reading an IMAP-like store: folders of UID-addressed messages, cursors, push.

    A folder must be selected (``select_folder``/``select_qresync``) before the other
    methods; they act on that folder. Every method raises ``SyncError``: FOLDER_MISSING
    for a folder that does not exist, NOT_SUPPORTED when called although the matching
    ``supports_*`` attribute is False, CONNECTION_LOST/TIMEOUT/... for the network.
    Nothing here changes a message (no ``\\Seen`` is set by reading).
    """

    @property
    def supports_condstore(self) -> bool:
        """MODSEQs are reported: ``changed_since`` works, ``MessageMeta.modseq`` is set."""
        ...

    @property
    def supports_qresync(self) -> bool:
        """``select_qresync`` and ``vanished_since`` work (expunges reported by UID)."""
        ...

    @property
    def supports_idle(self) -> bool:
        """``idle_wait`` works; without it the engine polls."""
        ...

    def select_qresync(
        self,
        name: str,
        uidvalidity: int,
        modseq: int,
        known_uids: str | None = None,
        *,
        readonly: bool = False,
    ) -> QresyncResult:
        """Open ``name`` and learn, in the same round trip, what changed since ``modseq``.

        ``known_uids`` is an IMAP UID set (``"1:300,305"``) that bounds ``vanished``.
        """
        ...

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``, ascending: ``[301, 302]``; ``[]`` when none."""
        ...

    def all_uids(self) -> list[int]:
        """Every UID in the folder, ascending."""
        ...

    def fetch_meta(self, uids: Iterable[int]) -> list[MessageMeta]:
        """Size, flags, INTERNALDATE, Message-ID and MODSEQ; expunged UIDs are left out."""
        ...

    def fetch_raw(self, uids: Iterable[int], *, max_size: int | None) -> Iterator[RawMessage]:
        """Exact bytes, ascending by UID; over ``max_size`` → ``raw=None, too_large=True``.

        Consume the iterator before sending another command on the same connection.
        """
        ...

    def changed_since(self, modseq: int) -> list[tuple[int, int]]:
        """``[(uid, modseq), ...]`` of messages whose MODSEQ is above ``modseq``."""
        ...

    def vanished_since(self, modseq: int) -> list[int]:
        """UIDs expunged since ``modseq`` (QRESYNC), ascending."""
        ...

    def idle_wait(self, timeout: float) -> IdleOutcome:
        """Block until the server announces a change or ``timeout`` seconds pass.

        Always leaves IDLE before returning; CONNECTION_LOST if the server hangs up.
        """
        ...


class FolderFiling(Protocol):
    """Filing a message: the Sent folder found, and a copy appended to it.

    Raises ``SyncError`` as ``MailFolderSource`` does; QUOTA when the server is full.
    """

    def append(
        self,
        folder: str,
        raw: bytes,
        flags: Sequence[str] = ("\\Seen",),
        when: datetime | None = None,
    ) -> int | None:
        """Store ``raw`` in ``folder``; the new UID with UIDPLUS (RFC 4315), else None."""
        ...

    def find_sent_folder(self) -> str:
        """The Sent folder: SPECIAL-USE ``\\Sent`` (RFC 6154), else a usual name, else a
        new "Sent" in the personal namespace."""
        ...


class MailFolderWriter(FolderFiling, Protocol):
    """Changing an IMAP-like store: the Sent copy, folder-level tracking, clean-up.

    Raises ``SyncError`` as ``MailFolderSource`` does; QUOTA when the server is full.
    """

    @property
    def supports_move(self) -> bool:
        """MOVE is atomic (RFC 6851); without it ``move`` is COPY, STORE and EXPUNGE."""
        ...

    @property
    def supports_uidplus(self) -> bool:
        """``append`` can return the new UID, and expunges touch only the given UIDs."""
        ...

    def ensure_folder(self, name: str) -> None:
        """Create ``name`` unless it exists (and subscribe it)."""
        ...

    def move(self, uids: Iterable[int], folder: str) -> None:
        """Move messages of the selected folder into ``folder``."""
        ...

    def delete(self, uids: Iterable[int]) -> None:
        """Expunge messages of the selected folder."""
        ...


class MessageDrop(Protocol):
    """A POP3-like maildrop: numbered messages with stable UIDLs, one session at a time.

    Message numbers are valid only within the session; UIDLs identify messages across
    sessions. Deletions take effect only when the session ends with QUIT (RFC 1939 §6):
    a session that breaks off keeps every message. Every method raises ``SyncError``.
    """

    @property
    def supports_uidl(self) -> bool:
        """UIDL is offered (or the server has no CAPA and it must be tried)."""
        ...

    def uidl(self) -> list[tuple[int, str]]:
        """``[(1, "000000016b06b12f"), ...]``; NOT_SUPPORTED without UIDL."""
        ...

    def list_sizes(self) -> dict[int, int]:
        """``{message number: size in octets}`` from LIST."""
        ...

    def retrieve(self, number: int, *, max_size: int | None) -> bytes | None:
        """The message's bytes, or None when it is larger than ``max_size``."""
        ...

    def delete(self, number: int) -> None:
        """Mark for deletion; committed only by QUIT."""
        ...

    def header(self, number: int, *, max_size: int) -> bytes | None:
        """The header section (``TOP n 0``, RFC 1939 §7; the whole message where the
        server has no TOP), or None when larger than ``max_size``."""
        ...


class MessageSender(Protocol):
    """An SMTP-like submission session, kept open for a batch of messages.

    ``send`` raises ``SyncError`` when nothing was accepted: transient codes
    (SERVER_UNAVAILABLE, THROTTLED, ...) for 4xx replies, permanent ones
    (RECIPIENT_REJECTED, MESSAGE_TOO_LARGE, QUOTA, ...) for 5xx, with the server's text in
    the detail. Some recipients refused but others accepted is a result, not an error.
    """

    @property
    def max_message_size(self) -> int | None:
        """The server's SIZE limit in octets (RFC 1870), or None when it states none."""
        ...

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> SendResult:
        """One transaction: MAIL FROM, RCPT TO for each recipient, DATA."""
        ...

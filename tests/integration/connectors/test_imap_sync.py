"""ImapConnection's sync operations against the real Dovecot: listing, fetching, CONDSTORE,
QRESYNC, UIDVALIDITY, APPEND/Sent, MOVE and IDLE.

Messages are delivered over LMTP (``dovecot.deliver``), which prepends Return-Path,
Delivered-To and Received: the bytes fetched end with exactly the bytes delivered.
Changes made "elsewhere" come from doveadm or a second IMAP session, as a mail client
would make them.
"""

from __future__ import annotations

import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest

from crmsync.connectors import imap_fetch
from crmsync.connectors.base import IdleOutcome
from crmsync.connectors.endpoints import Credentials, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.core.errors import ErrorCode, SyncError
from tests.integration.connectors.conftest import Server
from tests.servers import DovecotServer, MailUser

pytestmark = pytest.mark.integration

Opener = Callable[..., ImapConnection]


def message(subject: str, *, body: bytes = b"body\r\n", message_id: str | None = None) -> bytes:
    mid = message_id or f"<{secrets.token_hex(6)}@crmsync.test>"
    head = f"Message-ID: {mid}\r\nSubject: {subject}\r\nFrom: a@external.test\r\n\r\n"
    return head.encode() + body


@pytest.fixture
def open_imap(servers: Callable[[str], Server], credentials: Credentials) -> Iterator[Opener]:
    """``open_imap(security=..., ignore_capabilities=...)``; all closed after the test."""
    opened: list[ImapConnection] = []

    def opener(
        security: Security = Security.IMPLICIT_TLS, ignore_capabilities: tuple[str, ...] = ()
    ) -> ImapConnection:
        endpoint = servers("imap").endpoint(security)
        connection = ImapConnection.open(
            endpoint, credentials, ignore_capabilities=ignore_capabilities
        )
        opened.append(connection)
        return connection

    yield opener
    for connection in opened:
        connection.logout()


@pytest.fixture
def imap(open_imap: Opener) -> ImapConnection:
    return open_imap()


# -- listing ------------------------------------------------------------------------------


def test_uids_after_cursor_and_the_n_star_quirk(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, message(f"m{n}"))
    status = imap.select_folder("INBOX")
    assert status.uidnext == 4
    assert imap.all_uids() == [1, 2, 3]
    assert imap.uids_after(0) == [1, 2, 3]
    assert imap.uids_after(1) == [2, 3]
    # "UID SEARCH UID 4:*" answers [3] (the highest UID): filtered out.
    assert imap.client.search(["UID", "4:*"]) == [3]
    assert imap.uids_after(3) == []
    assert imap.uids_after(50) == []
    dovecot.deliver(mail_user, message("m3"))
    # Dovecot answers from the view the previous command left; uids_after sends NOOP first.
    assert imap.client.search(["UID", "4:*"]) == [3]
    assert imap.uids_after(3) == [4]


def test_empty_folder(imap: ImapConnection) -> None:
    imap.select_folder("INBOX")
    assert imap.all_uids() == []
    assert imap.uids_after(0) == []
    assert imap.fetch_meta([1, 2]) == []
    assert list(imap.fetch_raw([1], max_size=None)) == []


# -- fetching -----------------------------------------------------------------------------


def test_fetch_meta_typed_records(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    dovecot.deliver(mail_user, message("a", message_id="<meta-a@crmsync.test>"))
    dovecot.deliver(mail_user, b"Subject: no id\r\n\r\nbody\r\n")
    status = imap.select_folder("INBOX")
    imap.client.add_flags([2], [b"\\Flagged", b"$Tracked"])
    first, second = imap.fetch_meta([2, 1, 99])  # unknown UIDs are left out; sorted
    assert first.uid == 1
    assert first.message_id == "<meta-a@crmsync.test>"
    assert first.flags == frozenset()  # \Recent is not reported
    assert isinstance(first.internaldate, datetime)
    assert first.internaldate.tzinfo is not None
    assert abs(first.internaldate - datetime.now(UTC)).total_seconds() < 300
    assert isinstance(first.modseq, int)
    assert status.highestmodseq is not None
    assert first.modseq <= status.highestmodseq
    raw = next(imap.fetch_raw([1], max_size=None)).raw
    assert raw is not None
    assert first.size == len(raw)
    assert second.message_id is None
    assert second.flags == frozenset({"\\Flagged", "$Tracked"})


def test_fetch_raw_exact_bytes_and_no_seen(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    body = (
        b"..starts with a dot\r\n.\r\n"  # dot-stuffed on the wire, not in the message
        + b"L" * 10_000
        + b"\r\n"
        + "8-bit: Grüße\r\n".encode()
    )
    delivered = message("exact", body=body)
    dovecot.deliver(mail_user, delivered)
    imap.select_folder("INBOX")  # read-write: only BODY.PEEK keeps \Seen off
    (fetched,) = list(imap.fetch_raw([1], max_size=None))
    assert fetched.uid == 1
    assert fetched.too_large is False
    assert fetched.raw is not None
    assert fetched.raw.endswith(delivered)  # LMTP only prepended trace headers
    assert fetched.raw.startswith(b"Return-Path: <sender@external.test>\r\n")
    assert fetched.size == len(fetched.raw)
    (meta,) = imap.fetch_meta([1])
    assert "\\Seen" not in meta.flags
    flags = imap.client.get_flags([1])[1]
    assert b"\\Seen" not in flags


def test_fetch_raw_size_cap_and_order(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    dovecot.deliver(mail_user, message("small 1"))
    dovecot.deliver(mail_user, message("big", body=b"x" * 50_000 + b"\r\n"))
    dovecot.deliver(mail_user, message("small 3"))
    imap.select_folder("INBOX", readonly=True)
    results = list(imap.fetch_raw([3, 2, 1], max_size=10_000))
    assert [r.uid for r in results] == [1, 2, 3]
    small1, big, small3 = results
    assert big.raw is None
    assert big.too_large is True
    assert big.size > 50_000
    assert small1.raw is not None
    assert b"small 1" in small1.raw
    assert small3.raw is not None
    assert b"small 3" in small3.raw
    unlimited = [r.raw for r in imap.fetch_raw([2], max_size=None)]
    assert len(unlimited) == 1
    assert unlimited[0] is not None
    assert len(unlimited[0]) == big.size


def test_fetch_raw_in_byte_sized_batches(
    dovecot: DovecotServer,
    mail_user: MailUser,
    imap: ImapConnection,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    delivered = [message(f"batch {n}", body=b"y" * (300 * n) + b"\r\n") for n in range(1, 7)]
    for raw in delivered:
        dovecot.deliver(mail_user, raw)
    imap.select_folder("INBOX", readonly=True)
    monkeypatch.setattr(imap_fetch, "RAW_BATCH_BYTES", 1_500)
    calls: list[list[int]] = []
    fetch = imap.client.fetch

    def counting_fetch(uids: list[int], items: list[str]) -> object:
        if items == ["BODY.PEEK[]"]:
            calls.append(list(uids))
        return fetch(uids, items)

    monkeypatch.setattr(imap.client, "fetch", counting_fetch)
    results = list(imap.fetch_raw(range(1, 7), max_size=2_000))
    assert [r.uid for r in results] == [1, 2, 3, 4, 5, 6]
    assert [r.too_large for r in results] == [False, False, False, False, False, True]
    assert len(calls) > 1  # several FETCHes, none over the byte budget but a lone message
    assert sorted(uid for batch in calls for uid in batch) == [1, 2, 3, 4, 5]
    for result, raw in zip(results[:5], delivered, strict=False):
        assert result.raw is not None
        assert result.raw.endswith(raw)


# -- CONDSTORE / QRESYNC ------------------------------------------------------------------


def test_changed_since_after_a_flag_change_by_doveadm(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, message(f"m{n}"))
    assert imap.supports_condstore
    before = imap.select_folder("INBOX", readonly=True).highestmodseq
    assert before is not None
    assert imap.changed_since(before) == []
    dovecot.doveadm(
        "flags", "add", "-u", mail_user.login, "\\Flagged", "mailbox", "INBOX", "uid", "2"
    )
    changes = imap.changed_since(before)
    assert [uid for uid, _ in changes] == [2]
    assert changes[0][1] > before
    after = imap.select_folder("INBOX", readonly=True).highestmodseq
    assert after == changes[0][1]
    dovecot.deliver(mail_user, message("new"))
    assert [uid for uid, _ in imap.changed_since(after)] == [4]  # new messages count too


def test_qresync_select_reports_vanished_and_changed(
    dovecot: DovecotServer, mail_user: MailUser, open_imap: Opener
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, message(f"m{n}"))
    imap = open_imap()
    assert imap.supports_qresync
    status = imap.select_folder("INBOX")
    assert status.highestmodseq is not None
    imap.client.unselect_folder()

    other = open_imap(Security.STARTTLS)  # another client changes the folder meanwhile
    other.select_folder("INBOX")
    other.client.add_flags([1], [b"\\Answered"])
    other.delete([3])

    result = imap.select_qresync("INBOX", status.uidvalidity, status.highestmodseq, "1:3")
    assert result.status.uidvalidity == status.uidvalidity
    assert result.status.exists == 2
    assert result.vanished == [3]
    assert [uid for uid, _ in result.changed] == [1]
    assert result.changed[0][1] > status.highestmodseq
    assert result.status.highestmodseq is not None
    assert result.status.highestmodseq >= result.changed[0][1]
    # The folder is selected: ordinary commands work, and VANISHED is also available
    # without re-selecting.
    assert imap.all_uids() == [1, 2]
    assert imap.vanished_since(status.highestmodseq) == [3]
    assert imap.vanished_since(result.status.highestmodseq) == []


def test_qresync_with_a_stale_uidvalidity_reports_nothing(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    dovecot.deliver(mail_user, message("m"))
    status = imap.select_folder("INBOX")
    result = imap.select_qresync("INBOX", status.uidvalidity - 1, 1)
    assert result.status == status
    assert result.vanished == []
    assert result.changed == []


def test_qresync_on_a_missing_folder(imap: ImapConnection) -> None:
    with pytest.raises(SyncError) as caught:
        imap.select_qresync("No/Such", 1, 1)
    assert caught.value.code is ErrorCode.FOLDER_MISSING
    assert imap.select_folder("INBOX").exists == 0  # still usable


def test_without_condstore_and_qresync_nothing_is_sent(
    dovecot: DovecotServer, mail_user: MailUser, open_imap: Opener
) -> None:
    dovecot.deliver(mail_user, message("m"))
    imap = open_imap(ignore_capabilities=("CONDSTORE", "QRESYNC"))
    assert not imap.supports_condstore
    assert not imap.supports_qresync
    status = imap.select_folder("INBOX")
    assert status.highestmodseq is None  # CONDSTORE was not ENABLEd
    (meta,) = imap.fetch_meta([1])
    assert meta.modseq is None
    for call in (
        lambda: imap.changed_since(1),
        lambda: imap.vanished_since(1),
        lambda: imap.select_qresync("INBOX", status.uidvalidity, 1),
    ):
        with pytest.raises(SyncError) as caught:
            call()
        assert caught.value.code is ErrorCode.NOT_SUPPORTED


def test_uidvalidity_change_is_visible(
    dovecot: DovecotServer, mail_user: MailUser, imap: ImapConnection
) -> None:
    """Two ways to give a Dovecot folder a new UIDVALIDITY, as a server rebuild would:

    - ``doveadm mailbox update --uid-validity N`` sets it directly (works for INBOX,
      which cannot be deleted); the messages stay, their UIDs now belong to a new
      generation;
    - deleting and re-creating a folder gives it a fresh UIDVALIDITY (Dovecot hands out
      increasing values, so it differs even within the same second).
    """
    dovecot.deliver(mail_user, message("m"))
    before = imap.select_folder("INBOX")
    new = before.uidvalidity + 1000
    dovecot.doveadm("mailbox", "update", "--uid-validity", str(new), "-u", mail_user.login, "INBOX")
    imap.client.unselect_folder()
    after = imap.select_folder("INBOX")
    assert after.uidvalidity == new
    assert after.exists == 1

    imap.ensure_folder("Project")
    imap.append("Project", message("p"))
    first = imap.select_folder("Project")
    imap.client.unselect_folder()
    dovecot.doveadm("mailbox", "delete", "-u", mail_user.login, "Project")
    dovecot.doveadm("mailbox", "create", "-u", mail_user.login, "Project")
    second = imap.select_folder("Project")
    assert second.uidvalidity != first.uidvalidity
    assert second.exists == 0


# -- writing ------------------------------------------------------------------------------


def test_append_to_sent_returns_uid_and_is_found_by_message_id(
    imap: ImapConnection,
) -> None:
    sent = imap.find_sent_folder()  # the fixture's Dovecot has no \Sent: "Sent" is created
    assert sent == "Sent"
    assert imap.find_sent_folder() == "Sent"
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    mid = f"<sent-{secrets.token_hex(4)}@crmsync.test>"
    raw = message("sent copy", message_id=mid)
    uid = imap.append(sent, raw, when=when)
    assert isinstance(uid, int)
    second = imap.append(sent, message("another"))
    assert second == uid + 1
    imap.select_folder(sent, readonly=True)
    assert imap.search_message_id(mid) == [uid]
    assert imap.search_message_id(mid.strip("<>")) == [uid]  # brackets optional
    assert imap.search_message_id("<nothing@crmsync.test>") == []
    assert imap.search_message_id(mid[:-3] + ">") == []  # a prefix is not a match
    (meta,) = imap.fetch_meta([uid])
    assert meta.flags == frozenset({"\\Seen"})
    assert meta.internaldate == when
    (copy,) = list(imap.fetch_raw([uid], max_size=None))
    assert copy.raw == raw  # APPEND stores the bytes as given


def test_find_sent_folder_prefers_existing_names(imap: ImapConnection) -> None:
    imap.ensure_folder("Sent Items")
    imap.ensure_folder("Sent Items")  # idempotent
    assert imap.find_sent_folder() == "Sent Items"
    names = [name for _, _, name in imap.client.list_folders()]
    assert "Sent" not in names


def test_append_without_uidplus_and_to_a_missing_folder(open_imap: Opener) -> None:
    imap = open_imap(ignore_capabilities=("UIDPLUS",))
    assert imap.append("INBOX", message("m")) is None
    with pytest.raises(SyncError) as caught:
        imap.append("No Such Folder", message("m"))
    assert caught.value.code is ErrorCode.FOLDER_MISSING
    assert "TRYCREATE" in caught.value.detail


@pytest.mark.parametrize(
    "ignored", [(), ("MOVE",), ("MOVE", "UIDPLUS")], ids=["move", "copy", "copy-expunge"]
)
def test_move_and_delete(
    dovecot: DovecotServer, mail_user: MailUser, open_imap: Opener, ignored: tuple[str, ...]
) -> None:
    for n in range(4):
        dovecot.deliver(mail_user, message(f"m{n}", message_id=f"<move-{n}@crmsync.test>"))
    imap = open_imap(ignore_capabilities=ignored)
    assert imap.supports_move is ("MOVE" not in ignored)
    imap.ensure_folder("Archive")
    imap.select_folder("INBOX")
    imap.move([1, 3], "Archive")
    assert imap.all_uids() == [2, 4]
    imap.delete([4])
    assert imap.all_uids() == [2]
    imap.select_folder("Archive")
    moved = imap.fetch_meta(imap.all_uids())
    assert sorted(m.message_id or "" for m in moved) == [
        "<move-0@crmsync.test>",
        "<move-2@crmsync.test>",
    ]
    with pytest.raises(SyncError) as caught:
        imap.move([1], "No Such Folder")
    assert caught.value.code is ErrorCode.FOLDER_MISSING


# -- IDLE ---------------------------------------------------------------------------------


class Idler(threading.Thread):
    """Runs ``idle_wait`` on its own thread; ``outcome``/``error`` and ``ended`` after."""

    def __init__(self, imap: ImapConnection, timeout: float) -> None:
        super().__init__(daemon=True)
        self.imap, self.timeout = imap, timeout
        self.outcome: IdleOutcome | None = None
        self.error: SyncError | None = None
        self.ended = 0.0

    def run(self) -> None:
        try:
            self.outcome = self.imap.idle_wait(self.timeout)
        except SyncError as exc:
            self.error = exc
        self.ended = time.monotonic()


def _idle_in_background(imap: ImapConnection, timeout: float) -> Idler:
    idler = Idler(imap, timeout)
    idler.start()
    time.sleep(0.3)  # let IDLE be sent and acknowledged
    return idler


@pytest.mark.parametrize("security", [Security.IMPLICIT_TLS, Security.PLAIN])
def test_idle_wakes_on_delivery(
    dovecot: DovecotServer, mail_user: MailUser, open_imap: Opener, security: Security
) -> None:
    imap = open_imap(security)
    imap.select_folder("INBOX", readonly=True)
    idler = _idle_in_background(imap, 20)
    delivered = time.monotonic()
    dovecot.deliver(mail_user, message("wake up"))
    idler.join(10)
    assert idler.error is None
    assert idler.outcome == IdleOutcome(changed=True)
    assert idler.ended - delivered < 1.5  # Dovecot announces new mail within ~0.5 s
    assert imap.uids_after(0) == [1]  # IDLE was left cleanly: commands work


def test_idle_wakes_on_a_flag_change_and_an_expunge(
    dovecot: DovecotServer, mail_user: MailUser, open_imap: Opener
) -> None:
    dovecot.deliver(mail_user, message("m1"))
    dovecot.deliver(mail_user, message("m2"))
    imap, other = open_imap(), open_imap(Security.STARTTLS)
    imap.select_folder("INBOX", readonly=True)
    other.select_folder("INBOX")
    for change in (
        lambda: other.client.add_flags([1], [b"\\Flagged"]),
        lambda: other.delete([2]),
    ):
        idler = _idle_in_background(imap, 20)
        change()
        idler.join(10)
        assert idler.outcome == IdleOutcome(changed=True)


@pytest.mark.parametrize("security", [Security.IMPLICIT_TLS, Security.PLAIN])
def test_interrupt_ends_an_idle_from_another_thread_at_once(
    open_imap: Opener, security: Security
) -> None:
    imap = open_imap(security)
    imap.select_folder("INBOX", readonly=True)
    idler = _idle_in_background(imap, 60)
    interrupted = time.monotonic()
    imap.interrupt()
    idler.join(5)
    assert not idler.is_alive()
    assert idler.ended - interrupted < 1.0
    assert idler.error is not None
    assert idler.error.code is ErrorCode.CONNECTION_LOST


def test_idle_times_out_cleanly(imap: ImapConnection) -> None:
    imap.select_folder("INBOX", readonly=True)
    for _ in range(2):
        started = time.monotonic()
        assert imap.idle_wait(0.7) == IdleOutcome(changed=False)
        assert 0.6 < time.monotonic() - started < 3
    assert imap.all_uids() == []  # DONE was sent and answered


def _imap_pids(dovecot: DovecotServer, user: MailUser) -> list[int]:
    listing = dovecot.doveadm("-f", "tab", "who", "-1", user.login).stdout.splitlines()
    rows = [line.split("\t") for line in listing[1:]]
    return [int(row[2]) for row in rows if len(row) > 2 and row[1] == "imap"]


@pytest.mark.parametrize("security", [Security.IMPLICIT_TLS, Security.PLAIN])
@pytest.mark.parametrize("how", ["kick", "kill"])
def test_idle_connection_dropped(
    dovecot: DovecotServer,
    mail_user: MailUser,
    open_imap: Opener,
    security: Security,
    how: str,
) -> None:
    """``doveadm kick`` makes Dovecot say BYE; SIGKILL of the imap process just closes."""
    imap = open_imap(security)
    imap.select_folder("INBOX", readonly=True)
    idler = _idle_in_background(imap, 20)
    if how == "kick":
        dovecot.doveadm("kick", mail_user.login)
    else:
        for pid in _imap_pids(dovecot, mail_user):
            os.kill(pid, signal.SIGKILL)
    idler.join(10)
    assert not idler.is_alive()
    assert idler.outcome is None
    assert idler.error is not None
    assert idler.error.code is ErrorCode.CONNECTION_LOST
    assert idler.error.transient
    if how == "kick":
        assert "BYE" in idler.error.detail or "shutting down" in idler.error.detail
    with pytest.raises(SyncError):
        imap.all_uids()  # the connection is closed, not half-usable


def test_idle_not_supported(open_imap: Opener) -> None:
    imap = open_imap(ignore_capabilities=("IDLE",))
    imap.select_folder("INBOX", readonly=True)
    with pytest.raises(SyncError) as caught:
        imap.idle_wait(1)
    assert caught.value.code is ErrorCode.NOT_SUPPORTED

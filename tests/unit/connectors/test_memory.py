"""The in-memory mail server keeps the promises the engines rely on from real servers.

What the state-machine tests of the engines learn is only worth as much as this server's
faithfulness: UIDs that never come back, MODSEQs that rise, POP3 numbers that move while
UIDLs stay, deletions only at QUIT, a dropped connection exactly where it was asked for.
"""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.memory import MemoryMailServer
from crmsync.connectors.quirks import GENERIC, MINIMAL, ImapQuirks
from crmsync.core.errors import ErrorCode, SyncError

ENDPOINT = Endpoint("mail.example.test", 993, Security.IMPLICIT_TLS)
ANN = Credentials("ann", "secret")


def message(number: int, body: str = "Hello") -> bytes:
    return (
        f"From: c{number}@example.test\r\nSubject: Order {number}\r\n"
        f"Message-ID: <m{number}@example.test>\r\n\r\n{body}\r\n"
    ).encode()


def server_with_ann(quirks: ImapQuirks = GENERIC) -> MemoryMailServer:
    server = MemoryMailServer(quirks=quirks)
    server.add_account("ann", "secret")
    return server


@given(st.lists(st.one_of(st.just("deliver"), st.integers(0, 20)), max_size=40))
def test_uids_only_grow_and_are_never_reused(steps: list[str | int]) -> None:
    inbox = server_with_ann().accounts["ann"].inbox
    handed_out: list[int] = []
    for step in steps:
        if step == "deliver":
            handed_out.append(inbox.deliver(message(len(handed_out))))
        else:
            inbox.expunge([step])
    assert handed_out == sorted(set(handed_out))
    assert inbox.uidnext == (handed_out[-1] + 1 if handed_out else 1)
    assert set(inbox.uids()) <= set(handed_out)


def test_a_folder_reads_as_imap_reports_it() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    uids = [inbox.deliver(message(n), flags=["\\Seen"] if n == 1 else []) for n in range(1, 4)]
    inbox.expunge([uids[2]])
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        status = imap.select_folder("INBOX", readonly=True)
        assert (status.uidvalidity, status.uidnext, status.exists) == (inbox.uidvalidity, 4, 2)
        assert imap.uids_after(0) == [1, 2]
        assert imap.uids_after(2) == []
        assert imap.all_uids() == [1, 2]
        first, second = imap.fetch_meta([1, 2, 3])
        assert first.flags == frozenset({"\\Seen"})
        assert second.flags == frozenset()
        assert first.message_id == "<m1@example.test>"
        assert first.size == len(message(1))
        assert imap.search_message_id("m2@example.test") == [2]
        fetched = list(imap.fetch_raw([1, 2, 3], max_size=len(message(1)) - 1))
        assert [(m.uid, m.raw, m.too_large) for m in fetched] == [
            (1, None, True),
            (2, None, True),
        ]
        assert [m.raw for m in imap.fetch_raw([2], max_size=None)] == [message(2)]
        with pytest.raises(SyncError) as missing:
            imap.select_folder("Archive")
        assert missing.value.code is ErrorCode.FOLDER_MISSING


def test_a_message_expunged_while_its_batch_streams_is_left_out() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    for n in range(3):
        inbox.deliver(message(n))
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        imap.select_folder("INBOX")
        stream = imap.fetch_raw([1, 2, 3], max_size=None)
        assert next(stream).uid == 1
        inbox.expunge([2])
        assert [m.uid for m in stream] == [3]


def test_a_new_uidvalidity_numbers_every_message_again() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    for n in range(1, 5):
        inbox.deliver(message(n))
    inbox.expunge([1, 3])
    old = inbox.uidvalidity
    assert inbox.renumber() != old
    assert inbox.uids() == [1, 2]
    assert [inbox.raw(uid) for uid in (1, 2)] == [message(2), message(4)]
    assert inbox.deliver(message(5)) == 3


def test_condstore_and_qresync_report_changes_since_a_modseq() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    for n in range(1, 4):
        inbox.deliver(message(n))
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        before = imap.select_folder("INBOX")
        assert before.highestmodseq is not None
        inbox.set_flags(2, ["\\Flagged"])
        inbox.expunge([3])
        result = imap.select_qresync("INBOX", before.uidvalidity, before.highestmodseq)
        assert result.status.highestmodseq is not None
        assert result.status.highestmodseq > before.highestmodseq
        assert [uid for uid, _ in result.changed] == [2]
        assert result.vanished == [3]
        assert imap.changed_since(before.highestmodseq) == result.changed
        assert imap.vanished_since(before.highestmodseq) == [3]
        bounded = imap.select_qresync("INBOX", before.uidvalidity, 0, known_uids="1:2")
        assert bounded.vanished == []
        stale = imap.select_qresync("INBOX", before.uidvalidity - 1, 0)
        assert (stale.changed, stale.vanished) == ([], [])


def test_without_condstore_no_modseq_is_reported_and_asking_is_refused() -> None:
    server = server_with_ann()
    server.accounts["ann"].inbox.deliver(message(1))
    with server.open_imap(ENDPOINT, ANN, ("CONDSTORE", "QRESYNC")) as imap:
        assert not imap.supports_condstore
        assert not imap.supports_qresync
        assert imap.select_folder("INBOX").highestmodseq is None
        assert imap.fetch_meta([1])[0].modseq is None
        with pytest.raises(SyncError) as refused:
            imap.changed_since(0)
        assert refused.value.code is ErrorCode.NOT_SUPPORTED


def test_a_server_without_uidnext_in_select_reports_the_highest_uid_plus_one() -> None:
    server = server_with_ann(quirks=MINIMAL)
    inbox = server.accounts["ann"].inbox
    for n in range(1, 4):
        inbox.deliver(message(n))
    inbox.expunge([3])
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        assert not imap.supports_condstore
        assert not imap.supports_idle
        assert imap.select_folder("INBOX").uidnext == 3  # the true UIDNEXT is 4
    assert inbox.deliver(message(4)) == 4


def test_pop3_numbers_move_between_sessions_while_uidls_stay() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    for n in range(1, 4):
        inbox.deliver(message(n))
    with server.open_pop3(ENDPOINT, ANN) as pop:
        first = dict(pop.uidl())
        assert sorted(first) == [1, 2, 3]
        assert pop.list_sizes() == {n: len(message(n)) for n in (1, 2, 3)}
        pop.delete(1)
        assert [number for number, _ in pop.uidl()] == [2, 3]  # numbers hold in a session
        assert pop.retrieve(2, max_size=None) == message(2)
        assert pop.retrieve(3, max_size=10) is None
        assert pop.header(3, max_size=1000) == message(3).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    with server.open_pop3(ENDPOINT, ANN) as pop:
        assert pop.uidl() == [(1, first[2]), (2, first[3])]
    inbox.renumber()
    with server.open_pop3(ENDPOINT, ANN) as pop:
        assert not {uidl for _, uidl in pop.uidl()} & set(first.values())


def test_pop3_deletes_only_at_quit() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    inbox.deliver(message(1))
    pop = server.open_pop3(ENDPOINT, ANN)
    pop.delete(1)
    pop.__exit__(RuntimeError, RuntimeError("the engine stopped before QUIT"), None)
    assert inbox.uids() == [1]
    server.fail_on_call(3)  # open, delete, then QUIT is lost with the connection
    with server.open_pop3(ENDPOINT, ANN) as pop:
        pop.delete(1)
    assert inbox.uids() == [1]
    with server.open_pop3(ENDPOINT, ANN) as pop:
        pop.delete(1)
        with pytest.raises(SyncError):
            pop.retrieve(1, max_size=None)  # -ERR: already marked
    assert inbox.uids() == []


def test_the_nth_call_drops_its_connection_and_only_it() -> None:
    server = server_with_ann()
    server.accounts["ann"].inbox.deliver(message(1))
    server.fail_on_call(2)
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        with pytest.raises(SyncError) as dropped:
            imap.select_folder("INBOX")
        assert dropped.value.code is ErrorCode.CONNECTION_LOST
        with pytest.raises(SyncError) as still:
            imap.all_uids()
        assert still.value.code is ErrorCode.CONNECTION_LOST
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        imap.select_folder("INBOX")
        server.fail_on_call(2, KeyboardInterrupt())
        stream = imap.fetch_raw([1], max_size=None)  # call 1: the sizes
        with pytest.raises(KeyboardInterrupt):
            next(stream)  # call 2: the body
    assert server.calls["open_imap"] == 2


def test_a_wrong_password_is_refused() -> None:
    server = server_with_ann()
    with pytest.raises(SyncError) as refused:
        server.open_imap(ENDPOINT, Credentials("ann", "wrong"), ())
    assert refused.value.code is ErrorCode.AUTH_FAILED


def test_idle_wakes_on_a_delivery_and_times_out_without_one() -> None:
    server = server_with_ann()
    inbox = server.accounts["ann"].inbox
    with server.open_imap(ENDPOINT, ANN, ()) as imap:
        imap.select_folder("INBOX")
        assert imap.idle_wait(0.01).changed is False
        threading.Timer(0.05, inbox.deliver, [message(1)]).start()
        assert imap.idle_wait(5).changed is True

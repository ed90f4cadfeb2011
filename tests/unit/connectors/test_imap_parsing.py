"""Pure parsing behind the IMAP (imap_parse) and POP3 (read_multiline) connectors.

Inputs are byte literals as Dovecot 2.3 sent them (see the integration tests for the
live exchange); no server is needed.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from imapclient.response_parser import parse_fetch_response

from crmsync.connectors.base import FolderStatus
from crmsync.connectors.imap_parse import (
    IdleEvent,
    appended_uid,
    batched,
    batches_by_size,
    changes_from_fetch,
    choose_sent_folder,
    folder_status,
    idle_event,
    message_id_from_header,
    meta_from_fetch,
    normalise_message_id,
    parse_uid_set,
    uid_set,
    untagged_status,
    vanished_uids,
)
from crmsync.connectors.pop3 import parse_listing, read_multiline

# -- UID sets and batches -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("uids", "expected"),
    [
        ([], ""),
        ([5], "5"),
        ([3, 1, 2], "1:3"),
        ([1, 2, 3, 7, 9, 10], "1:3,7,9:10"),
        ([4, 4, 5], "4:5"),
    ],
)
def test_uid_set_compresses_ranges(uids: list[int], expected: str) -> None:
    assert uid_set(uids) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"3", [3]),
        (b"41,43:45", [41, 43, 44, 45]),
        (b"45:43", [43, 44, 45]),
        ("1:2,2:3", [1, 2, 3]),
        (b" 7 ", [7]),
    ],
)
def test_parse_uid_set(text: bytes | str, expected: list[int]) -> None:
    assert parse_uid_set(text) == expected


@pytest.mark.parametrize("text", [b"1:*", b"x", b"0", b"1:2:3"])
def test_parse_uid_set_rejects_garbage(text: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the connector maps any ValueError
        parse_uid_set(text)


def test_parse_uid_set_refuses_huge_sets() -> None:
    with pytest.raises(ValueError, match="unusable"):
        parse_uid_set(b"1:100", limit=50)


def test_uid_set_round_trip() -> None:
    uids = [1, 2, 3, 10, 11, 20, 4000]
    assert parse_uid_set(uid_set(uids)) == uids


def test_batched() -> None:
    assert list(batched([1, 2, 3, 4, 5], 2)) == [[1, 2], [3, 4], [5]]
    assert list(batched([], 3)) == []


def test_batches_by_size_keeps_order_and_isolates_big_messages() -> None:
    sizes = [(1, 5), (2, 5), (3, 20), (4, 3), (5, 8)]
    assert list(batches_by_size(sizes, 10)) == [[1, 2], [3], [4], [5]]
    assert list(batches_by_size(sizes, 100)) == [[1, 2, 3, 4, 5]]
    assert list(batches_by_size([], 10)) == []


# -- headers and FETCH items --------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"Message-ID: <m0@x>\r\n\r\n", "<m0@x>"),
        (b"message-id:   <m1@x.example>  \r\n\r\n", "<m1@x.example>"),
        (b"Message-ID:\r\n <folded@x>\r\n\r\n", "<folded@x>"),
        (b"Message-Id: <a@b> (comment)\r\n\r\n", "<a@b>"),
        (b"Message-ID: no-brackets@x\r\n\r\n", "no-brackets@x"),
        (b"Message-ID: <first@x>\r\nMessage-ID: <second@x>\r\n\r\n", "<first@x>"),
        (b"\r\n", None),
        (b"", None),
        (None, None),
        (b"Message-ID:\r\n\r\n", None),
    ],
)
def test_message_id_from_header(block: bytes | None, expected: str | None) -> None:
    assert message_id_from_header(block) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("a@b", "<a@b>"), (" <a@b> ", "<a@b>"), ("<a@b>", "<a@b>")],
)
def test_normalise_message_id(value: str, expected: str) -> None:
    assert normalise_message_id(value) == expected


def test_meta_from_fetch_as_imapclient_parses_dovecot() -> None:
    line = (
        b"1 (UID 7 RFC822.SIZE 303 FLAGS (\\Seen \\Recent $Tracked) "
        b'INTERNALDATE "25-Nov-2026 09:55:23 +0000" MODSEQ (4) '
        b"BODY[HEADER.FIELDS (MESSAGE-ID)] {22}"
    )
    data = [(line, b"Message-ID: <m0@x>\r\n\r\n"), b")"]
    parsed = parse_fetch_response(data, False, True)
    meta = meta_from_fetch(7, parsed[7])
    assert meta is not None
    assert meta.uid == 7
    assert meta.size == 303
    assert meta.flags == frozenset({"\\Seen", "$Tracked"})  # \Recent is per session: dropped
    assert meta.internaldate == datetime(2026, 11, 25, 9, 55, 23, tzinfo=UTC)
    assert meta.message_id == "<m0@x>"
    assert meta.modseq == 4


def test_meta_from_fetch_without_optional_items() -> None:
    meta = meta_from_fetch(3, {b"RFC822.SIZE": 10, b"FLAGS": ()})
    assert meta is not None
    assert (meta.internaldate, meta.message_id, meta.modseq) == (None, None, None)
    assert meta.flags == frozenset()


def test_meta_from_fetch_without_size_is_none() -> None:
    assert meta_from_fetch(3, {b"FLAGS": ()}) is None


def test_changes_from_fetch_skips_fetches_without_uid_or_modseq() -> None:
    data = [
        b"1 (UID 1 FLAGS () MODSEQ (4))",
        b"2 (UID 2 FLAGS (\\Flagged) MODSEQ (5))",
        b"3 (FLAGS (\\Seen))",  # unsolicited, no UID: not attributable
        b"4 (UID 9 FLAGS ())",  # no MODSEQ
    ]
    parsed = parse_fetch_response(data, False, False)  # keyed by sequence, UID kept
    assert changes_from_fetch(parsed) == [(1, 4), (2, 5)]


def test_changes_from_fetch_of_nothing() -> None:
    assert changes_from_fetch(parse_fetch_response([None], False, False)) == []


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([b"(EARLIER) 3"], [3]),
        ([b"(EARLIER) 41,43:44", b"50"], [41, 43, 44, 50]),
        ([b"(earlier) 2:1"], [1, 2]),
        ([], []),
    ],
)
def test_vanished_uids(data: list[bytes], expected: list[int]) -> None:
    assert vanished_uids(data) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (b"[APPENDUID 1795600688 1] Append completed (0.003 + 0.001 + 0.002 secs).", 1),
        (b"[appenduid 1 12] ok", 12),
        (b"Append completed.", None),
        (None, None),
    ],
)
def test_appended_uid(response: bytes | None, expected: int | None) -> None:
    assert appended_uid(response) == expected


def test_folder_status_from_qresync_select_untagged_data() -> None:
    # imaplib's untagged_responses after "SELECT INBOX (QRESYNC (...))" on Dovecot 2.3.
    untagged: dict[str, list[object]] = {
        "FLAGS": [b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft)"],
        "OK": [b"[UIDVALIDITY 1795600523] UIDs valid", b"[HIGHESTMODSEQ 7] Highest"],
        "EXISTS": [b"2"],
        "RECENT": [b"3", b"0"],
        "UIDVALIDITY": [b"1795600523"],
        "UIDNEXT": [b"4"],
        "HIGHESTMODSEQ": [b"4", b"7"],
        "READ-WRITE": [b""],
    }
    status = folder_status(untagged_status(untagged))
    assert status == FolderStatus(uidvalidity=1795600523, uidnext=4, exists=2, highestmodseq=7)


def test_folder_status_without_modseq_and_with_ints() -> None:
    status = folder_status({"UIDVALIDITY": 9, "UIDNEXT": 1, "EXISTS": 0})
    assert status == FolderStatus(9, 1, 0, None)


def test_folder_status_missing_uidnext() -> None:
    with pytest.raises(KeyError):
        folder_status({"UIDVALIDITY": 9, "EXISTS": 0})


# -- IDLE -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "event"),
    [
        (b"* 2 EXISTS", IdleEvent.CHANGE),
        (b"* 3 EXPUNGE", IdleEvent.CHANGE),
        (b"* 1 FETCH (UID 1 MODSEQ (4) FLAGS (\\Flagged \\Recent))", IdleEvent.CHANGE),
        (b"* VANISHED 1", IdleEvent.CHANGE),
        (b"* VANISHED (EARLIER) 1:3", IdleEvent.CHANGE),
        (b"* 2 RECENT", IdleEvent.OTHER),
        (b"* OK [HIGHESTMODSEQ 3] Highest", IdleEvent.OTHER),
        (b"* OK Still here", IdleEvent.OTHER),
        (b"* BYE Server shutting down.", IdleEvent.BYE),
        (b"* BYE [UNAVAILABLE] maintenance", IdleEvent.BYE),
        (b"A001 OK Idle completed (1.010 + 1.009 + 1.009 secs).", IdleEvent.OTHER),
        (b"+ idling", IdleEvent.OTHER),
        (None, IdleEvent.OTHER),
        (b"", IdleEvent.OTHER),
    ],
)
def test_idle_event(line: bytes | None, event: IdleEvent) -> None:
    assert idle_event(line) is event


# -- Sent folder --------------------------------------------------------------------------


def test_sent_folder_by_special_use_wins_over_names() -> None:
    listing = [
        ((b"\\HasNoChildren",), b"/", "Sent"),
        ((b"\\HasNoChildren", b"\\Sent"), b"/", "Gesendete Objekte"),
        ((b"\\HasNoChildren",), b"/", "INBOX"),
    ]
    assert choose_sent_folder(listing) == "Gesendete Objekte"


@pytest.mark.parametrize(
    ("names", "prefix", "expected"),
    [
        (["INBOX", "Sent Items"], "", "Sent Items"),
        (["INBOX", "sent"], "", "sent"),
        (["INBOX", "INBOX.Sent", "Sent"], "INBOX.", "INBOX.Sent"),
        (["INBOX", "INBOX.Sent"], "", "INBOX.Sent"),
        (["INBOX", "Drafts"], "", None),
        (["INBOX", "Sent Messages", "Sent"], "", "Sent"),
    ],
)
def test_sent_folder_by_name(names: list[str], prefix: str, expected: str | None) -> None:
    listing = [((b"\\HasNoChildren",), b".", name) for name in names]
    assert choose_sent_folder(listing, prefix) == expected


# -- POP3 multi-line answers (connectors/pop3.py) -----------------------------------------


def _read(wire: bytes, limit: int | None = None) -> tuple[bytes | None, bytes]:
    stream = io.BytesIO(wire)
    body = read_multiline(stream.readline, limit)
    return body, stream.read()


def test_multiline_undoes_dot_stuffing_and_keeps_line_endings() -> None:
    wire = b"Subject: a\r\n\r\n...two dots\r\n..\r\n.x\r\nbare lf\nlast\r\n.\r\n+OK next"
    body, rest = _read(wire)
    assert body == b"Subject: a\r\n\r\n..two dots\r\n.\r\nx\r\nbare lf\nlast\r\n"
    assert rest == b"+OK next"  # nothing after the terminator was consumed


def test_multiline_keeps_long_lines_whole() -> None:
    line = b"." + b"x" * 200_000 + b"\r\n"  # longer than poplib's 2048 and than one chunk
    body, _ = _read(line + b".\r\n")
    assert body == line[1:]


def test_multiline_empty_body() -> None:
    assert _read(b".\r\n") == (b"", b"")


def test_multiline_over_limit_drains_and_returns_none() -> None:
    body, rest = _read(b"12345\r\n67890\r\n.\r\n+OK", limit=8)
    assert body is None
    assert rest == b"+OK"


def test_multiline_eof_raises() -> None:
    with pytest.raises(EOFError):
        _read(b"Subject: cut\r\n")


def test_parse_listing() -> None:
    assert parse_listing([b"1 000000016b06b12f", b"2 314"]) == [
        (1, "000000016b06b12f"),
        (2, "314"),
    ]
    with pytest.raises(ValueError, match="listing"):
        parse_listing([b"x 1"])

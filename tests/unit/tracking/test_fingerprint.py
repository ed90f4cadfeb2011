"""The content fingerprint: one message however servers re-encode it; another if its
From, Date, Subject or body differ (crmsync.tracking.fingerprint)."""

from __future__ import annotations

import base64

import pytest

from crmsync.tracking.fingerprint import fingerprint, same_content
from crmsync.tracking.parse import parse_message

ORIGINAL = (
    b"Received: from mx1.a.example by mx.b.example; Mon, 4 Mar 2024 10:00:02 +0100\r\n"
    b"Return-Path: <ann@a.example>\r\n"
    b"Message-ID: <reused@old-mailer>\r\n"
    b"From: Ann Smith <Ann@A.example>\r\n"
    b"To: bob@b.example\r\n"
    b"Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n"
    b"Subject: Quote for the spring order\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Dear Bob,\r\n"
    b"the price is 12 \xe2\x82\xac per unit, caf\xc3\xa9 included.\r\n"
    b"\r\n"
    b"Ann\r\n"
)

# The same message as another server stored it in a colleague's mailbox: another trace,
# headers folded and in another order, the subject as RFC 2047 words, the From name
# encoded, the Date in UTC, the body in latin-9 quoted-printable with soft line breaks.
RE_ENCODED = (
    b"Received: from relay.c.example by imap.c.example; Mon, 4 Mar 2024 09:01:00 +0000\r\n"
    b"Received: from mx1.a.example by relay.c.example; Mon, 4 Mar 2024 09:00:30 +0000\r\n"
    b"Return-Path: <bounces+ann=a.example@relay.c.example>\r\n"
    b"Delivered-To: carol@c.example\r\n"
    b"Date: Mon, 04 Mar 2024 09:00:00 +0000\r\n"
    b"Subject: =?utf-8?q?Quote_for_the?=\r\n"
    b"  =?utf-8?q?_spring_order?=\r\n"
    b"From: =?iso-8859-1?q?Ann_Smith?=\r\n <ann@a.example>\r\n"
    b"Message-ID: <reused@old-mailer>\r\n"
    b"To: bob@b.example\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=iso-8859-15\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Dear Bob,   \r\n"
    b"the price is 12 =A4 per unit, caf=E9 in=\r\n"
    b"cluded.\r\n"
    b"\r\n"
    b"Ann\r\n"
    b"\r\n"
)


def _of(raw: bytes) -> str:
    return fingerprint(parse_message(raw))


def test_copies_of_one_message_have_one_fingerprint() -> None:
    assert _of(ORIGINAL) == _of(RE_ENCODED)
    assert _of(ORIGINAL).startswith("v1:")
    assert len(_of(ORIGINAL)) == 3 + 64


def test_base64_and_crlf_free_copies_agree() -> None:
    body = base64.encodebytes(
        "Dear Bob,\nthe price is 12 € per unit, café included.\n\nAnn\n".encode()
    )
    head, _, _ = ORIGINAL.partition(b"\r\n\r\n")
    head = head.replace(b"Content-Transfer-Encoding: 8bit", b"Content-Transfer-Encoding: base64")
    assert _of(head + b"\r\n\r\n" + body) == _of(ORIGINAL)
    assert _of(ORIGINAL.replace(b"\r\n", b"\n")) == _of(ORIGINAL)


@pytest.mark.parametrize(
    ("what", "old", "new"),
    [
        ("body", b"12 \xe2\x82\xac per unit", b"13 \xe2\x82\xac per unit"),
        ("date", b"10:00:00 +0100", b"10:00:01 +0100"),
        ("time zone", b"10:00:00 +0100", b"10:00:00 +0000"),
        ("from", b"<Ann@A.example>", b"<anne@a.example>"),
        ("subject", b"Quote for the spring order", b"Quote for the summer order"),
    ],
)
def test_another_message_reusing_the_message_id_differs(what: str, old: bytes, new: bytes) -> None:
    assert old in ORIGINAL
    assert _of(ORIGINAL.replace(old, new)) != _of(ORIGINAL), what


def test_headers_servers_rewrite_do_not_count() -> None:
    rewritten = ORIGINAL.replace(b"mx.b.example", b"mx.z.example").replace(
        b"Return-Path: <ann@a.example>", b"Return-Path: <>"
    )
    assert _of(rewritten) == _of(ORIGINAL)


def test_a_message_without_date_or_from_still_has_one() -> None:
    bare = b"Subject: hi\r\n\r\nhello\r\n"
    assert _of(bare) == _of(bare + b"\r\n")
    assert _of(bare) != _of(bare.replace(b"hello", b"hullo"))


def test_only_two_known_fingerprints_of_one_version_can_differ() -> None:
    one, other = _of(ORIGINAL), _of(ORIGINAL.replace(b"Ann\r\n", b"Anna\r\n"))
    assert same_content(one, one)
    assert not same_content(one, other)
    assert same_content(None, other)  # stored before fingerprints: the Message-ID decides
    assert same_content(one, None)
    assert same_content("v0:" + "0" * 64, other)  # another version says nothing

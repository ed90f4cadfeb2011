"""parse_message raises nothing but MalformedMessage, for any bytes and mutated messages."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.tracking.display import display_html
from crmsync.tracking.parse import (
    MalformedMessage,
    MalformedReason,
    ParsedMessage,
    ParseLimits,
    parse_message,
)
from tests.unit.tracking.messages import SAMPLES

SMALL_LIMITS = ParseLimits(max_bytes=20_000, max_parts=40, max_depth=6, max_header_bytes=4_000)

# Fragments that steer mutations towards the parser's interesting corners.
FRAGMENTS = [
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n--outer\r\n",
    b"\r\n--outer--\r\n",
    b"\r\n--dsn\r\n",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Type: text/plain; charset=x-unknown\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: x-uuencode\r\n",
    b"filename*0*=utf-8''%E2%82;",
    b"=?utf-8?b?QUJDR?=",
    b"=?x-unknown?q?=FF?=",
    b"=?",
    b"?=",
    b"<",
    b">",
    b'"',
    b"(",
    b"\\",
    b"\xff\xfe",
    b"\xc3",
    b"Date: Mon, 99 Foo 99999 99:99:99 +9999\r\n",
    b"From: ((((((((((((((((((((((((((((((((x\r\n",
]


def _check(raw: bytes, limits: ParseLimits) -> None:
    reason = None
    try:
        msg = parse_message(raw, limits)
    except MalformedMessage as exc:
        reason = exc.reason
    if reason is not None:
        assert reason in set(MalformedReason)
        return
    assert isinstance(msg, ParsedMessage)
    assert msg.size == len(raw)
    assert all(part.size == len(part.data) for part in msg.attachments)
    assert msg.date is None or (isinstance(msg.date, datetime) and msg.date.tzinfo is not None)
    assert msg.message_id is None or msg.message_id.startswith("<")
    assert all(a.address for a in (*msg.from_, *msg.to, *msg.cc, *msg.bcc))


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, len(raw)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "fragment", "delete"]))
        if kind == "truncate":
            del raw[position:]
        elif kind == "flip" and position < len(raw):
            raw[position] = draw(st.integers(0, 255))
        elif kind == "insert":
            raw[position:position] = draw(st.binary(max_size=12))
        elif kind == "fragment":
            raw[position:position] = draw(st.sampled_from(FRAGMENTS))
        else:
            del raw[position : position + draw(st.integers(1, 40))]
    return bytes(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check(raw, SMALL_LIMITS)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=30).map(b"".join))
def test_fragment_soup(raw: bytes) -> None:
    _check(b"Subject: x\r\n" + raw, SMALL_LIMITS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_real_messages(raw: bytes) -> None:
    _check(raw, SMALL_LIMITS)
    _check(raw, ParseLimits())


def _slow_subject(words: int) -> bytes:
    return b"From: a@x.example\r\nSubject: " + b"=?utf8?q?a?=" * words + b"\r\n\r\nhi\r\n"


def _nested_divs(depth: int) -> bytes:
    body = "<div>" * depth + "x" + "</div>" * depth
    return (
        b"From: a@x.example\r\nSubject: s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        + body.encode()
    )


def _charset(name: bytes) -> bytes:
    return b"Subject: s\r\nContent-Type: text/plain; charset=" + name + b"\r\n\r\ncaf\xe9\r\n"


# Found by fuzzing: each took seconds (the stdlib's decode_header is quadratic in the number
# of encoded words, nh3 in the nesting depth) or failed the whole message (idna and punycode
# raise on any error handler but 'strict'). Each must parse, and be flagged.
SLOW_OR_FATAL = [
    pytest.param(_slow_subject(34_000), "too many encoded words in subject", id="34k-words"),
    pytest.param(_slow_subject(70_000), "too many encoded words in subject", id="70k-words"),
    pytest.param(_nested_divs(20_000), "HTML body ", id="20k-divs"),
    pytest.param(_nested_divs(50_000), "HTML body ", id="50k-divs"),
    pytest.param(_charset(b"idna"), "unknown charset 'idna' in message", id="idna"),
    pytest.param(_charset(b"punycode"), "unknown charset 'punycode' in message", id="punycode"),
    pytest.param(
        b"Subject: =?idna?q?caf=E9?=\r\n\r\nx", "unknown charset 'idna' in subject", id="idna-word"
    ),
    pytest.param(
        b"Subject: s\r\nContent-Type: multipart/mixed; boundary*=idna''abc\r\n\r\n"
        b"--abc\r\n\r\nx\r\n--abc--\r\n",
        "unknown charset 'idna' in message",
        id="idna-boundary",
    ),
]


@pytest.mark.parametrize(("raw", "defect"), SLOW_OR_FATAL)
def test_slow_or_fatal_messages_parse_fast_and_are_flagged(raw: bytes, defect: str) -> None:
    _check(raw, ParseLimits())
    started = time.perf_counter()
    msg = parse_message(raw)
    display_html(msg)

    # Generous: tenths of a second now, where the parser pool allows 30 s per message.
    assert time.perf_counter() - started < 3.0
    assert any(found.startswith(defect) for found in msg.defects), msg.defects

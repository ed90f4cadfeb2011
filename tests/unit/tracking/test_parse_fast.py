"""parse_fast against the stdlib: the same tree, the same ParsedMessage, or a fallback.

The reference is ``_parse_message(..., fast=False)``: the stdlib parser builds every tree
and ``getaddresses`` reads every address field. The fast path must give exactly what it
gives (text bodies included, no whitespace normalisation) for every message it takes.
"""

from __future__ import annotations

import functools
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import generate
from crmsync.tracking.headers import parse_addresses
from crmsync.tracking.parse import MalformedMessage, ParseLimits, _parse_message
from crmsync.tracking.parse_fast import build_message, clean_base64, no_filename, plain_addresses
from tests.unit.tracking.messages import (
    ALTERNATIVE_WITH_ATTACHMENTS,
    DSN,
    HTML_ONLY,
    LATIN1_SUBJECT,
    SAMPLES,
    UNKNOWN_CHARSET,
    many_parts,
    nested,
)

LIMITS = ParseLimits()
SMALL_LIMITS = ParseLimits(max_bytes=20_000, max_parts=40, max_depth=6, max_header_bytes=4_000)
LITERALS = [*SAMPLES, nested(3), nested(20), nested(21), many_parts(10)]
LF_LITERALS = [raw.replace(b"\r\n", b"\n") for raw in LITERALS]


@functools.cache
def corpus() -> tuple[bytes, ...]:
    return tuple(generate(200))


def tree(message: Message) -> tuple[Any, ...]:
    """Everything the parser sets on a part, recursively, as it set it."""
    payload = message._payload  # get_payload() would decode 8-bit text
    return (
        list(message.raw_items()),
        message.get_unixfrom(),
        message.get_charset(),
        message.preamble,
        message.epilogue,
        [type(defect).__name__ for defect in message.defects],
        message.get_default_type(),
        [tree(part) for part in payload] if isinstance(payload, list) else payload,
    )


def outcome(raw: bytes, limits: ParseLimits, *, fast: bool) -> dict[str, Any]:
    """The ParsedMessage as a dict (attachments spelled out), or the MalformedMessage."""
    try:
        msg = _parse_message(raw, limits, fast=fast)
    except MalformedMessage as exc:
        return {"malformed": (exc.reason, exc.detail)}
    fields = {name: getattr(msg, name) for name in msg.__slots__}
    fields["attachments"] = [
        (a.filename, a.content_type, a.size, a.data, a.content_id, a.inline)
        for a in msg.attachments
    ]
    return fields


def check_same(raw: bytes, limits: ParseLimits = LIMITS) -> bool:
    """Assert both paths agree, on the tree and the result; whether the fast path took it."""
    built = build_message(raw, limits.max_parts, limits.max_depth)
    if built is not None:
        assert tree(built) == tree(BytesParser(policy=compat32).parsebytes(raw))
    assert outcome(raw, limits, fast=True) == outcome(raw, limits, fast=False)
    return built is not None


def test_the_corpus_takes_the_fast_path_and_parses_the_same() -> None:
    assert all([check_same(raw) for raw in corpus()])


@pytest.mark.parametrize("raw", LITERALS + LF_LITERALS)
def test_byte_literals_parse_the_same(raw: bytes) -> None:
    check_same(raw)
    check_same(raw, SMALL_LIMITS)


@pytest.mark.parametrize(
    "raw", [ALTERNATIVE_WITH_ATTACHMENTS, LATIN1_SUBJECT, UNKNOWN_CHARSET, HTML_ONLY, nested(20)]
)
def test_plain_literals_take_the_fast_path(raw: bytes) -> None:
    assert build_message(raw, 500, 20) is not None
    assert build_message(raw.replace(b"\r\n", b"\n"), 500, 20) is not None


_MIXED = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nhi\r\n"


@pytest.mark.parametrize(
    ("reason", "raw"),
    [
        ("attached messages", DSN),
        ("nested deeper than max_depth", nested(21)),
        ("no closing boundary", _MIXED),
        ("a boundary after a bare LF", _MIXED + b"x\n--b--\r\n"),
        ("a boundary line ending in a bare CR", _MIXED + b"--b--\r"),
        ("a bare CR in a header section", b"Subject: x\rTo: y\r\n\r\nbody"),
        ("a header line without a name", b"Subject: x\r\n: y\r\n\r\nbody"),
        ("a first line that is a continuation", b" Subject: x\r\n\r\nbody"),
        ("an envelope line", b"From ann@a.example Mon Jan  1 10:00:00 2024\nSubject: x\n\nhi"),
        ("a body with no blank line before it", b"Subject: x\r\nbody\r\n"),
        ("a multipart digest", b"Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n--b--"),
    ],
)
def test_falls_back_to_the_stdlib(reason: str, raw: bytes) -> None:
    assert build_message(raw, 500, 20) is None, reason
    check_same(raw)


def test_missing_closing_boundary_keeps_its_defect() -> None:
    fast = _parse_message(_MIXED, LIMITS, fast=True)

    assert fast.text_body == "hi"
    assert fast.defects == ("CloseBoundaryNotFoundDefect in message",)


def test_8bit_base64_part_with_an_odd_charset() -> None:
    raw = (
        b'Content-Type: text/plain; charset="utf-8\x00"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\n\xc3\xa9QUJD\r\n"
    )

    assert check_same(raw)  # get_payload() would charset-decode it, and fail


# Mutations aimed at what the fast path decides on: line ends, boundary lines, headers.
MUTATIONS = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b"--",
    b"--outer",
    b"--outer--",
    b"\r\n--outer\r\n",
    b"\n--inner\n",
    b"\r\n--inner-- \r\n",
    b"\r\n--dsn\r\n",
    b"X-A: b\r\n",
    b" folded\r\n",
    b":",
    b"From ",
    b"Content-Type: multipart/mixed; boundary=outer\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"\xc3\xa9",
    b"\xff",
]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(LITERALS[:5] + LF_LITERALS[:5])))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(raw)))
        if draw(st.booleans()):  # near a line start or a boundary, where it matters
            found = raw.find(draw(st.sampled_from([b"\n", b"--", b":"])), position)
            position = found + draw(st.integers(-1, 2)) if found > 0 else position
            position = max(0, min(position, len(raw)))
        kind = draw(st.sampled_from(["insert", "delete", "flip"]))
        if kind == "insert":
            raw[position:position] = draw(st.sampled_from(MUTATIONS))
        elif kind == "delete":
            del raw[position : position + draw(st.integers(1, 8))]
        elif position < len(raw):
            raw[position] = draw(st.integers(0, 255))
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_parse_the_same(raw: bytes) -> None:
    check_same(raw)
    check_same(raw, SMALL_LIMITS)


PART_HEADERS = [
    b"Content-Type: text/plain; charset=utf-8",
    b"Content-Type: text/html",
    b"Content-Type: application/pdf; name=a.pdf",
    b'Content-Disposition: attachment; filename="b.pdf"',
    b"Content-Disposition: inline",
    b"Content-ID: <c@d>",
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"X-Folded: a,\r\n b",
]
BODY_LINES = [b"QUJD", b"QUJ", b"caf=C3=A9 =", b"caf\xc3\xa9", b"<p>hi</p>", b"", b"  ", b"--out"]


@st.composite
def assembled(draw: st.DrawFn, depth: int = 0) -> bytes:
    """A multipart (nested once at most) of plausible parts, then a few mutations."""
    eol = b"\n" if depth else draw(st.sampled_from([b"\r\n", b"\n"]))
    boundary = b"inner" if depth else b"outer"
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        if depth == 0 and draw(st.integers(0, 3)) == 0:
            parts.append(draw(assembled(depth=1)))
            continue
        headers = draw(st.lists(st.sampled_from(PART_HEADERS), max_size=3))
        lines = [*headers, b"", *draw(st.lists(st.sampled_from(BODY_LINES), max_size=4))]
        parts.append(eol.join(lines))
    delimiter = b"--" + boundary + draw(st.sampled_from([b"", b" ", b"\t"])) + eol
    raw = (
        b"Content-Type: multipart/"
        + draw(st.sampled_from([b"mixed", b"alternative"]))
        + b"; boundary="
        + boundary
        + eol
        + eol
        + draw(st.sampled_from([b"", b"preamble" + eol]))
        + b"".join(delimiter + part + eol for part in parts)
        + b"--"
        + boundary
        + b"--"
        + draw(st.sampled_from([b"", eol, eol + b"epilogue" + eol]))
    )
    if depth:
        return raw.replace(b"\n", b"\r\n") if draw(st.booleans()) else raw
    raw = b"Subject: x" + eol + raw
    for _ in range(draw(st.integers(0, 2))):
        position = draw(st.integers(0, len(raw)))
        raw = raw[:position] + draw(st.sampled_from(MUTATIONS)) + raw[position:]
    return raw


@settings(max_examples=300, deadline=None)
@given(assembled())
def test_assembled_multiparts_parse_the_same(raw: bytes) -> None:
    check_same(raw)
    check_same(raw, SMALL_LIMITS)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2_000))
def test_arbitrary_bytes_raise_only_malformed_and_parse_the_same(raw: bytes) -> None:
    for limits in (LIMITS, SMALL_LIMITS):
        result = outcome(raw, limits, fast=True)  # any other exception fails the test
        assert result == outcome(raw, limits, fast=False)


_ADDRESS_TEXT = st.text(alphabet='aZ09.-_+=?!#$%&*/^`{|}~ \t"<>@,:;()[]\\\r\n\x0b\x7f', max_size=12)
_WORD = st.text(alphabet="abcXYZ019.-_+", min_size=1, max_size=6)


@st.composite
def mailbox(draw: st.DrawFn) -> str:
    address = f"{draw(_WORD)}@{draw(_WORD)}"
    forms = [
        address,
        f"<{address}>",
        f'"{draw(_ADDRESS_TEXT)}" <{address}>',
        f"{draw(_WORD)} {draw(_WORD)} <{address}>",
        draw(_ADDRESS_TEXT),
    ]
    return draw(st.sampled_from(["", " ", "\r\n "])) + draw(st.sampled_from(forms))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(mailbox(), min_size=1, max_size=3).map(", ".join), max_size=2))
def test_plain_addresses_are_what_getaddresses_gives(raws: list[str]) -> None:
    plain = plain_addresses(raws)
    if plain is not None:
        assert plain == parse_addresses(raws, "to", [])


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="QUJDabc+/=\r\n \x00é", max_size=40),
    st.sampled_from(["base64", "BASE64", "quoted-printable", ""]),
)
def test_clean_base64_is_what_get_payload_gives(payload: str, encoding: str) -> None:
    part = Message()
    if encoding:
        part["Content-Transfer-Encoding"] = encoding
    part.set_payload(payload)
    clean = clean_base64(part)
    if clean is not None:
        assert clean == part.get_payload(decode=True)
        assert part.defects == []


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet='ab=;*"\\ nNaAmMeE0\xe9', max_size=20), max_size=2))
def test_no_filename_means_get_filename_gives_none(values: list[str]) -> None:
    part = Message()
    for name, value in zip(["Content-Type", "Content-Disposition"], values, strict=False):
        part[name] = value
    if no_filename(values):
        assert part.get_filename() is None

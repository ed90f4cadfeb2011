"""headers: encoded words decoded in linear time and under a cap; charsets that never raise."""

from __future__ import annotations

import time
from email.errors import HeaderParseError
from email.header import decode_header

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crmsync.tracking.headers import (
    MAX_DECODED_CHARS,
    MAX_ENCODED_WORDS,
    _decode_header,
    decode_bytes,
    decode_header_text,
)

# Generous: tens of milliseconds once linear; the stdlib took seconds on these.
SECONDS = 3.0

# Pieces of encoded words and the text around them, weighted towards the corners of the
# stdlib's splitting: '?' and '?=' inside words, whitespace between words, characters that
# str.splitlines() breaks at but RFC 5322 unfolding does not remove.
PIECES = [
    "=?",
    "?=",
    "?",
    "=",
    "utf-8",
    "UTF-8",
    "iso-8859-1",
    "x-unknown",
    "?q?",
    "?Q?",
    "?b?",
    "?B?",
    "=?utf-8?q?caf=C3=A9?=",
    "=?utf-8?b?w6k=?=",
    "=?iso-8859-1?q?=E9?=",
    "=?utf-8?b?QUJDR?=",
    "=?utf-8?q? ?=",
    "_",
    "=41",
    "=C3",
    "QQ==",
    "QUJD",
    " ",
    "  ",
    "\t",
    "\x0b",
    "\x0c",
    "\x1c",
    "\x85",
    "\u2028",
    "a",
    "é",
    "€",
]


def _stdlib(value: str) -> object:
    try:
        return decode_header(value)
    except HeaderParseError:
        return HeaderParseError


def _ours(value: str) -> object:
    try:
        return _decode_header(value)
    except HeaderParseError:
        return HeaderParseError


@settings(max_examples=1_000, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=14).map("".join))
@example("=?a?q?b?= \x0b =?a?q?c?=")
@example("=?utf-8?q?a?= =?utf-8?q? ?= =?utf-8?q?b?=")
@example(" x =?utf-8?q?a?=\u2028 =?utf-8?q?b?= y ")
@example("=?a\u2028b?q?c?=")
def test_decode_header_is_the_stdlib_s(value: str) -> None:
    assert _ours(value) == _stdlib(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_decode_header_is_the_stdlib_s_for_any_text(value: str) -> None:
    assert _ours(value) == _stdlib(value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("=?utf8?q?a?=" * 70_000, id="70,000 adjacent words"),
        pytest.param("=?utf8?q?a?= " * 70_000, id="70,000 words with spaces"),
        pytest.param("=?a?q?b " * 40_000, id="40,000 words never closed"),
    ],
)
def test_decoding_is_linear(value: str) -> None:
    started = time.perf_counter()
    _decode_header(value)

    assert time.perf_counter() - started < SECONDS


def test_encoded_words_over_the_cap_are_left_undecoded_and_flagged() -> None:
    words = MAX_ENCODED_WORDS + 500
    defects: list[str] = []

    started = time.perf_counter()
    text = decode_header_text("=?utf8?q?a?=" * words, "subject", defects)

    assert time.perf_counter() - started < SECONDS
    assert text == "a" * MAX_ENCODED_WORDS + "=?utf8?q?a?=" * 500
    assert defects == ["too many encoded words in subject; the rest left undecoded"]


def test_characters_over_the_cap_are_left_undecoded_and_flagged() -> None:
    word = "=?utf-8?b?" + "QUJD" * 1_000 + "?="  # 3,000 characters once decoded
    count = MAX_DECODED_CHARS // len(word) + 3
    defects: list[str] = []

    text = decode_header_text(word * count, "subject", defects)

    decoded = MAX_DECODED_CHARS // len(word)
    assert text == "ABC" * 1_000 * decoded + word * (count - decoded)
    assert defects == ["too many encoded words in subject; the rest left undecoded"]


def test_a_header_under_the_caps_is_decoded_whole() -> None:
    defects: list[str] = []

    text = decode_header_text(" ".join(["=?utf8?q?a?="] * MAX_ENCODED_WORDS), "subject", defects)

    assert text == "a" * MAX_ENCODED_WORDS
    assert defects == []


# Codecs Python knows that are no MIME charset: idna and punycode refuse every error
# handler but 'strict', the escape codecs read backslashes, the rest are not text codecs.
ODD_CHARSETS = [
    "idna",
    "punycode",
    "unicode_escape",
    "raw_unicode_escape",
    "undefined",
    "base64",
    "base64_codec",
    "rot13",
    "zlib",
    "hex",
    "uu",
    "quopri",
    "bz2",
]


@pytest.mark.parametrize("charset", ODD_CHARSETS)
@pytest.mark.parametrize("data", [b"caf\xe9", b"cafe", b"\\N{x", b""])
def test_decode_bytes_never_raises_on_a_codec_that_is_no_charset(charset: str, data: bytes) -> None:
    defects: list[str] = []

    text = decode_bytes(data, charset, "part 2", defects)

    assert text == data.decode("utf-8", "replace")
    assert defects == [f"unknown charset {charset!r} in part 2"]


@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1", "utf-7", "utf-16", "cp1252", "gbk"])
def test_decode_bytes_never_raises_on_a_real_charset(charset: str) -> None:
    for data in (b"caf\xe9", b"\xff\xfe\x00", b"+AGE-\xff", "café".encode(charset)):
        text = decode_bytes(data, charset, "message", [])
        assert isinstance(text, str)

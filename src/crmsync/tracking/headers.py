"""Decoding header fields and body text: charsets, encoded words, addresses, msg-ids, dates.

For ``parse`` only: small pure helpers that turn what the stdlib ``email`` package leaves in
a compat32 message (raw header strings, 8-bit bytes as surrogates) into text. They never
raise: whatever cannot be decoded is decoded with replacement characters and named in the
``defects`` list passed in. A defect names a header or part and a charset, never content.
They take time linear in their input: a header's encoded words past ``MAX_ENCODED_WORDS``
(or ending past ``MAX_DECODED_CHARS`` characters) are left as they are, with a defect.

Formats relied on:
- RFC 5322 — header unfolding (CRLF before WSP), msg-id ``<left@right>``, date-time.
- RFC 2047 — encoded words ``=?charset?Q|B?text?=``, split and merged exactly as the
  stdlib's ``email.header.decode_header`` does (``_decode_header`` says why not it).
- RFC 2231 — ``charset*language`` in charset names (the language is dropped).
- RFC 6532 — raw UTF-8 in header fields (decoded as UTF-8, else windows-1252).
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import base64mime, quoprimime
from email.errors import HeaderParseError
from email.utils import getaddresses, parsedate_to_datetime
from typing import NamedTuple

__all__ = [
    "MAX_DECODED_CHARS",
    "MAX_ENCODED_WORDS",
    "Address",
    "decode_bytes",
    "decode_header_text",
    "extract_msgids",
    "parse_addresses",
    "parse_date",
    "printable_name",
    "unfold",
]


class Address(NamedTuple):
    """One mailbox from an address header: ``Address('Ann Lee', 'ann@example.com')``.

    ``address`` is as written (not normalised); ``name`` is the decoded display name or ''.
    """

    name: str
    address: str


# Charset labels seen in real mail that Python does not know, or knows as a smaller set.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "ks_c_5601-1987": "cp949",
    "x-mac-roman": "mac-roman",
    "windows-874": "cp874",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}

# Codecs Python has that are no MIME charset and fail in their own ways: idna and punycode
# allow no error handler but 'strict' (and punycode is quadratic), the escape codecs read
# backslash sequences, 'undefined' raises on anything.
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})

MAX_ENCODED_WORDS = 1_000
MAX_DECODED_CHARS = 100_000

_FOLD = re.compile(r"\r?\n|\r")
# The start of an encoded word as the stdlib's ``email.header.ecre`` matches it: the
# charset runs to the first '?'. Its text runs to the first '?=' after that.
_WORD_START = re.compile(r"=\?([^?]*)\?([qQbB])\?")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[qQbB]\?[^?]*\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t]+(?==\?)")
_MSGID_TOKEN = re.compile(r"<([^<>]*)>|([^\s,<>()]+)")


def printable_name(label: str) -> str:
    """A charset label as it may appear in a defect: short and printable."""
    return repr(label[:40])


@functools.lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown or no charset.

    ``codecs.lookup`` knows bytes-to-bytes codecs (base64, zlib), str-to-str ones (rot13)
    and text codecs that are no charset (idna): all refused.
    """
    name = label.strip().strip("\"'").lower().partition("*")[0]
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except Exception:  # LookupError; ValueError for a NUL in the name
        return None
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None, where: str, defects: list[str]) -> str:
    """Text of ``data`` in ``charset`` (default us-ascii), never raising.

    ``us-ascii`` that is not ASCII is tried as UTF-8 (a frequent mislabel). An unknown
    charset, or a codec that is no charset (idna, base64), decodes as UTF-8 with
    replacement characters and adds a defect naming it.
    """
    label = charset or "us-ascii"
    codec = _codec(label)
    if codec is None:
        defects.append(f"unknown charset {printable_name(label)} in {where}")
        return data.decode("utf-8", "replace")
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        pass
    except Exception:  # a codec with its own failure modes (utf-7, cjk): treat alike
        defects.append(f"undecodable bytes for charset {printable_name(label)} in {where}")
        return data.decode("utf-8", "replace")
    if codec == "ascii":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            defects.append(f"8-bit bytes in us-ascii {where}")
            return data.decode("cp1252", "replace")
    defects.append(f"undecodable bytes for charset {printable_name(label)} in {where}")
    try:
        return data.decode(codec, "replace")
    except Exception:  # a codec that allows no error handler but 'strict'
        return data.decode("utf-8", "replace")


def from_raw(value: str, where: str, defects: list[str]) -> str:
    """Header text with compat32's surrogate-escaped 8-bit bytes decoded (RFC 6532)."""
    if value.isascii():
        return value
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        defects.append(f"8-bit bytes that are not UTF-8 in {where}")
        return data.decode("cp1252", "replace")


def unfold(value: str) -> str:
    """RFC 5322 unfolding: line breaks removed, the whitespace after them kept."""
    return _FOLD.sub("", value)


def _encoded_words(value: str) -> Iterator[tuple[int, int, str, str, str]]:
    """Each encoded word in ``value`` (no line breaks), as the stdlib's ``ecre`` finds them
    from left to right: ``(start, end, charset, encoding, encoded text)``.

    ``ecre`` ends a word's text lazily with ``.*?\\?=``: from a start with no '?=' after
    it, it tries every later start, each to the end of the value, which is quadratic. Here
    the next '?=' is found once for all the starts before it.
    """
    position = 0
    close = -2  # the next '?=' at or after the last text start; -1 when there is none
    while (match := _WORD_START.search(value, position)) is not None:
        text = match.end()
        if close < text:
            close = value.find("?=", text) if close != -1 else -1
        if close < 0:
            return
        yield match.start(), close + 2, match[1], match[2], value[text:close]
        position = close + 2


def _decode_header(value: str) -> list[tuple[bytes | str, str | None]]:
    """``email.header.decode_header(value)`` for a header value with no line breaks.

    The stdlib's does the same in time quadratic in the number of encoded words
    (``list.pop(0)`` per word, ``del`` per dropped space, ``bytes +=`` per merged word,
    and its regular expression as ``_encoded_words`` says): 34,000 words took 2 s,
    70,000 took 9. This is its algorithm step by step, in linear time, raising
    ``HeaderParseError`` where it does; tests/unit/tracking/test_headers.py holds the two
    to the same results.
    """
    if next(_encoded_words(value), None) is None:
        return [(value, None)]
    # (text, encoding, charset); encoding and charset None for unencoded text
    words: list[tuple[str, str | None, str | None]] = []
    for line in value.splitlines():
        position, first = 0, True
        for start, end, charset, encoding, encoded in _encoded_words(line):
            unencoded = line[position:start]
            if first:
                unencoded, first = unencoded.lstrip(), False
            if unencoded:
                words.append((unencoded, None, None))
            words.append((encoded, encoding.lower(), charset.lower()))
            position = end
        unencoded = line[position:]
        if first:
            unencoded = unencoded.lstrip()
        if unencoded:
            words.append((unencoded, None, None))
    # Whitespace between two encoded words goes (RFC 2047 6.2); as in the stdlib, what is
    # tested is the word before, encoded or not.
    dropped = {
        n - 1
        for n in range(2, len(words))
        if words[n][1] and words[n - 2][1] and words[n - 1][0].isspace()
    }
    collapsed: list[tuple[bytes | str, str | None]] = []
    run: list[bytes] = []
    run_charset: str | None = None
    for n, (text, coding, label) in enumerate(words):
        if n in dropped:
            continue
        if coding is None:
            word = text.encode("raw-unicode-escape")
        elif coding == "q":
            word = quoprimime.header_decode(text).encode("raw-unicode-escape")
        else:
            if len(text) % 4:  # Postel's law, as the stdlib: add the missing padding
                text += "==="[: 4 - len(text) % 4]
            try:
                word = base64mime.decode(text)
            except binascii.Error:
                raise HeaderParseError("Base64 decoding error") from None
        if run and label != run_charset:
            collapsed.append((_join(run, run_charset), run_charset))
            run = []
        run.append(word)
        run_charset = label
    collapsed.append((_join(run, run_charset), run_charset))
    return collapsed


def _join(words: list[bytes], charset: str | None) -> bytes:
    return (b" " if charset is None else b"").join(words)


def _decode_chunks(value: str, where: str, defects: list[str]) -> str:
    """Decode every encoded word of an unfolded, 8-bit-free value via _decode_header."""
    parts: list[str] = []
    # decode_header turns unencoded text into bytes with raw-unicode-escape: exact latin-1
    # unless the text had characters above U+00FF (raw UTF-8 next to encoded words).
    wide = not value.isascii() and any(ord(ch) > 0xFF for ch in value)
    for chunk, charset in _decode_header(value):
        if isinstance(chunk, str):
            parts.append(chunk)
        elif charset is None:
            try:
                parts.append(chunk.decode("raw-unicode-escape" if wide else "latin-1"))
            except UnicodeDecodeError:
                parts.append(chunk.decode("latin-1"))
        else:
            parts.append(decode_bytes(chunk, charset, where, defects))
    return "".join(parts)


def _decode_word_by_word(value: str, where: str, defects: list[str]) -> str:
    """Fallback when one encoded word is broken: decode the good ones, keep the rest raw."""
    value = _BETWEEN_WORDS.sub("", value)
    out: list[str] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        out.append(value[position : match.start()])
        try:
            out.append(_decode_chunks(match.group(0), where, defects))
        except (HeaderParseError, ValueError):
            out.append(match.group(0))
        position = match.end()
    out.append(value[position:])
    return "".join(out)


def _within_limits(value: str) -> int:
    """Where the first encoded word past ``MAX_ENCODED_WORDS``, or ending past
    ``MAX_DECODED_CHARS``, starts; ``len(value)`` when there is none."""
    for count, (start, end, *_) in enumerate(_encoded_words(value), 1):
        if count > MAX_ENCODED_WORDS or end > MAX_DECODED_CHARS:
            return start
    return len(value)


def decode_header_text(raw: str, where: str, defects: list[str]) -> str:
    """Unfolded, decoded text of a header value (RFC 2047 encoded words, raw UTF-8)."""
    value = from_raw(unfold(raw), where, defects)
    if "=?" not in value:
        return value
    cut = _within_limits(value)
    value, rest = value[:cut], value[cut:]
    if rest:
        defects.append(f"too many encoded words in {where}; the rest left undecoded")
    try:
        return _decode_chunks(value, where, defects) + rest
    except Exception:
        defects.append(f"broken encoded word in {where}")
        return _decode_word_by_word(value, where, defects) + rest


def parse_addresses(raws: list[str], where: str, defects: list[str]) -> tuple[Address, ...]:
    """Mailboxes of one or more address headers, skipping empty ones and groups' names.

    ``'"Lee, Ann" <ann@x.example>, =?utf-8?q?J=C3=B6rg?= <j@y.example>'`` →
    ``(Address('Lee, Ann', 'ann@x.example'), Address('Jörg', 'j@y.example'))``
    """
    if not raws:
        return ()
    values = [from_raw(unfold(raw), where, defects) for raw in raws]
    try:
        pairs = getaddresses(values)
    except Exception:
        defects.append(f"unparseable address list in {where}")
        return ()
    found: list[Address] = []
    for name, address in pairs:
        address = address.strip()
        if not address:
            continue
        if "=?" in name:
            name = decode_header_text(name, where, defects)
        found.append(Address(" ".join(name.split()), address))
    return tuple(found)


def parse_date(raw: str | None, defects: list[str]) -> datetime | None:
    """An aware datetime from a Date header; a date without zone (``-0000``) is UTC."""
    if raw is None:
        return None
    try:
        value = parsedate_to_datetime(unfold(raw).strip())
    except Exception:
        defects.append("unparseable Date")
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def extract_msgids(header_value: str) -> tuple[str, ...]:
    """Every msg-id in a Message-ID/In-Reply-To/References value, in order, as ``<...>``.

    Tolerant of folding, commas and ids written without brackets (a bare token counts only
    if it has an ``@`` inside, so the phrases of old RFC 822 In-Reply-To fields are skipped):
    ``'<a@x> b@y, <c@z>'`` → ``('<a@x>', '<b@y>', '<c@z>')``.
    """
    ids: list[str] = []
    for match in _MSGID_TOKEN.finditer(unfold(header_value)):
        bracketed, bare = match.groups()
        if bracketed is not None:
            inner = "".join(bracketed.split())
            if inner:
                ids.append(f"<{inner}>")
        elif bare and "@" in bare.strip("@"):
            ids.append(f"<{bare}>")
    return tuple(ids)

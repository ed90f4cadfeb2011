"""Decoding header fields and body text: charsets, encoded words, addresses, msg-ids, dates.

For ``parse`` only: small pure helpers that turn what the stdlib ``email`` package leaves in
a compat32 message (raw header strings, 8-bit bytes as surrogates) into text. They never
raise: whatever cannot be decoded is decoded with replacement characters and named in the
``defects`` list passed in. A defect names a header or part and a charset, never content.

Formats relied on:
- RFC 5322 — header unfolding (CRLF before WSP), msg-id ``<left@right>``, date-time.
- RFC 2047 — encoded words ``=?charset?Q|B?text?=`` (``email.header.decode_header``).
- RFC 2231 — ``charset*language`` in charset names (the language is dropped).
- RFC 6532 — raw UTF-8 in header fields (decoded as UTF-8, else windows-1252).
"""

from __future__ import annotations

import codecs
import functools
import re
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header
from email.utils import getaddresses, parsedate_to_datetime
from typing import NamedTuple

__all__ = [
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

_FOLD = re.compile(r"\r?\n|\r")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[qQbB]\?[^?]*\?=")
_BETWEEN_WORDS = re.compile(r"(?<=\?=)[ \t]+(?==\?)")
_MSGID_TOKEN = re.compile(r"<([^<>]*)>|([^\s,<>()]+)")


def printable_name(label: str) -> str:
    """A charset label as it may appear in a defect: short and printable."""
    return repr(label[:40])


@functools.lru_cache(maxsize=256)
def _codec(label: str) -> str | None:
    """Python's codec name for a MIME charset label, or None if unknown or not text."""
    name = label.strip().strip("\"'").lower().partition("*")[0]
    name = _CHARSET_ALIASES.get(name, name)
    if not name:
        return None
    try:
        codec = codecs.lookup(name).name
        b"".decode(codec)  # refuses bytes-to-bytes codecs such as base64 or zlib
    except (LookupError, UnicodeError, ValueError):
        return None
    return codec


def decode_bytes(data: bytes, charset: str | None, where: str, defects: list[str]) -> str:
    """Text of ``data`` in ``charset`` (default us-ascii), never raising.

    ``us-ascii`` that is not ASCII is tried as UTF-8 (a frequent mislabel). An unknown
    charset decodes as UTF-8 with replacement characters and adds a defect naming it.
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
    return data.decode(codec, "replace")


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


def _decode_chunks(value: str, where: str, defects: list[str]) -> str:
    """Decode every encoded word of an unfolded, 8-bit-free value via decode_header."""
    parts: list[str] = []
    # decode_header turns unencoded text into bytes with raw-unicode-escape: exact latin-1
    # unless the text had characters above U+00FF (raw UTF-8 next to encoded words).
    wide = not value.isascii() and any(ord(ch) > 0xFF for ch in value)
    for chunk, charset in decode_header(value):
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


def decode_header_text(raw: str, where: str, defects: list[str]) -> str:
    """Unfolded, decoded text of a header value (RFC 2047 encoded words, raw UTF-8)."""
    value = from_raw(unfold(raw), where, defects)
    if "=?" not in value:
        return value
    try:
        return _decode_chunks(value, where, defects)
    except Exception:
        defects.append(f"broken encoded word in {where}")
        return _decode_word_by_word(value, where, defects)


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

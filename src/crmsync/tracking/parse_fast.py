"""Build the stdlib's compat32 ``Message`` tree for plain, well-formed mail, several times faster.

For ``parse`` only. The stdlib ``FeedParser`` reads a message line by line in Python, and
that is most of what parsing a typical message costs (a 20 KB body is ~300 lines, a 500 KB
base64 attachment ~6,700). ``build_message`` makes the *same* tree — the same headers as the
same raw strings in the same order, the same payload strings, preambles and epilogues — by
finding the blank line after each header section and the boundary lines with ``str.find``,
so bodies are never cut into lines. ``parse`` reads that tree exactly as it reads the
parser's, so both give the same ``ParsedMessage``. Three smaller stand-ins do the same for
the next slowest stdlib steps, again only on plain input: ``plain_addresses`` for
``getaddresses``, ``clean_base64`` for ``get_payload(decode=True)``, ``no_filename`` for
``get_filename``.

``build_message`` takes only what it can build exactly, and returns ``None`` for anything
else; the caller then runs the stdlib parser. ``None`` means "not plain enough", not
"broken". It gives up on:
- a line break other than the message's first one (CRLF or LF) where it matters: in a
  header section, on a boundary line, or just before a ``--boundary`` (the stdlib breaks
  lines at CR, LF and CRLF alike);
- any header line the stdlib would flag or treat specially: a continuation first, no
  name, a name outside RFC 5322 ftext, a ``From `` envelope line, a line that is not a
  header before the blank line;
- ``message/*`` parts (attached messages, delivery-status) and ``multipart/digest``,
  whose parts the stdlib parses as messages;
- multipart oddities that make the stdlib record a defect or take a special path: no or
  an unusual boundary, a transfer encoding on the multipart, no first or no closing
  boundary, two boundary lines in a row, a boundary on the last line;
- more parts than ``max_parts`` or nesting deeper than ``max_depth`` (the stdlib path then
  raises the matching ``MalformedMessage``).
So a tree it returns has no defects: messages with defects take the stdlib path.

What the stdlib does, and this mirrors (Python 3.11 ``email.feedparser``, compat32 policy):
- the text is the bytes decoded as ASCII with ``surrogateescape``;
- a header is a line ``name:value`` and the lines after it that start with a space or tab;
  its value is everything after the colon, left-stripped of spaces and tabs, continuation
  lines joined with their line ends, the final line end removed (RFC 5322 2.2, unfolded
  later by ``headers.unfold``);
- a multipart's parts are the text between boundary lines (RFC 2046 5.1.1: ``--boundary``
  or ``--boundary--``, then only spaces or tabs); the line end before a boundary line
  belongs to the boundary, so it leaves the part's payload (or a nested multipart's
  epilogue, which is ``None`` when empty); the preamble loses its last line end; the root's
  epilogue is everything after the closing boundary line.

None of them raises: whatever goes wrong inside gives ``None``.

Why not a native parser instead (fast-mail-parser, Rust, was measured): it is faster still,
but hands back decoded headers and normalised parts (quoted-printable line ends rewritten
as CRLF, no sign of a missing closing boundary or a stray line break), so whether its
result equals the stdlib's cannot be told without doing the work done here anyway.
"""

from __future__ import annotations

import binascii
import re
from email.message import Message
from email.policy import compat32
from typing import NamedTuple

from crmsync.tracking.headers import Address, unfold

__all__ = ["build_message", "clean_base64", "no_filename", "plain_addresses"]

# A header field name as the stdlib's headerRE takes it: printable ASCII but the colon.
_FIELD_NAME = re.compile(r"[\041-\071\073-\176]+")
# Boundaries matched here with plain string comparisons: printable ASCII, spaces inside.
_BOUNDARY = re.compile(r"[\041-\176](?:[ \041-\176]*[\041-\176])?")


class _Bail(Exception):
    """Not plain enough to build exactly here."""


class _Delimiter(NamedTuple):
    start: int  # where the boundary line starts
    after: int  # where the line after it starts (or the end of the range)
    closing: bool  # ``--boundary--``


class _Builder:
    def __init__(self, text: str, eol: str, max_parts: int, max_depth: int) -> None:
        self.text = text
        self.eol = eol
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.parts = 0

    def entity(self, start: int, end: int, depth: int) -> Message:
        """The part made of the lines ``text[start:end]``, which hold no boundary line of an
        enclosing multipart. A part of a multipart (``depth`` > 0) ends where a boundary
        line starts, and the line end before it belongs to the boundary."""
        self.parts += 1
        if self.parts > self.max_parts or depth > self.max_depth:
            raise _Bail
        message = Message(compat32)
        body = self.headers(message, start, end)
        content_type = message.get_content_type()
        if content_type.startswith("multipart/"):
            epilogue = self.multipart(message, content_type, body, end, depth)
            if not depth:
                message.epilogue = self.text[epilogue:end]
            elif epilogue < end:  # a nested multipart's empty epilogue stays None
                message.epilogue = self.text[epilogue : _chop(self.text, epilogue, end)]
        elif content_type.startswith("message/"):
            raise _Bail
        else:
            message.set_payload(self.text[body : _chop(self.text, body, end) if depth else end])
        return message

    def headers(self, message: Message, start: int, end: int) -> int:
        """Add the fields of the header section at ``start`` to ``message``; returns where
        the body starts (``end`` when there is no blank line)."""
        text, eol = self.text, self.eol
        if text.startswith(eol, start, end):
            return start + len(eol)
        stop = text.find(eol + eol, start, end)
        if stop < 0:
            block, body = text[start:end], end
        else:
            block, body = text[start : stop + len(eol)], stop + 2 * len(eol)
        if not _one_line_end(block, eol):
            raise _Bail
        lines = block.split(eol)
        if not lines[-1]:
            lines.pop()
        name: str | None = None
        value: list[str] = []
        for line in lines:
            if line[:1] in (" ", "\t"):
                if name is None:
                    raise _Bail  # FirstHeaderLineIsContinuationDefect
                value.append(line)
                continue
            if name is not None:
                message.set_raw(name, self.value(value))
            colon = line.find(":")
            if colon < 1 or not _FIELD_NAME.fullmatch(line, 0, colon):
                raise _Bail  # not a header line: a defect, or the body starts early
            name, value = line[:colon], [line[colon + 1 :]]
        if name is not None:
            message.set_raw(name, self.value(value))
        return body

    def value(self, lines: list[str]) -> str:
        """compat32's ``header_source_parse``: the lines joined with their line ends, the
        first left-stripped of blanks, the last line end gone."""
        return self.eol.join(lines).lstrip(" \t").rstrip("\r\n")

    def multipart(
        self, message: Message, content_type: str, body: int, end: int, depth: int
    ) -> int:
        """Attach the parts in ``text[body:end]`` to ``message``; returns where the
        epilogue starts (it runs to ``end``)."""
        if content_type == "multipart/digest":
            raise _Bail  # its parts default to message/rfc822
        boundary = message.get_boundary()
        if boundary is None or not _BOUNDARY.fullmatch(boundary):
            raise _Bail  # NoBoundaryInMultipartDefect, or one we do not match
        encoding = str(message.get("content-transfer-encoding", "8bit")).lower()
        if encoding not in ("7bit", "8bit", "binary"):
            raise _Bail  # InvalidMultipartContentTransferEncodingDefect
        separator = "--" + boundary
        found = self.delimiter(separator, body, end)
        if found is None or found.closing:
            raise _Bail  # StartBoundaryNotFoundDefect
        if found.start > body:
            message.preamble = self.text[body : _chop(self.text, body, found.start)]
        while True:
            if found.after >= end:
                raise _Bail  # a boundary on the last line
            following = self.delimiter(separator, found.after, end)
            if following is None:
                raise _Bail  # CloseBoundaryNotFoundDefect
            if following.start == found.after:
                raise _Bail  # two boundary lines in a row
            message.attach(self.entity(found.after, following.start, depth + 1))
            if following.closing:
                return following.after
            found = following

    def delimiter(self, separator: str, start: int, end: int) -> _Delimiter | None:
        """The first boundary line in ``text[start:end]`` (``start`` starts a line), or None.

        Every ``separator`` in the range is looked at, so one that starts a line only for
        the stdlib (after a stray CR or LF) is seen, and gives up.
        """
        text, eol = self.text, self.eol
        position = text.find(separator, start, end)
        while position >= 0:
            if position == start or (
                position >= len(eol) and text[position - len(eol) : position] == eol
            ):
                line_end = text.find(eol, position, end)
                after = end if line_end < 0 else line_end + len(eol)
                rest = text[position + len(separator) : end if line_end < 0 else line_end]
                tail = rest.rstrip(" \t")
                if tail in ("", "--"):
                    return _Delimiter(position, after, tail == "--")
                if "\r" in rest or "\n" in rest:
                    raise _Bail  # the stdlib's line is shorter, and may be a boundary
            elif text[position - 1] in "\r\n":
                raise _Bail  # a line start for the stdlib only
            position = text.find(separator, position + 1, end)
        return None


def _chop(text: str, start: int, end: int) -> int:
    """Where ``text[start:end]`` ends without its last line end (CRLF, CR or LF), as the
    stdlib's ``NLCRE_eol`` cuts it."""
    if end - start >= 2 and text.startswith("\r\n", end - 2, end):
        return end - 2
    if end > start and text[end - 1] in "\r\n":
        return end - 1
    return end


def _one_line_end(text: str, eol: str) -> bool:
    """Whether every line break in ``text`` is ``eol``."""
    if eol == "\n":
        return "\r" not in text
    crlf = text.count("\r\n")
    return crlf == text.count("\r") and crlf == text.count("\n")


def build_message(raw: bytes, max_parts: int, max_depth: int) -> Message | None:
    """The tree ``BytesParser(policy=compat32).parsebytes(raw)`` gives, or None when ``raw``
    is not plain enough to build it exactly here (see the module docstring).

    >>> build_message(b"Subject: hi\\r\\n\\r\\nbody\\r\\n", 10, 10).get_payload()
    'body\\r\\n'
    >>> build_message(b"Subject: hi\\r\\n\\n\\rbody", 10, 10) is None  # mixed line ends
    True
    """
    first = raw.find(b"\n")
    eol = "\r\n" if first > 0 and raw[first - 1] == 0x0D else "\n"
    text = raw.decode("ascii", "surrogateescape")
    try:
        return _Builder(text, eol, max_parts, max_depth).entity(0, len(text), 0)
    except Exception:  # _Bail, or anything unforeseen: the stdlib parser decides
        return None


# A plain mailbox list (RFC 5322 3.4), the part of it ``getaddresses`` reads verbatim: a
# dot-atom addr-spec, bare or in angle brackets, after a quoted display name (no quoted
# pairs) or a phrase of printable words; no comments, groups, routes or encoded words.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_ADDR_SPEC = rf"{_ATOM}(?:\.{_ATOM})*@{_ATOM}(?:\.{_ATOM})*"
_WORD = r"[!#-'*+\-./0-9=?A-Z^-~]+"  # printable ASCII but specials (not '.') and backslash
_MAILBOX = re.compile(
    rf'[ \t]*(?:"(?P<quoted>[ !#-\[\]-~]*)"[ \t]*<(?P<quoted_addr>{_ADDR_SPEC})>'
    rf"|(?P<phrase>{_WORD}(?:[ \t]+{_WORD})*)[ \t]*<(?P<phrase_addr>{_ADDR_SPEC})>"
    rf"|<(?P<angle_addr>{_ADDR_SPEC})>"
    rf"|(?P<addr>{_ADDR_SPEC}))[ \t]*(?:,|\Z)"
)


def plain_addresses(raws: list[str]) -> tuple[Address, ...] | None:
    """What ``headers.parse_addresses`` gives for address fields that are plain mailbox
    lists, without the stdlib's character-by-character ``getaddresses``; None otherwise.

    >>> plain_addresses(['"Lee, Ann" <ann@x.example>, Bob  Ray <b@y.example>, c@z.example'])
    (Address(name='Lee, Ann', address='ann@x.example'), Address(name='Bob Ray', \
address='b@y.example'), Address(name='', address='c@z.example'))
    >>> plain_addresses(["=?utf-8?q?J=C3=B6rg?= <j@x.example>"]) is None  # encoded word
    True
    """
    found: list[Address] = []
    for raw in raws:
        if not raw.isascii() or "=?" in raw:
            return None
        value = unfold(raw)
        position = 0
        while True:
            match = _MAILBOX.match(value, position)
            if match is None:
                return None
            name = match["quoted"] or match["phrase"] or ""
            address = match["quoted_addr"] or match["phrase_addr"] or match["angle_addr"]
            found.append(Address(" ".join(name.split()), address or match["addr"]))
            position = match.end()
            if position == len(value):
                if value.endswith(","):
                    return None  # a trailing comma: Python versions disagree on it
                break
    return tuple(found)


def clean_base64(part: Message) -> bytes | None:
    """``part.get_payload(decode=True)`` for a base64 part whose text decodes cleanly (no
    padding fix, no defect), several times faster; None for any other part.

    The stdlib joins the payload's lines (the same as deleting every CR and LF: bytes
    split lines at nothing else) and decodes them strictly when the length is a multiple
    of four; that is all this does, without making a bytes object per line.
    """
    if part.is_multipart():
        return None
    if str(part.get("content-transfer-encoding", "")).lower() != "base64":
        return None
    # The payload as parsed; get_payload() would decode 8-bit text in the part's charset
    # (and can fail on an odd one), which is not what decode=True starts from.
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str) or not payload.isascii():
        return None
    encoded = payload.encode("ascii").translate(None, b"\r\n")
    if len(encoded) % 4:
        return None
    try:
        return binascii.a2b_base64(encoded, strict_mode=True)
    except binascii.Error:
        return None


def no_filename(values: list[str]) -> bool:
    """Whether ``get_filename`` surely gives None, raising nothing, for a part with these
    Content-Type and Content-Disposition values: ASCII, no ``name`` in them (so neither a
    ``filename`` nor a ``name`` parameter, RFC 2231 sections included) and no ``*`` (only
    RFC 2231 parameters can make the stdlib's parameter parsing fail).

    >>> no_filename(["text/plain; charset=utf-8", "inline"])
    True
    >>> no_filename(['attachment; filename="a.pdf"'])
    False
    """
    return all(
        value.isascii() and "*" not in value and "name" not in value.lower() for value in values
    )

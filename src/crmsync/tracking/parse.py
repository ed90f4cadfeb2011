"""Parse raw RFC 5322 bytes into what tracking needs: ids, addresses, subject, bodies, files.

For the incoming, outgoing and folder engines, which hand over the raw bytes they fetched
and get a ``ParsedMessage`` back. It parses under ``ParseLimits`` and leniently: a problem
(an unknown charset, a broken encoded word, bad base64, an HTML body too complex to
sanitize) becomes a line in ``ParsedMessage.defects`` and the rest is still parsed.
``MalformedMessage`` is raised only when nothing usable can be had: over ``max_bytes``, no
header section at all, a header section over ``max_header_bytes``, more than ``max_parts``
parts or nesting deeper than ``max_depth``. No other exception ever leaves
``parse_message``.

It must never do I/O, read the clock, log, or put message content into defects or
exception texts (they name headers, parts and charsets only). ``html_body`` is raw and
unsanitized: sanitize (nh3) where it is displayed.

Formats: RFC 5322 (message syntax), RFC 2045/2046 (MIME parts, multipart, base64,
quoted-printable), RFC 2047 (encoded words), RFC 2183 + RFC 2231 (Content-Disposition,
parameter values with charsets and continuations), RFC 3462/6522 (multipart/report),
RFC 3464 (delivery-status), RFC 3834 (Auto-Submitted), RFC 2369/2919 (List-*).

The stdlib ``email`` package does the MIME work, with the compat32 policy (about 4.5x
faster here than ``policy.default``): its raw header strings are decoded by ``headers``.
For plain, well-formed messages (nearly all mail) ``parse_fast`` builds the very same
compat32 tree without the stdlib's line-by-line parser, and stands in for the stdlib on
plain address lists, base64 and parameters; anything else takes the stdlib path. Both
paths give the same ``ParsedMessage`` (tests/unit/tracking/test_parse_fast.py holds them
to it).
"""

from __future__ import annotations

import enum
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email import errors as email_errors
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import Policy, compat32
from email.utils import collapse_rfc2231_value, unquote
from typing import Any

from crmsync.tracking.headers import (
    Address,
    decode_bytes,
    decode_header_text,
    extract_msgids,
    from_raw,
    parse_addresses,
    parse_date,
    printable_name,
    unfold,
)
from crmsync.tracking.htmlscan import too_complex
from crmsync.tracking.htmltext import html_to_text
from crmsync.tracking.parse_fast import (
    build_message,
    clean_base64,
    no_filename,
    plain_addresses,
)

__all__ = [
    "Address",
    "AttachmentPart",
    "MalformedMessage",
    "MalformedReason",
    "ParseLimits",
    "ParsedMessage",
    "extract_msgids",
    "parse_message",
]


class MalformedReason(enum.StrEnum):
    TOO_LARGE = "too_large"
    NO_HEADER = "no_header"
    HEADER_TOO_LARGE = "header_too_large"
    TOO_MANY_PARTS = "too_many_parts"
    TOO_DEEP = "too_deep"
    UNPARSEABLE = "unparseable"


class MalformedMessage(ValueError):
    """Nothing usable could be parsed. ``reason`` is a ``MalformedReason`` value."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_bytes: int = 50_000_000
    max_parts: int = 500
    max_depth: int = 20
    max_header_bytes: int = 1_000_000

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_parts, self.max_depth, self.max_header_bytes) < 1:
            raise ValueError("parse limits must be positive")


@dataclass(frozen=True, slots=True, repr=False)
class AttachmentPart:
    """A non-body part. ``filename`` is '' when the message gives none (e.g. inline images).

    ``content_id`` is without angle brackets (as ``cid:`` URLs use it); ``inline`` is true
    for ``Content-Disposition: inline`` or, without a disposition, when a Content-ID is set.
    """

    filename: str
    content_type: str
    size: int
    data: bytes
    content_id: str | None = None
    inline: bool = False

    def __repr__(self) -> str:
        return f"AttachmentPart(content_type={self.content_type!r}, size={self.size})"


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class ParsedMessage:
    """What tracking needs from one message. Addresses are as written, not normalised.

    The raw values of the headers filters look at are kept as they came (unfolded).
    ``repr`` shows no content, so a ParsedMessage can appear in a log line.
    """

    message_id: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    from_: tuple[Address, ...] = ()
    sender: tuple[Address, ...] = ()
    reply_to: tuple[Address, ...] = ()
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    thread_index: str | None = None
    thread_topic: str | None = None
    auto_submitted: str | None = None
    precedence: str | None = None
    list_id: str | None = None
    list_unsubscribe: str | None = None
    x_autoreply: str | None = None  # X-Autoreply, else X-Autorespond
    return_path: str | None = None
    content_type: str = "text/plain"
    is_report: bool = False
    report_type: str | None = None
    text_body: str = ""
    html_body: str | None = None
    attachments: tuple[AttachmentPart, ...] = ()
    size: int = 0
    defects: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ParsedMessage(message_id={self.message_id!r}, content_type={self.content_type!r},"
            f" size={self.size}, attachments={len(self.attachments)},"
            f" defects={len(self.defects)})"
        )


# fmt: off
_WANTED_HEADERS = frozenset({
    "message-id", "in-reply-to", "references", "subject", "date", "from", "sender", "reply-to",
    "to", "cc", "bcc", "thread-index", "thread-topic", "auto-submitted", "precedence",
    "list-id", "list-unsubscribe", "x-autoreply", "x-autorespond", "return-path",
})
# fmt: on
_BODY_TYPES = frozenset({"text/plain", "text/html"})
_MAX_DEFECTS = 50


class _TooManyParts(Exception):
    pass


class _ParameterCharsetDefect(email_errors.MessageDefect):
    """An RFC 2231 parameter in a charset Python cannot decode it from."""

    def __init__(self, charset: str) -> None:
        super().__init__(charset)
        self.charset = charset


class _Part(Message):
    """A compat32 part whose boundary never fails to be read.

    The stdlib decodes an RFC 2231 ``boundary*=charset''...`` with that charset, and a
    codec such as idna or punycode raises (they allow no error handler but 'strict'),
    which would fail the whole message. Then, as the stdlib does for a charset it does not
    know, the boundary is the parameter's text, and the part has a defect.
    """

    def get_boundary(self, failobj: Any = None) -> Any:
        try:
            return super().get_boundary(failobj)
        except (UnicodeError, ValueError, TypeError, LookupError):
            value = self.get_param("boundary")
            if not isinstance(value, tuple):
                return failobj
            self.defects.append(_ParameterCharsetDefect(str(value[0])))
            return unquote(value[2]).rstrip()


def _counting_factory(limit: int) -> Callable[[], Message]:
    """A message factory for the parser that stops it once it has made ``limit`` parts."""
    made = 0

    def factory(policy: Policy = compat32) -> Message:
        nonlocal made
        made += 1
        if made > limit:
            raise _TooManyParts
        return _Part(policy)

    return factory


def _defect_text(defect: email_errors.MessageDefect, where: str) -> str:
    if isinstance(defect, _ParameterCharsetDefect):
        return f"unknown charset {printable_name(defect.charset)} in {where}"
    return f"{type(defect).__name__} in {where}"


def _where(index: int) -> str:
    return "message" if index == 1 else f"part {index}"


def _header_bytes(part: Message) -> int:
    return sum(len(name) + len(str(value)) + 2 for name, value in part.raw_items())


def _walk(message: Message, limits: ParseLimits) -> Iterator[tuple[int, Message, str, bool]]:
    """Every part in document order: (number, part, content type, inside an attached message).

    Checks the part, depth and per-part header limits as it goes.
    """
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    index = 0
    while stack:
        part, depth, attached = stack.pop()
        index += 1
        if index > limits.max_parts:
            raise MalformedMessage(MalformedReason.TOO_MANY_PARTS, f"over {limits.max_parts}")
        if depth > limits.max_depth:
            raise MalformedMessage(MalformedReason.TOO_DEEP, f"over {limits.max_depth}")
        if _header_bytes(part) > limits.max_header_bytes:
            raise MalformedMessage(MalformedReason.HEADER_TOO_LARGE, _where(index))
        content_type = part.get_content_type()
        yield index, part, content_type, attached
        if part.is_multipart():
            inner = attached or content_type.startswith("message/")
            children = _children(part)
            stack.extend((child, depth + 1, inner) for child in reversed(children))


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _flatten(parts: list[Message]) -> bytes:
    out = io.BytesIO()
    policy = compat32.clone(linesep="\r\n", max_line_length=0)
    generator = BytesGenerator(out, mangle_from_=False, policy=policy)
    for part in parts:
        generator.flatten(part)
    return out.getvalue()


def _raw_header(part: Message, name: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def _filename(part: Message, where: str, defects: list[str], fast: bool) -> str | None:
    """The decoded filename (RFC 2231 and, as Outlook writes them, RFC 2047), or None."""
    source = part
    raws = [
        (key, str(value))
        for key, value in part.raw_items()
        if key.lower() in ("content-disposition", "content-type")
    ]
    if fast and no_filename([value for _, value in raws]):
        return None
    if any(not value.isascii() for _, value in raws):
        source = Message()  # raw 8-bit parameters: decode them before the stdlib sees them
        for key, value in raws:
            source[key] = from_raw(unfold(value), where, defects)
    try:
        name = source.get_filename()
    except Exception:
        defects.append(f"unparseable filename in {where}")
        return None
    if name is None:
        return None
    if "=?" in name:
        name = decode_header_text(name, where, defects)
    name = "".join(ch for ch in name if ch >= " " and ch != "\x7f").strip()
    return name or None


def _payload(part: Message, where: str, defects: list[str], fast: bool) -> bytes:
    if fast and (clean := clean_base64(part)) is not None:
        return clean
    before = len(part.defects)
    data = part.get_payload(decode=True)
    for defect in part.defects[before:]:
        if isinstance(
            defect,
            email_errors.InvalidBase64CharactersDefect
            | email_errors.InvalidBase64PaddingDefect
            | email_errors.InvalidBase64LengthDefect,
        ):
            defects.append(f"bad base64 in {where}")
        else:
            defects.append(f"{type(defect).__name__} in {where}")
    return data if isinstance(data, bytes) else b""


class _Bodies:
    """Collects the text body, the HTML body and the attachments while walking the parts."""

    def __init__(self, defects: list[str], fast: bool) -> None:
        self.defects = defects
        self.fast = fast
        self.text: str | None = None
        self.html: str | None = None
        self.attachments: list[AttachmentPart] = []

    def add(self, index: int, part: Message, content_type: str) -> None:
        where = _where(index)
        if content_type.startswith("multipart/"):
            self.defects.append(f"multipart without boundary in {where}")
            content_type = "text/plain"
        filename = _filename(part, where, self.defects, self.fast)
        disposition = part.get_content_disposition()
        is_body_type = content_type in _BODY_TYPES and filename is None
        if is_body_type and disposition != "attachment":
            if content_type == "text/plain" and self.text is None:
                self.text = self._text(part, where)
            elif content_type == "text/html" and self.html is None:
                self.html = self._text(part, where)
            return
        if filename is None and content_type.startswith("text/") and disposition != "attachment":
            return  # neither a body nor a file: a second inline text part, a calendar part
        data = _payload(part, where, self.defects, self.fast)
        self._attach(part, filename, content_type, disposition, data)

    def add_attached_message(self, index: int, part: Message, content_type: str) -> None:
        """A message/* part (rfc822, delivery-status): one attachment of its content."""
        where = _where(index)
        try:
            data = _flatten(_children(part))
        except Exception:
            self.defects.append(f"attached message not serializable in {where}")
            data = b""
        filename = _filename(part, where, self.defects, self.fast)
        self._attach(part, filename, content_type, part.get_content_disposition(), data)

    def _attach(
        self,
        part: Message,
        filename: str | None,
        content_type: str,
        disposition: str | None,
        data: bytes,
    ) -> None:
        raw_id = _raw_header(part, "content-id")
        content_id = unfold(raw_id).strip().strip("<>").strip() if raw_id else ""
        inline = disposition == "inline" or (disposition is None and bool(content_id))
        self.attachments.append(
            AttachmentPart(
                filename=filename or "",
                content_type=content_type,
                size=len(data),
                data=data,
                content_id=content_id or None,
                inline=inline,
            )
        )

    def _text(self, part: Message, where: str) -> str:
        data = _payload(part, where, self.defects, self.fast)
        text = decode_bytes(data, part.get_content_charset(), where, self.defects)
        return text.replace("\r\n", "\n")


def _dedupe(defects: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(defects))[:_MAX_DEFECTS]


def _message(raw: bytes, limits: ParseLimits, fast: bool) -> Message:
    if fast:
        message = build_message(raw, limits.max_parts, limits.max_depth)
        if message is not None:
            return message
    parser = BytesParser(_counting_factory(limits.max_parts + 1), policy=compat32)
    try:
        return parser.parsebytes(raw)
    except _TooManyParts:
        raise MalformedMessage(MalformedReason.TOO_MANY_PARTS, f"over {limits.max_parts}") from None


def _parse(raw: bytes, limits: ParseLimits, fast: bool) -> ParsedMessage:
    message = _message(raw, limits, fast)
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = name.strip().lower()
        if key in _WANTED_HEADERS:
            headers.setdefault(key, []).append(str(value))
    if not message.keys():
        raise MalformedMessage(MalformedReason.NO_HEADER)

    defects: list[str] = []
    bodies = _Bodies(defects, fast)
    for index, part, part_type, attached in list(_walk(message, limits)):
        defects.extend(_defect_text(defect, _where(index)) for defect in part.defects)
        if attached:
            continue
        if part_type.startswith("message/") and part.is_multipart():
            bodies.add_attached_message(index, part, part_type)
        elif not part.is_multipart():
            bodies.add(index, part, part_type)

    def first(name: str) -> str | None:
        values = headers.get(name)
        return values[0] if values else None

    def flag(*names: str) -> str | None:
        for name in names:
            value = first(name)
            if value is not None:
                return from_raw(unfold(value), name, defects).strip()
        return None

    def text(name: str) -> str | None:
        value = first(name)
        return None if value is None else decode_header_text(value, name, defects).strip()

    def addresses(name: str) -> tuple[Address, ...]:
        raws = headers.get(name, [])
        plain = plain_addresses(raws) if fast and raws else None
        return plain if plain is not None else parse_addresses(raws, name, defects)

    def msgids(name: str) -> tuple[str, ...]:
        value = first(name)
        return () if value is None else extract_msgids(from_raw(value, name, defects))

    content_type = message.get_content_type()
    report_type = None
    if content_type == "multipart/report":
        param = message.get_param("report-type")
        try:
            report_type = collapse_rfc2231_value(param).strip().lower() if param else None
        except (UnicodeError, ValueError, TypeError, LookupError):  # see _Part
            defects.append("undecodable report-type in message")
    html = bodies.html
    if html and (why := too_complex(html)) is not None:
        defects.append(f"HTML body {why}: shown as text")
    return ParsedMessage(
        message_id=next(iter(msgids("message-id")), None),
        in_reply_to=next(iter(msgids("in-reply-to")), None),
        references=msgids("references"),
        subject=text("subject") or "",
        date=parse_date(first("date"), defects),
        from_=addresses("from"),
        sender=addresses("sender"),
        reply_to=addresses("reply-to"),
        to=addresses("to"),
        cc=addresses("cc"),
        bcc=addresses("bcc"),
        thread_index=flag("thread-index"),
        thread_topic=text("thread-topic"),
        auto_submitted=flag("auto-submitted"),
        precedence=flag("precedence"),
        list_id=flag("list-id"),
        list_unsubscribe=flag("list-unsubscribe"),
        x_autoreply=flag("x-autoreply", "x-autorespond"),
        return_path=flag("return-path"),
        content_type=content_type,
        is_report=content_type == "multipart/report",
        report_type=report_type or None,
        text_body=bodies.text if bodies.text is not None else html_to_text(html or ""),
        html_body=html,
        attachments=tuple(bodies.attachments),
        size=len(raw),
        defects=_dedupe(defects),
    )


def parse_message(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMessage:
    """Parse one message; raises only ``MalformedMessage``.

    >>> parse_message(b"Subject: =?utf-8?q?caf=C3=A9?=\\r\\n\\r\\nhi").subject
    'café'
    """
    return _parse_message(raw, limits, fast=True)


def _parse_message(raw: bytes, limits: ParseLimits, *, fast: bool) -> ParsedMessage:
    """``parse_message``; with ``fast=False`` the stdlib parser builds every tree (the
    reference the differential tests hold ``parse_fast`` to)."""
    if len(raw) > limits.max_bytes:
        raise MalformedMessage(MalformedReason.TOO_LARGE, f"{len(raw)} > {limits.max_bytes}")
    try:
        return _parse(raw if type(raw) is bytes else bytes(raw), limits, fast)
    except MalformedMessage:
        raise
    except RecursionError:
        raise MalformedMessage(MalformedReason.TOO_DEEP, "nesting exhausted the parser") from None
    except Exception as exc:  # the stdlib's own failures never leave as themselves
        raise MalformedMessage(MalformedReason.UNPARSEABLE, type(exc).__name__) from None

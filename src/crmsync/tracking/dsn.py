"""Delivery status notifications (bounces): which message they report on, who failed, why.

What it is for: a bounce arriving in a mailbox names the email it reports on and the
recipients it could not reach; crmsync.sync.incoming.bounces finds that email and marks it.
``parse_dsn`` reads the raw bytes; ``report_from_parsed`` does what it can from a
``ParsedMessage`` when the raw bytes are not at hand (``parse`` keeps the
delivery-status and an attached message as attachments, but not a text/rfc822-headers
part).

What it must never do: raise (anything unreadable gives fewer facts, or None), do I/O,
read the clock, or put message content into anything but the returned fields.

Formats relied on:
- RFC 3462/6522 ``multipart/report; report-type=delivery-status``: a human-readable
  part, a ``message/delivery-status`` part, and the returned message
  (``message/rfc822``) or only its header (``text/rfc822-headers``).
- RFC 3464 §2.2-2.3: the delivery-status part is a per-message block followed by one
  block per recipient, blank-line separated, each a header section: ``Final-Recipient:
  rfc822; bob@example.test``, ``Action: failed|delayed|delivered|relayed|expanded``,
  ``Status: 5.1.1`` (RFC 3463), ``Diagnostic-Code: smtp; 550 5.1.1 User unknown``.
- RFC 6533: the UTF-8 variants ``message/global-delivery-status``, ``message/global``
  and ``message/global-headers``.
- Non-standard bounces: Exim's ``X-Failed-Recipients`` header; a returned header block
  quoted in the body text (``Message-ID: <...>``), as qmail and others do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

from crmsync.tracking.headers import decode_header_text, extract_msgids, unfold
from crmsync.tracking.parse import ParsedMessage

__all__ = ["DeliveryReport", "RecipientStatus", "parse_dsn", "report_from_parsed"]

STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
RETURNED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
RETURNED_HEADER_TYPES = frozenset(
    {"text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
_RETURNED_TYPES = RETURNED_MESSAGE_TYPES | RETURNED_HEADER_TYPES
MAX_RECIPIENTS = 100
MAX_TEXT = 2000
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.M)
_BLANK_LINE = re.compile(r"\r?\n[ \t]*\r?\n")


@dataclass(frozen=True, slots=True)
class RecipientStatus:
    """One recipient block: ``RecipientStatus('bob@example.test', 'failed', '5.1.1',
    'smtp; 550 5.1.1 <bob@example.test>: User unknown')``."""

    recipient: str
    action: str
    status: str
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        """A permanent failure: ``Action: failed``, or a 5.x.x status without an action."""
        return self.action == "failed" or (not self.action and self.status.startswith("5."))


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What a bounce says. ``message_ids`` are the ids that may name the original, best
    first: the returned header's Message-ID, then the bounce's own In-Reply-To and
    References (some servers thread bounces), then ids quoted in the body text."""

    message_ids: tuple[str, ...]
    original_subject: str
    recipients: tuple[RecipientStatus, ...]
    reporting_mta: str = ""

    @property
    def failures(self) -> tuple[RecipientStatus, ...]:
        return tuple(recipient for recipient in self.recipients if recipient.failed)


def _clean(value: str | None) -> str:
    return " ".join(unfold(value or "").split())[:MAX_TEXT]


def _typed_value(value: str | None) -> str:
    """``'rfc822; Bob@Example.test'`` → ``'Bob@Example.test'`` (the address-type dropped)."""
    text = _clean(value)
    kind, semicolon, rest = text.partition(";")
    return (rest if semicolon else kind).strip().strip("<>").strip()


def _status(value: str | None) -> str:
    match = _STATUS.search(value or "")
    return ".".join(match.groups()) if match else ""


def _message_text(message: Message) -> str:
    head = "".join(f"{name}: {value}\n" for name, value in message.items())
    body = message.get_payload()
    return head + ("\n" + body if isinstance(body, str) and body.strip() else "")


def _blocks_of(part: Message) -> list[Message]:
    """The header blocks of a delivery-status part, however the parser left them: a list
    of blocks (message/delivery-status), one message whose body holds the recipient
    blocks (message/global-delivery-status is parsed like message/rfc822), or text."""
    payload = part.get_payload()
    if isinstance(payload, list):
        text = "\n\n".join(_message_text(p) for p in payload if isinstance(p, Message))
    else:
        data = part.get_payload(decode=True)
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload or "")
    return _blocks_from_text(text)


def _blocks_from_text(text: str) -> list[Message]:
    parser = HeaderParser(policy=compat32)
    return [parser.parsestr(block.strip() + "\n") for block in _BLANK_LINE.split(text)]


def _recipients(blocks: list[Message]) -> list[RecipientStatus]:
    found: list[RecipientStatus] = []
    for block in blocks:
        recipient = _typed_value(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if not recipient:
            continue  # the per-message block, or an empty one
        action = _clean(block.get("Action")).lower()
        diagnostic = _clean(block.get("Diagnostic-Code"))
        status = _status(block.get("Status")) or _status(diagnostic)
        found.append(RecipientStatus(recipient, action, status, diagnostic))
        if len(found) >= MAX_RECIPIENTS:
            break
    return found


def _reporting_mta(blocks: list[Message]) -> str:
    return next(
        (_typed_value(b.get("Reporting-MTA")) for b in blocks if b.get("Reporting-MTA")), ""
    )


def _ids_of(header: Message | None) -> tuple[list[str], str]:
    """(Message-ID of a returned header section, its decoded Subject)."""
    if header is None:
        return [], ""
    ids = list(extract_msgids(str(header.get("Message-ID") or "")))[:1]
    subject = decode_header_text(str(header.get("Subject") or ""), "subject", [])
    return ids, _clean(subject)


def _failed_header(value: str | None) -> list[RecipientStatus]:
    addresses = [a.strip().strip("<>") for a in _clean(value).split(",")]
    return [RecipientStatus(a, "failed", "", "") for a in addresses if "@" in a]


def _assemble(
    returned_ids: list[str],
    own_ids: Iterable[str],
    body_text: str,
    subject: str,
    recipients: list[RecipientStatus],
    reporting_mta: str,
) -> DeliveryReport:
    quoted = _QUOTED_MESSAGE_ID.findall(body_text[:200_000])
    ordered = [*returned_ids, *own_ids, *quoted]
    ids = tuple(dict.fromkeys(i for msgid in ordered for i in extract_msgids(msgid)))
    return DeliveryReport(ids, subject, tuple(recipients[:MAX_RECIPIENTS]), reporting_mta)


def _walk(message: Message) -> Iterable[Message]:
    """Parts in document order, not descending into returned messages."""
    stack = [message]
    while stack:
        part = stack.pop()
        yield part
        content_type = part.get_content_type()
        if part.is_multipart() and content_type.startswith("multipart/"):
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


class _Collector:
    """Gathers the facts of a bounce part by part; a part that cannot be read is skipped."""

    def __init__(self) -> None:
        self.recipients: list[RecipientStatus] = []
        self.reporting_mta = ""
        self.returned_ids: list[str] = []
        self.subject = ""
        self.body_text = ""

    def add(self, part: Message) -> None:
        content_type = part.get_content_type()
        if content_type in STATUS_TYPES:
            blocks = _blocks_of(part)
            self.recipients.extend(_recipients(blocks))
            self.reporting_mta = self.reporting_mta or _reporting_mta(blocks)
        elif content_type in RETURNED_MESSAGE_TYPES and not self.returned_ids:
            payload = part.get_payload()
            inner = payload[0] if isinstance(payload, list) and payload else None
            self.returned_ids, self.subject = _ids_of(inner if isinstance(inner, Message) else None)
        elif content_type in RETURNED_HEADER_TYPES and not self.returned_ids:
            header = HeaderParser(policy=compat32).parsestr(_decoded(part))
            self.returned_ids, self.subject = _ids_of(header)
        elif content_type == "text/plain" and not self.body_text:
            self.body_text = _decoded(part)


def _decoded(part: Message) -> str:
    data = part.get_payload(decode=True)
    return data.decode("utf-8", "replace") if isinstance(data, bytes) else ""


def parse_dsn(raw: bytes) -> DeliveryReport | None:
    """The report in a bounce's raw bytes, or None when it names no original message.

    Never raises: unreadable parts are skipped.
    """
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception:
        return None
    found = _Collector()
    for part in _walk(message):
        with contextlib.suppress(Exception):
            found.add(part)
    recipients = found.recipients or _failed_header(message.get("X-Failed-Recipients"))
    own = [*extract_msgids(str(message.get("In-Reply-To") or ""))]
    own += reversed(extract_msgids(str(message.get("References") or "")))
    report = _assemble(
        found.returned_ids, own, found.body_text, found.subject, recipients, found.reporting_mta
    )
    return report if report.message_ids else None


def report_from_parsed(parsed: ParsedMessage) -> DeliveryReport | None:
    """The report as far as a ``ParsedMessage`` tells it (no text/rfc822-headers part)."""
    recipients: list[RecipientStatus] = []
    reporting_mta = ""
    returned_ids: list[str] = []
    subject = ""
    for attachment in parsed.attachments:
        # Only these two kinds are read: other attachments (PDFs, ...) are not decoded.
        if attachment.content_type in STATUS_TYPES:
            blocks = _blocks_from_text(attachment.data.decode("utf-8", "replace"))
            recipients.extend(_recipients(blocks))
            reporting_mta = reporting_mta or _reporting_mta(blocks)
        elif attachment.content_type in _RETURNED_TYPES and not returned_ids:
            text = attachment.data.decode("utf-8", "replace")
            header_text = _BLANK_LINE.split(text, maxsplit=1)[0]
            returned_ids, subject = _ids_of(HeaderParser(policy=compat32).parsestr(header_text))
    own = [parsed.in_reply_to] if parsed.in_reply_to else []
    own += reversed(parsed.references)
    report = _assemble(returned_ids, own, parsed.text_body, subject, recipients, reporting_mta)
    return report if report.message_ids else None

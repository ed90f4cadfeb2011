"""The MIME message of an outgoing CRM email, built from plain values: pure, no I/O.

What it is for: the outgoing engine (crmsync.sync.outgoing) gathers an email's parts —
the sending mailbox, resolved recipients, subject, bodies, attachment bytes, the tracked
email it answers, its Message-ID and tracking token, the time — into a ``Draft``;
``compose`` turns that into the exact bytes handed to SMTP and appended to the Sent
folder, with the envelope (sender and every recipient, Bcc included).

What it must never do: put a Bcc recipient into a header (Bcc lives in the envelope
only); let a line break from a name, file name or subject into a header (header
injection: control characters become spaces); send HTML that nh3 has not cleaned; read
the clock, make up ids or do I/O (time, ids and bytes are passed in, so the same draft
gives the same bytes); log or raise with message content in the text.

Formats relied on:
- RFC 5322 §3.6.4: ``In-Reply-To`` is the parent's Message-ID; ``References`` is the
  parent's References (else its In-Reply-To) followed by the parent's Message-ID — kept
  to the first id and the last ``MAX_REFERENCES - 1`` so the header stays short.
- RFC 2045-2047, 2183, 2231 through the stdlib ``email`` package with the SMTP policy
  and 7-bit transfer encodings, so any relay takes the message:
  ``multipart/mixed`` ⊃ ``multipart/alternative`` (text/plain, text/html) + attachments
  (a message without HTML or attachments is a single text/plain part).
- RFC 6531/6532: when an address is not ASCII the header section is UTF-8 and
  ``Composed.smtputf8`` is set (the SMTP connector then asks for SMTPUTF8).
- ``token``: the tracking token ends the subject; any older token of the same format
  (from the subject of the email answered) is removed first, and the subject is
  shortened on a grapheme boundary so that subject and token fit ``max_subject`` (255).
- ``threadindex``: Outlook's Thread-Index — a child of the parent's when it has a valid
  one, else a new conversation whose GUID is derived from the Message-ID (UUIDv5), so
  a retry of the same email starts the same conversation.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email import policy as email_policy
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime

import nh3

from crmsync.core.addresses import normalise_address
from crmsync.tracking.headers import Address
from crmsync.tracking.htmltext import html_to_text
from crmsync.tracking.threadindex import child_thread_index, conversation_guid, new_thread_index
from crmsync.tracking.token import TokenFormat, strip_token, subject_with_token

__all__ = [
    "MAX_REFERENCES",
    "ComposeError",
    "Composed",
    "Draft",
    "OutgoingAttachment",
    "Parent",
    "compose",
    "outgoing_subject",
    "reply_references",
]

MAX_SUBJECT = 255
MAX_REFERENCES = 20


class _HeaderClasses(HeaderRegistry):
    """The stdlib registry, remembering the header class it makes per name: it builds a
    new class with ``type()`` on every header otherwise (a third of composing)."""

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


_SMTP_7BIT = email_policy.SMTP.clone(cte_type="7bit", header_factory=_HeaderClasses())
_SMTP_UTF8 = email_policy.SMTPUTF8.clone(cte_type="7bit", header_factory=_HeaderClasses())
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_MSGID = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


class ComposeError(ValueError):
    """The draft cannot become a message; ``reason`` names the field, never its content."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, repr=False)
class OutgoingAttachment:
    """A file to attach; ``content_id`` without brackets makes it addressable as ``cid:``."""

    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False

    def __repr__(self) -> str:
        return f"OutgoingAttachment(content_type={self.content_type!r}, size={len(self.data)})"


@dataclass(frozen=True, slots=True)
class Parent:
    """The tracked email this one answers: its ids and Outlook Thread-Index."""

    message_id: str
    references: tuple[str, ...] = ()
    in_reply_to: str | None = None
    thread_index: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Draft:
    """Everything an outgoing message is made of.

    ``sender`` is the mailbox's address with its owner's display name; ``bcc`` goes to the
    envelope only. ``thread_index`` is the value of an earlier attempt of the same email
    (reused as is); without it one is derived from ``parent`` or the Message-ID.
    """

    sender: Address
    to: tuple[Address, ...] = ()
    cc: tuple[Address, ...] = ()
    bcc: tuple[Address, ...] = ()
    subject: str = ""
    text: str = ""
    html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()
    message_id: str
    date: datetime
    token: str | None = None
    token_format: TokenFormat = field(default_factory=TokenFormat)
    parent: Parent | None = None
    thread_index: str | None = None
    max_subject: int = MAX_SUBJECT

    def __repr__(self) -> str:
        return (
            f"Draft(message_id={self.message_id!r}, recipients="
            f"{len(self.to) + len(self.cc) + len(self.bcc)}, attachments={len(self.attachments)})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class Composed:
    """The bytes to send and the envelope to send them with.

    ``recipients`` is To, Cc and Bcc in that order, each address once (compared
    normalised). ``references`` is what the References header says (empty when none).
    """

    raw: bytes
    subject: str
    message_id: str
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_index: str
    conversation_guid: str | None
    envelope_from: str
    recipients: tuple[str, ...]
    smtputf8: bool

    def __repr__(self) -> str:
        return f"Composed(message_id={self.message_id!r}, size={len(self.raw)})"


def _one_line(text: str) -> str:
    """``text`` with control characters (line breaks included) as single spaces, trimmed."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _bare(address: str) -> str:
    """``' <ann@x.example>'`` → ``'ann@x.example'``: the address as the envelope takes it."""
    return address.strip().strip("<>")


def is_message_id(value: str) -> bool:
    """``'<a1@example.test>'`` → True; no brackets, spaces or a second ``@`` → False."""
    return bool(_MSGID.fullmatch(value))


def outgoing_subject(
    subject: str,
    token: str | None,
    fmt: TokenFormat = TokenFormat(),
    max_length: int = MAX_SUBJECT,
) -> str:
    """The subject as sent: one line, ending with ``token`` when there is one.

    ``outgoing_subject('RE: Quote CRM:0000007', 'CRM:0000042')`` → ``'RE: Quote CRM:0000042'``.
    """
    line = _one_line(subject)
    if token is None:
        return line
    return subject_with_token(strip_token(line, fmt), token, max_length)


def reply_references(parent: Parent) -> tuple[str, ...]:
    """The References of a reply to ``parent`` (RFC 5322 §3.6.4), at most MAX_REFERENCES.

    ``Parent('<c@x>', references=('<a@x>', '<b@x>'))`` → ``('<a@x>', '<b@x>', '<c@x>')``.
    """
    chain = list(parent.references) or ([parent.in_reply_to] if parent.in_reply_to else [])
    chain.append(parent.message_id)
    unique = list(dict.fromkeys(item for item in chain if is_message_id(item)))
    if len(unique) > MAX_REFERENCES:
        unique = [unique[0], *unique[-(MAX_REFERENCES - 1) :]]
    return tuple(unique)


def _thread_index(draft: Draft) -> str:
    if draft.thread_index and conversation_guid(draft.thread_index):
        return draft.thread_index
    parent_index = draft.parent.thread_index if draft.parent else None
    if parent_index and conversation_guid(parent_index):
        return child_thread_index(parent_index, draft.date)
    return new_thread_index(draft.date, uuid.uuid5(uuid.NAMESPACE_URL, draft.message_id))


def _header_address(entry: Address, where: str) -> HeaderAddress:
    local, at, domain = _bare(entry.address).rpartition("@")
    if not at or not local or not domain or normalise_address(entry.address) is None:
        raise ComposeError(f"{where} is not an email address")
    try:
        return HeaderAddress(display_name=_one_line(entry.name), username=local, domain=domain)
    except (ValueError, TypeError) as exc:
        raise ComposeError(f"{where} is not an email address") from exc


def _envelope(groups: Iterable[tuple[str, tuple[Address, ...]]]) -> tuple[str, ...]:
    seen: set[str] = set()
    recipients: list[str] = []
    for where, group in groups:
        for position, entry in enumerate(group):
            key = normalise_address(entry.address)
            if key is None:
                raise ComposeError(f"{where}.{position} is not an email address")
            if key not in seen:
                seen.add(key)
                recipients.append(_bare(entry.address))
    return tuple(recipients)


def _attach(message: EmailMessage, attachment: OutgoingAttachment, position: int) -> None:
    content_type = attachment.content_type.strip().lower()
    if not _CONTENT_TYPE.fullmatch(content_type) or content_type.startswith("multipart/"):
        content_type = "application/octet-stream"
    maintype, _, subtype = content_type.partition("/")
    filename = _one_line(attachment.filename).replace('"', "'") or f"attachment-{position + 1}"
    cid = _one_line(attachment.content_id or "").strip("<>")
    message.add_attachment(
        attachment.data,
        maintype=maintype,
        subtype=subtype,
        filename=filename,
        disposition="inline" if attachment.inline else "attachment",
        cid=f"<{cid}>" if cid and is_message_id(f"<{cid}>") else None,
    )


def compose(draft: Draft) -> Composed:
    """The message for ``draft``; raises ``ComposeError`` when it cannot be one."""
    if not is_message_id(draft.message_id):
        raise ComposeError("message_id is not a <left@right> msg-id")
    if draft.date.tzinfo is None:
        raise ComposeError("date must be timezone-aware")
    recipients = _envelope((("to", draft.to), ("cc", draft.cc), ("bcc", draft.bcc)))
    if not recipients:
        raise ComposeError("a message needs a To, Cc or Bcc recipient")
    envelope_from = _bare(draft.sender.address)
    every_address = [envelope_from, *recipients]
    smtputf8 = not all(address.isascii() for address in every_address)
    policy = _SMTP_UTF8 if smtputf8 else _SMTP_7BIT

    subject = outgoing_subject(draft.subject, draft.token, draft.token_format, draft.max_subject)
    references = reply_references(draft.parent) if draft.parent else ()
    in_reply_to = draft.parent.message_id if draft.parent else None
    if in_reply_to is not None and not is_message_id(in_reply_to):
        in_reply_to, references = None, ()
    thread_index = _thread_index(draft)

    message = EmailMessage(policy=policy)
    message["From"] = _header_address(draft.sender, "sender")
    if draft.to:
        message["To"] = [_header_address(a, f"to.{i}") for i, a in enumerate(draft.to)]
    if draft.cc:
        message["Cc"] = [_header_address(a, f"cc.{i}") for i, a in enumerate(draft.cc)]
    message["Subject"] = subject
    message["Date"] = format_datetime(draft.date)
    message["Message-ID"] = draft.message_id
    if in_reply_to is not None:
        message["In-Reply-To"] = in_reply_to
        message["References"] = " ".join(references)
    message["Thread-Index"] = thread_index

    html = nh3.clean(draft.html) if draft.html and draft.html.strip() else None
    text = draft.text if draft.text.strip() or html is None else html_to_text(html)
    message.set_content(text.replace("\r\n", "\n"), subtype="plain", charset="utf-8")
    if html is not None:
        message.add_alternative(html, subtype="html", charset="utf-8")
    for position, attachment in enumerate(draft.attachments):
        _attach(message, attachment, position)
    return Composed(
        raw=message.as_bytes(policy=policy),
        subject=subject,
        message_id=draft.message_id,
        in_reply_to=in_reply_to,
        references=references,
        thread_index=thread_index,
        conversation_guid=conversation_guid(thread_index),
        envelope_from=envelope_from,
        recipients=recipients,
        smtputf8=smtputf8,
    )

"""Which email to track: the mailbox owner's scope, automated mail, blocked senders.

``decide`` is the last step before an incoming email becomes an activity. Its inputs
are facts the engine gathered (was it correlated, what records the sender is, is it
automated, is the sender blocked); its ``TrackDecision.reason`` is a short stable phrase a
person reads in the item's history. Automated and blocked mail is never tracked, even when
correlated; bounces come back as ``TrackDecision(False, "automated: bounce")`` so the
caller can route them to the outgoing email they report on.

Pure: no I/O, no clock, never logs message content. Signals relied on:
RFC 3834 (``Auto-Submitted``), RFC 3464/6522 (multipart/report; report-type
delivery-status), RFC 2369/2919 (``List-Unsubscribe``, ``List-Id``), the de-facto
``Precedence: bulk|list|junk|auto_reply`` and ``X-Autoreply``/``X-Autorespond``, and the
null reverse-path ``Return-Path: <>`` (RFC 5321 4.5.5) of delivery notifications.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass

from crmsync.core.addresses import normalise_address
from crmsync.core.types import RecordType
from crmsync.tracking.parse import ParsedMessage

__all__ = [
    "AUTOMATED_PREFIX",
    "BOUNCE",
    "BlockList",
    "TrackDecision",
    "TrackingScope",
    "automation_reason",
    "decide",
    "sender_reason",
]


class TrackingScope(enum.StrEnum):
    ALL = "all"
    REPLIES_TO_CRM = "replies_to_crm"  # the default
    FROM_CRM_RECORDS = "from_crm_records"  # leads, contacts, accounts
    FROM_EMAIL_ENABLED = "from_email_enabled"  # any email-enabled record: also users, queues
    NONE = "none"


# automation_reason values
AUTO_SUBMITTED = "auto-submitted"
AUTO_REPLY = "auto-reply"
BOUNCE = "bounce"
MAILING_LIST = "mailing-list"
AUTOMATED_PREFIX = "automated: "

# decide reasons; a sender's is sender_reason(type), e.g. "sender is a contact"
CORRELATED = "correlated to a tracked email"
ALL_TRACKED = "all email is tracked"
NOT_A_REPLY = "not a reply to CRM email"
NOT_FROM_CRM_RECORD = "sender is not a lead, contact or account"
NOT_FROM_EMAIL_ENABLED = "sender is not a CRM record"
SENDER_BLOCKED = "sender blocked"
DISABLED = "tracking disabled"

CRM_RECORD_SENDERS = (RecordType.CONTACT, RecordType.ACCOUNT, RecordType.LEAD)
EMAIL_ENABLED_SENDERS = (*CRM_RECORD_SENDERS, RecordType.USER, RecordType.QUEUE)

_AN = frozenset({RecordType.ACCOUNT, RecordType.OPPORTUNITY, RecordType.EMAIL})
_DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|returned mail|"
    r"failure notice|mail delivery (failed|system)|non[- ]?remis|unzustellbar|"
    r"nicht zugestellt",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TrackDecision:
    track: bool
    reason: str


def _value(raw: str | None) -> str:
    return (raw or "").strip().lower()


def _is_bounce(msg: ParsedMessage) -> bool:
    if msg.is_report and msg.report_type == "delivery-status":
        return True
    from_daemon = any(
        address.address.strip().strip("<>").lower().partition("@")[0] in _DAEMONS
        for address in msg.from_
    )
    null_sender = _value(msg.return_path).replace(" ", "") == "<>"
    looks_like_dsn = msg.is_report or bool(_BOUNCE_SUBJECT.search(msg.subject))
    return (from_daemon or null_sender) and looks_like_dsn


def automation_reason(msg: ParsedMessage) -> str | None:
    """Why ``msg`` was sent by a program, or None for a person's email.

    ``'bounce'``, ``'auto-reply'``, ``'auto-submitted'`` or ``'mailing-list'``, checked in
    that order (a bounce is auto-submitted too, and must be told apart).
    """
    if _is_bounce(msg):
        return BOUNCE
    auto_submitted = _value(msg.auto_submitted).partition(";")[0].strip()
    precedence = _value(msg.precedence)
    autoreply = _value(msg.x_autoreply)
    if auto_submitted == "auto-replied" or precedence == "auto_reply":
        return AUTO_REPLY
    if autoreply and autoreply not in ("no", "false", "0"):
        return AUTO_REPLY
    if auto_submitted and auto_submitted != "no":
        return AUTO_SUBMITTED
    if msg.list_id or msg.list_unsubscribe or precedence in ("list", "bulk", "junk"):
        return MAILING_LIST
    return None


def _domain(value: str) -> str | None:
    normalised = normalise_address("x@" + value.strip().lstrip("@").removeprefix("*."))
    return normalised.partition("@")[2] if normalised else None


def _addresses(values: Iterable[str]) -> frozenset[str]:
    return frozenset(n for n in (normalise_address(v) for v in values) if n)


def _domains(values: Iterable[str]) -> frozenset[str]:
    return frozenset(d for d in (_domain(v) for v in values) if d)


@dataclass(frozen=True, slots=True)
class BlockList:
    """Senders never tracked: whole addresses, and domains with all their subdomains.

    Entries are normalised on construction (``'*.Example.COM'`` and ``'@example.com'``
    both block ``example.com``), so they compare with ``normalise_address`` keys.
    """

    addresses: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "addresses", _addresses(self.addresses))
        object.__setattr__(self, "domains", _domains(self.domains))

    def blocks(self, address: str) -> bool:
        normalised = normalise_address(address)
        if normalised is None:
            return False
        if normalised in self.addresses:
            return True
        labels = normalised.partition("@")[2].split(".")
        return any(".".join(labels[i:]) in self.domains for i in range(len(labels)))


def sender_reason(record_type: RecordType) -> str:
    """``RecordType.ACCOUNT`` → ``'sender is an account'``."""
    noun = record_type.value.replace("_", " ")
    article = "an" if record_type in _AN else "a"
    return f"sender is {article} {noun}"


def _sender_reason(sender_types: frozenset[RecordType], allowed: tuple[RecordType, ...]) -> str:
    for record_type in allowed:
        if record_type in sender_types:
            return sender_reason(record_type)
    return ""


def decide(
    scope: TrackingScope,
    *,
    correlated: bool,
    sender_types: frozenset[RecordType],
    automation: str | None,
    blocked: bool,
) -> TrackDecision:
    """Track or not, and why: ``TrackDecision(True, 'sender is a contact')``.

    Order: bounce → tracking disabled → sender blocked → other automation → correlated
    (tracked under every scope but NONE) → the scope's own rule.
    """
    if automation == BOUNCE:
        return TrackDecision(False, AUTOMATED_PREFIX + BOUNCE)
    if scope == TrackingScope.NONE:
        return TrackDecision(False, DISABLED)
    if blocked:
        return TrackDecision(False, SENDER_BLOCKED)
    if automation:
        return TrackDecision(False, AUTOMATED_PREFIX + automation)
    if correlated:
        return TrackDecision(True, CORRELATED)
    if scope == TrackingScope.ALL:
        return TrackDecision(True, ALL_TRACKED)
    if scope == TrackingScope.FROM_CRM_RECORDS:
        reason = _sender_reason(sender_types, CRM_RECORD_SENDERS)
        return TrackDecision(True, reason) if reason else TrackDecision(False, NOT_FROM_CRM_RECORD)
    if scope == TrackingScope.FROM_EMAIL_ENABLED:
        reason = _sender_reason(sender_types, EMAIL_ENABLED_SENDERS)
        if reason:
            return TrackDecision(True, reason)
        return TrackDecision(False, NOT_FROM_EMAIL_ENABLED)
    return TrackDecision(False, NOT_A_REPLY)

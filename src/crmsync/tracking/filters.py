"""Which email to track: the mailbox owner's scope, automated mail, blocked senders.

``decide`` is the last step before an incoming email becomes an activity. Its inputs
are facts the engine gathered (was it correlated, what records the sender is, is it
automated, is the sender blocked); its ``TrackDecision.why`` names the rule that decided
(crmsync.core.why), whose sentence — ``reason`` — a person reads in the item's history.
Automated and blocked mail is never tracked, even when correlated; a bounce comes back as
``automated: bounce`` (crmsync.tracking.decide routes a bounce of a CRM email before).

Pure: no I/O, no clock, never logs message content. Signals relied on:
RFC 3834 (``Auto-Submitted``), RFC 3464/6522 (multipart/report; report-type
delivery-status), RFC 2369/2919 (``List-Unsubscribe``, ``List-Id``), the de-facto
``Precedence: bulk|list|junk|auto_reply`` and ``X-Autoreply``/``X-Autorespond``, and the
null reverse-path ``Return-Path: <>`` (RFC 5321 4.5.5) of delivery notifications.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from crmsync.core.addresses import normalise_address
from crmsync.core.types import Automation, RecordType, TrackingScope, TrackRule
from crmsync.core.why import NOT_FROM_CRM_RECORD, NOT_FROM_EMAIL_ENABLED, Why
from crmsync.tracking.parse import ParsedMessage

__all__ = [
    "NOT_FROM_CRM_RECORD",
    "NOT_FROM_EMAIL_ENABLED",
    "Automation",
    "BlockList",
    "TrackDecision",
    "TrackingScope",
    "automation_reason",
    "decide",
]

CRM_RECORD_SENDERS = (RecordType.CONTACT, RecordType.ACCOUNT, RecordType.LEAD)
EMAIL_ENABLED_SENDERS = (*CRM_RECORD_SENDERS, RecordType.USER, RecordType.QUEUE)

_DAEMONS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery (status notification|failure|has failed)|returned mail|"
    r"failure notice|mail delivery (failed|system)|non[- ]?remis|unzustellbar|"
    r"nicht zugestellt",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class TrackDecision:
    """Track or not, and ``why`` (the rule, with the scope, sender type or automation)."""

    track: bool
    why: Why

    @property
    def reason(self) -> str:
        return self.why.sentence()


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


def automation_reason(msg: ParsedMessage) -> Automation | None:
    """Why ``msg`` was sent by a program, or None for a person's email.

    ``'bounce'``, ``'auto-reply'``, ``'auto-submitted'`` or ``'mailing-list'``, checked in
    that order (a bounce is auto-submitted too, and must be told apart).
    """
    if _is_bounce(msg):
        return Automation.BOUNCE
    auto_submitted = _value(msg.auto_submitted).partition(";")[0].strip()
    precedence = _value(msg.precedence)
    autoreply = _value(msg.x_autoreply)
    if auto_submitted == "auto-replied" or precedence == "auto_reply":
        return Automation.AUTO_REPLY
    if autoreply and autoreply not in ("no", "false", "0"):
        return Automation.AUTO_REPLY
    if auto_submitted and auto_submitted != "no":
        return Automation.AUTO_SUBMITTED
    if msg.list_id or msg.list_unsubscribe or precedence in ("list", "bulk", "junk"):
        return Automation.MAILING_LIST
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


def _sender_type(
    sender_types: frozenset[RecordType], allowed: tuple[RecordType, ...]
) -> RecordType | None:
    return next((record_type for record_type in allowed if record_type in sender_types), None)


def decide(
    scope: TrackingScope,
    *,
    correlated: bool,
    sender_types: frozenset[RecordType],
    automation: str | None,
    blocked: bool,
) -> TrackDecision:
    """Track or not, and why: ``TrackDecision(True, Why(IN_SCOPE, sender_type=CONTACT))``,
    whose ``reason`` is ``'sender is a contact'``.

    Order: bounce → tracking disabled → sender blocked → other automation → correlated
    (tracked under every scope but NONE) → the scope's own rule.
    """
    if automation == Automation.BOUNCE:
        return TrackDecision(False, Why(TrackRule.AUTOMATED, automation=Automation.BOUNCE))
    if scope == TrackingScope.NONE:
        return TrackDecision(False, Why(TrackRule.TRACKING_DISABLED, scope=scope))
    if blocked:
        return TrackDecision(False, Why(TrackRule.BLOCKED_SENDER))
    if automation:
        return TrackDecision(False, Why(TrackRule.AUTOMATED, automation=Automation(automation)))
    if correlated:
        return TrackDecision(True, Why(TrackRule.CORRELATED))
    if scope == TrackingScope.ALL:
        return TrackDecision(True, Why(TrackRule.IN_SCOPE, scope=scope))
    allowed = {
        TrackingScope.FROM_CRM_RECORDS: CRM_RECORD_SENDERS,
        TrackingScope.FROM_EMAIL_ENABLED: EMAIL_ENABLED_SENDERS,
    }.get(TrackingScope(scope), ())
    sender = _sender_type(sender_types, allowed)
    if sender is not None:
        return TrackDecision(True, Why(TrackRule.IN_SCOPE, scope=scope, sender_type=sender))
    return TrackDecision(False, Why(TrackRule.OUT_OF_SCOPE, scope=scope))

"""Why an incoming message was tracked, linked or left out — as data, and as the sentence a
person reads.

``Why`` names the rule that decided (``TrackRule``) and what it matched: the tracked email
correlation found (by In-Reply-To/References, tracking token, Thread-Index conversation
or smart matching) and the record that one regards, the email whose Message-ID a
different message reuses, the record created for an unknown sender, the attachments not
kept. crmsync.tracking.decide makes it; the incoming engine stores it with the email
(``emails.why``, ``as_json``) and its ``sentence`` in every mailbox ledger that saw the
message; the API and the email page show both.

    Why(TrackRule.CORRELATED, correlation=Correlated(IN_REPLY_TO, <id>, "<q1@acme>"))
        .sentence()  →  "correlated to a tracked email; correlated by in reply to"

The sentences are the ones mailbox ledgers have always said (triage looks some up by
their words): change one only with its readers. Pure: no I/O, imports nothing of
crmsync but core; never holds message content (names of people and files only).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from crmsync.core.types import (
    AttachmentRefusal,
    Automation,
    CorrelationMethod,
    RecordType,
    TrackingScope,
    TrackRule,
)

__all__ = [
    "NOT_A_REPLY",
    "NOT_FROM_CRM_RECORD",
    "NOT_FROM_EMAIL_ENABLED",
    "Correlated",
    "RefusedAttachment",
    "Why",
    "sender_reason",
]

# The left-out sentences of each scope; triage finds unknown senders by the last two.
NOT_A_REPLY = "not a reply to CRM email"
NOT_FROM_CRM_RECORD = "sender is not a lead, contact or account"
NOT_FROM_EMAIL_ENABLED = "sender is not a CRM record"
_OUT_OF_SCOPE = {
    TrackingScope.REPLIES_TO_CRM: NOT_A_REPLY,
    TrackingScope.FROM_CRM_RECORDS: NOT_FROM_CRM_RECORD,
    TrackingScope.FROM_EMAIL_ENABLED: NOT_FROM_EMAIL_ENABLED,
}
_PLAIN = {
    TrackRule.CORRELATED: "correlated to a tracked email",
    TrackRule.COPY_TRACKED: "already tracked from another mailbox",
    TrackRule.BEFORE_CUTOFF: "received before the profile's 'process email received after'",
    TrackRule.BOUNCE_OF_CRM_EMAIL: "bounce of a CRM email: the original marked bounced",
    TrackRule.BLOCKED_SENDER: "sender blocked",
    TrackRule.TRACKING_DISABLED: "tracking disabled",
}
_AN = frozenset({RecordType.ACCOUNT, RecordType.OPPORTUNITY, RecordType.EMAIL})
T = TypeVar("T")


def sender_reason(record_type: RecordType) -> str:
    """``RecordType.ACCOUNT`` → ``'sender is an account'``."""
    noun = record_type.value.replace("_", " ")
    article = "an" if record_type in _AN else "a"
    return f"sender is {article} {noun}"


@dataclass(frozen=True, slots=True)
class Correlated:
    """The tracked email a message continues, and the evidence: ``message_id`` for
    IN_REPLY_TO (the In-Reply-To or References entry that named it), ``token`` for
    TRACKING_TOKEN, ``conversation_guid`` for CONVERSATION_INDEX; ``regarding`` is the
    record that email regards, which the new one inherits."""

    method: CorrelationMethod
    email_id: uuid.UUID
    message_id: str | None = None
    token: str | None = None
    conversation_guid: str | None = None
    regarding: tuple[RecordType, uuid.UUID] | None = None


@dataclass(frozen=True, slots=True)
class RefusedAttachment:
    """An attachment not kept; ``limit`` is the size limit in bytes it was over."""

    filename: str
    refusal: AttachmentRefusal
    limit: int | None = None

    def sentence(self) -> str:
        if self.refusal is AttachmentRefusal.BLOCKED_TYPE:
            return f"{self.filename} (blocked type)"
        return f"{self.filename} (over {self.limit} bytes)"


@dataclass(frozen=True, slots=True)
class Why:
    """The rule that decided, and what it matched.

    ``scope`` is set for IN_SCOPE and OUT_OF_SCOPE, ``sender_type`` when the sender's
    record took the message in, ``automation`` for AUTOMATED, ``person`` (a name) for
    TRACKED_BY_HAND and UNTRACKED_BY_PERSON, ``email_id`` for COPY_TRACKED (the email it
    joined) and BOUNCE_OF_CRM_EMAIL (the CRM email marked bounced). ``collides_with`` is
    the email holding the message's Message-ID with other content: the message was kept
    apart from it.
    """

    rule: TrackRule
    scope: TrackingScope | None = None
    sender_type: RecordType | None = None
    automation: Automation | None = None
    person: str | None = None
    email_id: uuid.UUID | None = None
    collides_with: uuid.UUID | None = None
    correlation: Correlated | None = None
    created_sender: RecordType | None = None
    refused_attachments: tuple[RefusedAttachment, ...] = field(default=())

    def sentence(self) -> str:
        """What a mailbox's ledger says, e.g. ``'sender is a contact; correlated by
        tracking token; attachments not kept: a.exe (blocked type)'``."""
        parts = [self._rule_sentence()]
        if self.collides_with is not None:
            note = f"same Message-ID as email {self.collides_with} but different content"
            parts[0] = (
                f"{note}: kept as its own email; {parts[0]}"
                if self.rule.tracks
                else f"{note}; {parts[0]}"
            )
        if self.correlation is not None and self.correlation.method is not CorrelationMethod.NONE:
            parts.append(f"correlated by {self.correlation.method.value.replace('_', ' ')}")
        if self.refused_attachments:
            refused = ", ".join(item.sentence() for item in self.refused_attachments)
            parts.append(f"attachments not kept: {refused}")
        if self.created_sender is not None:
            parts.append(f"created a {self.created_sender.value} for the sender")
        return "; ".join(parts)

    def _rule_sentence(self) -> str:
        rule = self.rule
        if rule in _PLAIN:
            return _PLAIN[rule]
        if rule is TrackRule.IN_SCOPE:
            if self.sender_type is not None:
                return sender_reason(self.sender_type)
            return "all email is tracked"
        if rule is TrackRule.OUT_OF_SCOPE:
            return _OUT_OF_SCOPE.get(self.scope or TrackingScope.REPLIES_TO_CRM, NOT_A_REPLY)
        if rule is TrackRule.AUTOMATED:
            return f"automated: {self.automation or 'unknown'}"
        if rule is TrackRule.TRACKED_BY_HAND:
            return f"tracked by {self.person or 'a person'}"
        assert rule is TrackRule.UNTRACKED_BY_PERSON
        return f"untracked by {self.person or 'a person'}"

    def as_json(self) -> dict[str, Any]:
        """The JSON stored with the email: only what is set, ids as strings."""
        data: dict[str, Any] = {"rule": self.rule.value}
        for name in ("scope", "sender_type", "automation", "person", "created_sender"):
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value)
        for name in ("email_id", "collides_with"):
            value = getattr(self, name)
            if value is not None:
                data[name] = str(value)
        if self.correlation is not None:
            data["correlation"] = _correlation_json(self.correlation)
        if self.refused_attachments:
            data["refused_attachments"] = [
                {"filename": item.filename, "refusal": item.refusal.value, "limit": item.limit}
                for item in self.refused_attachments
            ]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Why | None:
        """``as_json`` read back; None for None or for what this version cannot read (a
        newer version's rule, a value edited by hand): the caller then says less."""
        if not data:
            return None
        try:
            correlation = data.get("correlation")
            return cls(
                rule=TrackRule(data["rule"]),
                scope=_optional(TrackingScope, data.get("scope")),
                sender_type=_optional(RecordType, data.get("sender_type")),
                automation=_optional(Automation, data.get("automation")),
                person=_optional(str, data.get("person")),
                email_id=_optional(uuid.UUID, data.get("email_id")),
                collides_with=_optional(uuid.UUID, data.get("collides_with")),
                correlation=_correlation_of(correlation) if correlation else None,
                created_sender=_optional(RecordType, data.get("created_sender")),
                refused_attachments=tuple(
                    RefusedAttachment(
                        str(item["filename"]),
                        AttachmentRefusal(item["refusal"]),
                        _optional(int, item.get("limit")),
                    )
                    for item in data.get("refused_attachments") or ()
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def _optional(kind: Callable[[Any], T], value: object) -> T | None:
    return None if value is None else kind(value)


def _correlation_json(correlation: Correlated) -> dict[str, Any]:
    data: dict[str, Any] = {
        "method": correlation.method.value,
        "email_id": str(correlation.email_id),
    }
    for name in ("message_id", "token", "conversation_guid"):
        value = getattr(correlation, name)
        if value is not None:
            data[name] = value
    if correlation.regarding is not None:
        data["regarding"] = [correlation.regarding[0].value, str(correlation.regarding[1])]
    return data


def _correlation_of(data: Mapping[str, Any]) -> Correlated:
    regarding = data.get("regarding")
    return Correlated(
        method=CorrelationMethod(data["method"]),
        email_id=uuid.UUID(data["email_id"]),
        message_id=_optional(str, data.get("message_id")),
        token=_optional(str, data.get("token")),
        conversation_guid=_optional(str, data.get("conversation_guid")),
        regarding=(RecordType(regarding[0]), uuid.UUID(regarding[1])) if regarding else None,
    )

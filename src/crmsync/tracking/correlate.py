"""Correlation: which tracked email an incoming message continues, and by what evidence.

Gather → decide: the engine asks ``wanted_keys`` what to look up, runs ONE query per kind
(message ids, token, conversation GUID, normalised subject) to build ``Candidates``, then
``correlate`` picks the match. Methods, first applicable wins:

1. In-Reply-To, then References newest (last) first      → IN_REPLY_TO
2. the tracking token in the subject                     → TRACKING_TOKEN
3. the Outlook Thread-Index conversation GUID (newest)   → CONVERSATION_INDEX
4. smart matching: same normalised subject and at least
   ``smart_min_shared_participants`` shared addresses (newest) → SMART_MATCHING
5. nothing                                               → NONE, no match

"Newest" is the latest ``occurred_at``, ties broken by activity id, so the result never
depends on the order of the inputs. Pure: no I/O, no clock; never raises for a
``ParsedMessage``. Formats: RFC 5322 3.6.4 (msg-id fields), ``token``, ``threadindex``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from crmsync.core.addresses import normalise_address
from crmsync.core.types import CorrelationMethod, RecordType
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.subjects import normalise_subject
from crmsync.tracking.threadindex import conversation_guid
from crmsync.tracking.token import TokenFormat, find_token, strip_token

__all__ = [
    "Candidates",
    "Correlation",
    "CorrelationKeys",
    "CorrelationSettings",
    "KnownEmail",
    "correlate",
    "participants",
    "subject_key",
    "wanted_keys",
]


@dataclass(frozen=True, slots=True)
class KnownEmail:
    """A tracked email as correlation sees it. ``participants`` are normalised addresses."""

    activity_id: uuid.UUID
    message_id: str | None
    regarding: tuple[RecordType, uuid.UUID] | None
    participants: frozenset[str]
    conversation_guid: str | None
    tracking_token: str | None
    normalised_subject: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Candidates:
    """What the engine found for the ``CorrelationKeys``, keyed by those keys."""

    by_message_id: Mapping[str, KnownEmail] = field(default_factory=dict)
    by_token: Mapping[str, KnownEmail] = field(default_factory=dict)
    by_conversation: Mapping[str, Sequence[KnownEmail]] = field(default_factory=dict)
    by_subject: Mapping[str, Sequence[KnownEmail]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CorrelationSettings:
    use_tracking_token: bool = True
    token_format: TokenFormat = field(default_factory=TokenFormat)
    use_conversation_index: bool = True
    smart_matching: bool = False
    smart_min_shared_participants: int = 2


@dataclass(frozen=True, slots=True)
class CorrelationKeys:
    """What to look up: ``message_ids`` in the order they are tried; None when not wanted."""

    message_ids: tuple[str, ...]
    token: str | None
    conversation_guid: str | None
    normalised_subject: str | None


@dataclass(frozen=True, slots=True)
class Correlation:
    method: CorrelationMethod
    match: KnownEmail | None


NO_CORRELATION = Correlation(CorrelationMethod.NONE, None)


def subject_key(subject: str, settings: CorrelationSettings = CorrelationSettings()) -> str:
    """The smart-matching key of a subject: tokens removed, then ``normalise_subject``.

    Store it as ``KnownEmail.normalised_subject`` so both sides are computed alike.
    """
    return normalise_subject(strip_token(subject, settings.token_format))


def _normalised(address: str) -> str | None:
    try:
        return normalise_address(address)
    except (UnicodeError, ValueError):
        return None


def participants(addresses: Iterable[str]) -> frozenset[str]:
    """Normalised keys of ``addresses``, skipping what is not an address."""
    return frozenset(n for n in (_normalised(a) for a in addresses) if n)


def _message_participants(msg: ParsedMessage) -> frozenset[str]:
    return participants(a.address for a in (*msg.from_, *msg.to, *msg.cc))


def wanted_keys(msg: ParsedMessage, settings: CorrelationSettings) -> CorrelationKeys:
    """The keys to look up for ``msg``: In-Reply-To, then References newest first."""
    ordered = ((msg.in_reply_to,) if msg.in_reply_to else ()) + tuple(reversed(msg.references))
    subject = subject_key(msg.subject, settings) if settings.smart_matching else ""
    return CorrelationKeys(
        message_ids=tuple(dict.fromkeys(ordered)),
        token=(
            find_token(msg.subject, settings.token_format) if settings.use_tracking_token else None
        ),
        conversation_guid=(
            conversation_guid(msg.thread_index) if settings.use_conversation_index else None
        ),
        normalised_subject=subject or None,
    )


def _recency(known: KnownEmail) -> tuple[datetime, str]:
    moment = known.occurred_at
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment, str(known.activity_id)


def _newest(emails: Iterable[KnownEmail]) -> KnownEmail | None:
    return max(emails, key=_recency, default=None)


def correlate(
    msg: ParsedMessage, candidates: Candidates, settings: CorrelationSettings
) -> Correlation:
    """The tracked email ``msg`` continues, or ``Correlation(NONE, None)``."""
    keys = wanted_keys(msg, settings)
    for message_id in keys.message_ids:
        known = candidates.by_message_id.get(message_id)
        if known is not None:
            return Correlation(CorrelationMethod.IN_REPLY_TO, known)
    if keys.token is not None:
        known = candidates.by_token.get(keys.token)
        if known is not None:
            return Correlation(CorrelationMethod.TRACKING_TOKEN, known)
    if keys.conversation_guid is not None:
        known = _newest(candidates.by_conversation.get(keys.conversation_guid, ()))
        if known is not None:
            return Correlation(CorrelationMethod.CONVERSATION_INDEX, known)
    if keys.normalised_subject is not None:
        mine = _message_participants(msg)
        needed = max(1, settings.smart_min_shared_participants)
        known = _newest(
            email
            for email in candidates.by_subject.get(keys.normalised_subject, ())
            if len(mine & email.participants) >= needed
        )
        if known is not None:
            return Correlation(CorrelationMethod.SMART_MATCHING, known)
    return NO_CORRELATION

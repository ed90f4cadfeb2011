"""One incoming message's fate, decided by one pure function from what was gathered.

``decide(message, known, policy, now)`` returns one of

    Skip(why)                 left out: the ledger says why
    Link(email_id, why)       a copy of a tracked message: this mailbox joins that email
    Bounce(email_id, why)     a bounce of the CRM email ``email_id``: mark that one bounced
    Track(why, …)             a new email: its key, correlation, parties, kept attachments,
                              the queue it goes to, and whether a record must be created
                              for its unknown sender first (``sender_record``)

and ``why`` (crmsync.core.why.Why) always names the rule and what it matched. The rules,
first that applies wins::

    by hand? ─ yes ───────────────────────────────────────────────────┐
      │ no                                                            │
    received before the cut-off        → Skip   BEFORE_CUTOFF         │
    a bounce of a CRM email            → Bounce BOUNCE_OF_CRM_EMAIL   │
    its key untracked by a person      → Skip   UNTRACKED_BY_PERSON   │
    its key tracked, same content      → Link   COPY_TRACKED  ◀───────┤
    correlate, then the filters        → Skip   TRACKING_DISABLED, BLOCKED_SENDER,
      (crmsync.tracking.filters)                AUTOMATED, OUT_OF_SCOPE
                                       → Track  CORRELATED, IN_SCOPE, TRACKED_BY_HAND ◀┘

A message whose Message-ID a tracked email with other content holds (the fingerprints
differ: crmsync.tracking.fingerprint) is keyed apart (``collision_key``) and decided as a
message of its own; ``why.collides_with`` names that email.

The engine gathers (sync/incoming/gather.py) before and executes after: it stores the
email, marks the bounce, or creates the sender's record and then decides again with
``created_sender`` (the new record is among ``known.matches`` by then), which the ``why``
records. A message tracked earlier in a batch correlates later ones: the engine tells
``Known.plan`` about each email it will store.

Pure: no I/O, no ORM, no clock (``now`` is passed in), never logs; imports only
crmsync.tracking and crmsync.core. Same inputs, same fate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import PurePath

from crmsync.core.addresses import normalise_address
from crmsync.core.email_keys import collision_key, dedupe_key_of
from crmsync.core.fingerprints import same_content
from crmsync.core.types import (
    AttachmentRefusal,
    CorrelationMethod,
    RecordType,
    TrackingScope,
    TrackRule,
)
from crmsync.core.why import Correlated, RefusedAttachment, Why
from crmsync.tracking.correlate import (
    Candidates,
    Correlation,
    CorrelationSettings,
    KnownEmail,
    correlate,
    participants,
    subject_key,
)
from crmsync.tracking.filters import BlockList, automation_reason
from crmsync.tracking.filters import decide as filter_decision
from crmsync.tracking.fingerprint import fingerprint
from crmsync.tracking.parse import ParsedMessage
from crmsync.tracking.parties import (
    PartyOptions,
    RecordRef,
    ResolvedParty,
    address_key,
    resolve_parties,
    sender_types,
)
from crmsync.tracking.threadindex import conversation_guid
from crmsync.tracking.token import find_token

__all__ = [
    "Bounce",
    "Fate",
    "Identity",
    "Known",
    "Link",
    "Message",
    "Policy",
    "Skip",
    "StoredKey",
    "Track",
    "before_cutoff",
    "collision_key",
    "decide",
    "dedupe_key",
    "identify",
]


# -- what goes in ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed message, its raw bytes' SHA-256, its content fingerprint, and the SHA-256
    of each of its attachments (in ``parsed.attachments`` order)."""

    parsed: ParsedMessage
    raw_sha256: str
    fingerprint: str
    attachment_sha256: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, parsed: ParsedMessage, raw_sha256: str, attachment_sha256: tuple[str, ...] = ()
    ) -> Message:
        return cls(parsed, raw_sha256, fingerprint(parsed), attachment_sha256)


@dataclass(frozen=True, slots=True)
class Policy:
    """The owner's preferences and the organisation's settings, as plain values.

    ``sender_record`` is the record to create for a sender no record has the address of
    (CONTACT or LEAD), or None; ``blocked_extensions`` are lower case, without the dot;
    ``queue_id`` is the mailbox's queue, which every email it tracks or links goes to.
    """

    scope: TrackingScope = TrackingScope.REPLIES_TO_CRM
    correlation: CorrelationSettings = field(default_factory=CorrelationSettings)
    blocked_senders: BlockList = field(default_factory=BlockList)
    blocked_extensions: frozenset[str] = frozenset()
    max_attachment_bytes: int = 25 * 1024 * 1024
    sender_record: RecordType | None = None
    parties: PartyOptions = field(default_factory=PartyOptions)
    process_email_after: datetime | None = None
    queue_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key in ``email_keys`` with its email, and that email's content fingerprint (None
    for an email stored before fingerprints existed)."""

    email_id: uuid.UUID
    fingerprint: str | None


@dataclass
class Known:
    """What the database knows that decides a batch, gathered before it in a handful of
    queries: stored and untracked keys (``untracked``: who untracked it, when known),
    tracked emails by what correlation looks up, and the records carrying each address
    (``matches``, by ``parties.address_key``).

    Plain data; the engine adds to it what it learns while the batch goes on (``plan``,
    and the matches of a record it created).
    """

    stored: dict[str, StoredKey] = field(default_factory=dict)
    untracked: dict[str, str | None] = field(default_factory=dict)
    by_message_id: dict[str, KnownEmail] = field(default_factory=dict)
    by_token: dict[str, KnownEmail] = field(default_factory=dict)
    by_conversation: dict[str, list[KnownEmail]] = field(default_factory=dict)
    by_subject: dict[str, list[KnownEmail]] = field(default_factory=dict)
    matches: dict[str, list[RecordRef]] = field(default_factory=dict)

    def candidates(self) -> Candidates:
        return Candidates(
            by_message_id=self.by_message_id,
            by_token=self.by_token,
            by_conversation=self.by_conversation,
            by_subject=self.by_subject,
        )

    def learn(self, known: KnownEmail) -> None:
        """A tracked email becomes a candidate for correlation (the newest first)."""
        if known.message_id:
            self.by_message_id[known.message_id] = known
        if known.tracking_token:
            self.by_token.setdefault(known.tracking_token, known)
        if known.conversation_guid:
            self.by_conversation.setdefault(known.conversation_guid, []).insert(0, known)
        if known.normalised_subject:
            self.by_subject.setdefault(known.normalised_subject, []).insert(0, known)

    def plan(self, message: Message, track: Track, email_id: uuid.UUID) -> None:
        """``track`` will be stored as ``email_id`` with this batch: later messages of the
        batch find it by key (its copies link to it) and correlate with it."""
        self.stored[track.key] = StoredKey(email_id, track.fingerprint)
        self.learn(
            KnownEmail(
                activity_id=email_id,
                message_id=message.parsed.message_id,
                regarding=track.regarding,
                participants=participants(party.address for party in track.parties),
                conversation_guid=track.conversation_guid,
                tracking_token=track.tracking_token,
                normalised_subject=track.normalised_subject,
                occurred_at=track.occurred_at,
            )
        )


# -- what comes out ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Skip:
    why: Why


@dataclass(frozen=True, slots=True)
class Link:
    """The message is tracked already as ``email_id``; it goes to ``queue_id`` too."""

    email_id: uuid.UUID
    why: Why
    queue_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Bounce:
    """A permanent-failure bounce of the CRM email ``email_id``: mark it, track nothing."""

    email_id: uuid.UUID
    why: Why


@dataclass(frozen=True, slots=True)
class Track:
    """A new email. ``kept_attachments`` index ``parsed.attachments``; ``sender_record``
    asks the engine to create that record for the sender, then decide again."""

    why: Why
    key: str
    fingerprint: str
    occurred_at: datetime
    parties: tuple[ResolvedParty, ...]
    kept_attachments: tuple[int, ...]
    conversation_guid: str | None
    normalised_subject: str
    tracking_token: str | None
    sender_record: RecordType | None = None
    queue_id: uuid.UUID | None = None

    @property
    def correlation_method(self) -> CorrelationMethod:
        found = self.why.correlation
        return found.method if found is not None else CorrelationMethod.NONE

    @property
    def correlated_with(self) -> uuid.UUID | None:
        return self.why.correlation.email_id if self.why.correlation is not None else None

    @property
    def regarding(self) -> tuple[RecordType, uuid.UUID] | None:
        return self.why.correlation.regarding if self.why.correlation is not None else None


Fate = Skip | Link | Bounce | Track


# -- identity ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """The message's key in ``email_keys``; ``collides_with`` is the email holding its
    Message-ID with other content (the key is then its ``collision_key``)."""

    key: str
    collides_with: uuid.UUID | None = None


def dedupe_key(message: Message) -> str:
    """The message's key unless it collides: its Message-ID, else its bytes' digest."""
    key = dedupe_key_of(message.parsed.message_id, message.raw_sha256)
    assert key is not None  # a digest always exists
    return key


def identify(message: Message, known: Known) -> Identity:
    """Which key ``message`` has, given the keys stored (the engine gathers the collision
    keys this names too, so that a copy seen before links to that copy)."""
    message_id = message.parsed.message_id
    key = dedupe_key(message)
    holder = known.stored.get(key)
    if (
        holder is None
        or message_id is None
        or same_content(holder.fingerprint, message.fingerprint)
    ):
        return Identity(key)
    return Identity(collision_key(message_id, message.fingerprint), holder.email_id)


# -- deciding ----------------------------------------------------------------------------


def before_cutoff(parsed: ParsedMessage, policy: Policy, now: datetime) -> bool:
    """Whether the message was received before the profile's "process email after" (a
    message without a Date is taken as received ``now``)."""
    if policy.process_email_after is None:
        return False
    return (parsed.date or now) < policy.process_email_after


def decide(
    message: Message,
    known: Known,
    policy: Policy,
    now: datetime,
    *,
    bounce_of: uuid.UUID | None = None,
    by_hand: str | None = None,
    created_sender: RecordType | None = None,
) -> Fate:
    """The fate of ``message``.

    ``bounce_of`` is the CRM email the message is a permanent-failure bounce of, as the
    engine found it (crmsync.sync.incoming.bounces); ``by_hand`` the name of the person
    tracking it by hand (the cut-off, a tombstone, the scope, the block list and
    automation then do not count — a person asked); ``created_sender`` the record the
    engine created for its sender after an earlier ``Track(sender_record=…)``.
    """
    parsed = message.parsed
    if by_hand is None:
        if before_cutoff(parsed, policy, now):
            return Skip(Why(TrackRule.BEFORE_CUTOFF))
        if bounce_of is not None:
            return Bounce(bounce_of, Why(TrackRule.BOUNCE_OF_CRM_EMAIL, email_id=bounce_of))
    identity = identify(message, known)
    if by_hand is None and identity.key in known.untracked:
        who = known.untracked[identity.key]
        return Skip(Why(TrackRule.UNTRACKED_BY_PERSON, person=who))
    stored = known.stored.get(identity.key)
    if stored is not None:
        why = Why(TrackRule.COPY_TRACKED, email_id=stored.email_id)
        return Link(stored.email_id, why, policy.queue_id)
    correlation = correlate(parsed, known.candidates(), policy.correlation)
    if by_hand is not None:
        why = Why(TrackRule.TRACKED_BY_HAND, person=by_hand)
    else:
        sender = parsed.from_[0].address if parsed.from_ else ""
        decision = filter_decision(
            policy.scope,
            correlated=correlation.match is not None,
            sender_types=sender_types(parsed, known.matches),
            automation=automation_reason(parsed),
            blocked=bool(sender) and policy.blocked_senders.blocks(sender),
        )
        if not decision.track:
            return Skip(replace(decision.why, collides_with=identity.collides_with))
        why = decision.why
    return _track(message, known, policy, now, identity, correlation, why, created_sender)


def _track(
    message: Message,
    known: Known,
    policy: Policy,
    now: datetime,
    identity: Identity,
    correlation: Correlation,
    why: Why,
    created_sender: RecordType | None,
) -> Track:
    parsed = message.parsed
    settings = policy.correlation
    kept, refused = _attachments(message, policy)
    why = replace(
        why,
        collides_with=identity.collides_with,
        correlation=_correlated(correlation),
        refused_attachments=refused,
        created_sender=created_sender,
    )
    sender = parsed.from_[0].address if parsed.from_ else ""
    unknown_sender = normalise_address(sender) is not None and not known.matches.get(
        address_key(sender)
    )
    return Track(
        why=why,
        key=identity.key,
        fingerprint=message.fingerprint,
        occurred_at=parsed.date or now,
        parties=tuple(resolve_parties(parsed, known.matches, policy.parties)),
        kept_attachments=kept,
        conversation_guid=conversation_guid(parsed.thread_index),
        normalised_subject=subject_key(parsed.subject, settings),
        tracking_token=(
            find_token(parsed.subject, settings.token_format)
            if settings.use_tracking_token
            else None
        ),
        sender_record=(policy.sender_record if created_sender is None and unknown_sender else None),
        queue_id=policy.queue_id,
    )


def _is_address(value: str) -> bool:
    """Whether a record could carry ``value`` as its address."""
    try:
        return normalise_address(value) is not None
    except (UnicodeError, ValueError):  # IDNA refuses some domains outright
        return False


def _correlated(correlation: Correlation) -> Correlated | None:
    match = correlation.match
    if match is None:
        return None
    method = correlation.method
    return Correlated(
        method=method,
        email_id=match.activity_id,
        message_id=match.message_id if method is CorrelationMethod.IN_REPLY_TO else None,
        token=match.tracking_token if method is CorrelationMethod.TRACKING_TOKEN else None,
        conversation_guid=(
            match.conversation_guid if method is CorrelationMethod.CONVERSATION_INDEX else None
        ),
        regarding=match.regarding,
    )


def _attachments(
    message: Message, policy: Policy
) -> tuple[tuple[int, ...], tuple[RefusedAttachment, ...]]:
    kept: list[int] = []
    refused: list[RefusedAttachment] = []
    for index, part in enumerate(message.parsed.attachments):
        extension = PurePath(part.filename).suffix.lower().lstrip(".")
        if extension in policy.blocked_extensions:
            refused.append(RefusedAttachment(part.filename, AttachmentRefusal.BLOCKED_TYPE))
        elif part.size > policy.max_attachment_bytes:
            limit = policy.max_attachment_bytes
            refused.append(RefusedAttachment(part.filename, AttachmentRefusal.TOO_LARGE, limit))
        else:
            kept.append(index)
    return tuple(kept), tuple(refused)

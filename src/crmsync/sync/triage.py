"""The triage queue: items a mailbox could not track, and the one-click ways to fix them.

What is in the queue (``triage_queue``), for the mailboxes the caller can read:

- item failures (``ItemFailure``): a message the incoming engine could not process —
  unparseable under the limits of the day, or an error while deciding — kept with its
  raw bytes when it had any;
- unknown senders: a message seen but not tracked because the mailbox tracks only email
  from CRM records and its sender is none (a ``MailboxMessage`` with that reason).

The fixes, each in the caller's transaction:

    retry           the item's raw bytes go through the engine's own storing step again
                    (crmsync.sync.incoming.store_batch, under today's settings): tracked,
                    processed and not tracked (the engine's reason), or failed again
    create contact  the sender becomes a contact (crm/email_actions.resolve_address), then
                    the item is re-run as above; if the engine still would not track it
                    (the mailbox tracks only replies), it is tracked by hand
    regarding       tracked by hand (crmsync.sync.manual_track), then its regarding set
    ignore          resolved as ignored, by whom and when

Must never run a second pipeline (parse, decide and store are the engine's and
manual_track's), never touch a mail server or a folder cursor, and never act on a
mailbox the caller cannot read (NotFound, as if it did not exist).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from email.utils import parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import Channel, ItemResolution, RecordType
from crmsync.core.why import NOT_FROM_CRM_RECORD, NOT_FROM_EMAIL_ENABLED
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.db import utcnow
from crmsync.crm.email_actions import resolve_address, set_regarding
from crmsync.crm.errors import NotFound, RuleViolation
from crmsync.crm.models.mail import ItemFailure, Mailbox
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.search import search
from crmsync.crm.store import Store
from crmsync.sync.incoming.ingest import store_batch
from crmsync.sync.incoming.parser_pool import Fetched, discard_leftovers, prepare_fetched
from crmsync.sync.manual_track import AlreadyTracked, engine_context, may_track, track_message
from crmsync.tracking.parse import ParseLimits

UNKNOWN_SENDER = "UNKNOWN_SENDER"  # the code an ignored unknown-sender message keeps
UNKNOWN_SENDER_REASONS = (NOT_FROM_CRM_RECORD, NOT_FROM_EMAIL_ENABLED)
SENDER_TYPES = (RecordType.CONTACT, RecordType.LEAD, RecordType.ACCOUNT)
HEADER_BYTES = 64 * 1024  # enough for the headers of any sane message


class ItemKind(enum.StrEnum):
    FAILURE = "failure"  # an ItemFailure row
    UNKNOWN_SENDER = "unknown-sender"  # a MailboxMessage row, untracked for its sender


@dataclass(frozen=True)
class Header:
    subject: str
    sender_address: str
    sender_name: str


@dataclass(frozen=True)
class TriageItem:
    kind: ItemKind
    id: uuid.UUID
    mailbox_id: uuid.UUID
    mailbox_name: str
    code: str
    detail: str
    header: Header | None  # None when no raw bytes were kept (or none could be read)
    attempts: int
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None = None
    resolution: ItemResolution | None = None
    email_id: uuid.UUID | None = None
    sender_known: bool = False  # a record the caller can read has the sender's address

    @property
    def has_bytes(self) -> bool:
        return self.header is not None


@dataclass(frozen=True)
class Rerun:
    """What a fix did: ``email_id`` when tracked; else the engine's ``reason``."""

    email_id: uuid.UUID | None
    reason: str
    failed: bool = False
    created_contact_id: uuid.UUID | None = None


def read_header(raw: bytes) -> Header | None:
    """Subject and sender of raw message bytes: ``Header('Hello', 'a@b.example', 'Ann')``."""
    try:
        message = BytesHeaderParser(policy=default_policy).parsebytes(raw[:HEADER_BYTES])
        subject = str(message.get("subject", "") or "")
        name, address = parseaddr(str(message.get("from", "") or ""))
    except Exception:  # a header the stdlib cannot read: show the item without it
        return None
    return Header(" ".join(subject.split())[:300], address[:320], name[:200])


def _header(store: Store, sha256: str | None) -> Header | None:
    if sha256 is None:
        return None
    try:
        return read_header(store.blobs.get(sha256))
    except OSError:
        return None


def _mailboxes(session: Session, principal: Principal) -> dict[uuid.UUID, Mailbox]:
    query = select(Mailbox).where(
        Mailbox.organisation_id == principal.organisation_id, access.visible(Mailbox, principal)
    )
    return {mailbox.id: mailbox for mailbox in session.scalars(query)}


def triage_queue(
    session: Session, store: Store, principal: Principal, *, resolved: bool, limit: int = 100
) -> list[TriageItem]:
    """Unresolved items (``resolved`` False), latest first; or the resolved ones."""
    mailboxes = _mailboxes(session, principal)
    if not mailboxes:
        return []
    failures = session.scalars(
        select(ItemFailure)
        .where(
            ItemFailure.mailbox_id.in_(mailboxes),
            ItemFailure.resolved_at.is_not(None) if resolved else ItemFailure.resolved_at.is_(None),
        )
        .order_by(ItemFailure.last_seen_at.desc(), ItemFailure.id)
        .limit(limit)
    )
    items = [
        TriageItem(
            ItemKind.FAILURE,
            failure.id,
            failure.mailbox_id,
            mailboxes[failure.mailbox_id].name,
            failure.code,
            failure.detail,
            _header(store, failure.raw_sha256),
            failure.attempts,
            failure.first_seen_at,
            failure.last_seen_at,
            failure.resolved_at,
            failure.resolution,
            failure.email_id,
        )
        for failure in failures
    ]
    if not resolved:
        items += _unknown_senders(session, store, mailboxes, limit)
    return [replace(item, sender_known=_known(session, principal, item.header)) for item in items]


def _known(session: Session, principal: Principal, header: Header | None) -> bool:
    """Whether "create the contact" makes sense: no record the caller reads has the
    address (the same matching as the search box, so the same access rules)."""
    if header is None or "@" not in header.sender_address:
        return False
    return bool(search(session, principal, header.sender_address, types=SENDER_TYPES, limit=1))


def _unknown_senders(
    session: Session, store: Store, mailboxes: dict[uuid.UUID, Mailbox], limit: int
) -> list[TriageItem]:
    ignored = set(
        session.scalars(
            select(ItemFailure.item_ref).where(
                ItemFailure.mailbox_id.in_(mailboxes), ItemFailure.code == UNKNOWN_SENDER
            )
        )
    )
    sightings = session.scalars(
        select(MailboxMessage)
        .where(
            MailboxMessage.mailbox_id.in_(mailboxes),
            MailboxMessage.tracked.is_(False),
            MailboxMessage.raw_sha256.is_not(None),
            MailboxMessage.reason.in_(UNKNOWN_SENDER_REASONS),
        )
        .order_by(MailboxMessage.seen_at.desc(), MailboxMessage.id)
        .limit(limit)
    )
    return [
        TriageItem(
            ItemKind.UNKNOWN_SENDER,
            sighting.id,
            sighting.mailbox_id,
            mailboxes[sighting.mailbox_id].name,
            UNKNOWN_SENDER,
            f"Not tracked: {sighting.reason}.",
            _header(store, sighting.raw_sha256),
            1,
            sighting.seen_at,
            sighting.seen_at,
        )
        for sighting in sightings
        if _ignore_ref(sighting) not in ignored
    ]


def _ignore_ref(sighting: MailboxMessage) -> str:
    return f"ledger:{sighting.id}"


# -- finding an item the caller may act on ------------------------------------------------


def _failure(session: Session, principal: Principal, failure_id: uuid.UUID) -> ItemFailure:
    failure = session.scalar(
        select(ItemFailure)
        .join(Mailbox, Mailbox.id == ItemFailure.mailbox_id)
        .where(ItemFailure.id == failure_id, access.visible(Mailbox, principal))
    )
    if failure is None:
        raise NotFound("item failure", failure_id)
    return failure


def _sighting_of(session: Session, failure: ItemFailure) -> MailboxMessage:
    """The ledger row the engine wrote with the failure (same mailbox, same bytes)."""
    if failure.raw_sha256 is None:
        raise RuleViolation(
            "NO_RAW_BYTES",
            "The message's bytes were never downloaded (it was over the size limit), so it "
            "cannot be re-run from here; raise the limit and the next sync fetches it.",
        )
    sighting = session.scalars(
        select(MailboxMessage)
        .where(
            MailboxMessage.mailbox_id == failure.mailbox_id,
            MailboxMessage.raw_sha256 == failure.raw_sha256,
        )
        .order_by(MailboxMessage.seen_at.desc())
        .limit(1)
    ).first()
    if sighting is None:
        raise RuleViolation("NO_RAW_BYTES", "The mailbox no longer lists this message.")
    return sighting


def _unknown(session: Session, principal: Principal, ledger_id: uuid.UUID) -> MailboxMessage:
    sighting = session.scalar(
        select(MailboxMessage)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(
            MailboxMessage.id == ledger_id,
            MailboxMessage.raw_sha256.is_not(None),
            access.visible(Mailbox, principal),
        )
    )
    if sighting is None:
        raise NotFound("message", ledger_id)
    return sighting


def _item(
    session: Session, principal: Principal, kind: ItemKind, item_id: uuid.UUID
) -> tuple[ItemFailure | None, MailboxMessage]:
    if kind is ItemKind.FAILURE:
        failure = _failure(session, principal, item_id)
        return failure, _sighting_of(session, failure)
    return None, _unknown(session, principal, item_id)


# -- the fixes ----------------------------------------------------------------------------


def _item_to_track(
    session: Session, principal: Principal, kind: ItemKind, item_id: uuid.UUID
) -> tuple[ItemFailure | None, MailboxMessage]:
    """``_item``, once the principal may track its mailbox's email by hand (``may_track``)."""
    failure, sighting = _item(session, principal, kind, item_id)
    mailbox = session.get(Mailbox, sighting.mailbox_id)
    assert mailbox is not None
    may_track(session, principal, mailbox)
    return failure, sighting


def _place(sighting: MailboxMessage) -> tuple[uuid.UUID, str, int, int]:
    """Where the sighting stands in its mailbox: (mailbox id, folder, UIDVALIDITY, UID)."""
    return (sighting.mailbox_id, sighting.folder, sighting.uidvalidity, sighting.uid)


def _sighting_at(session: Session, place: tuple[uuid.UUID, str, int, int]) -> MailboxMessage:
    """The ledger row at ``place`` (``_place``): after a re-run, the one the engine wrote."""
    return session.scalars(
        select(MailboxMessage).where(
            MailboxMessage.mailbox_id == place[0],
            MailboxMessage.folder == place[1],
            MailboxMessage.uidvalidity == place[2],
            MailboxMessage.uid == place[3],
        )
    ).one()


def _rerun(session: Session, store: Store, sighting: MailboxMessage) -> Rerun:
    """The sighting's bytes through the engine's storing step; its ledger row is replaced
    by the one the engine writes (same folder and UID), as if seen for the first time."""
    mailbox = session.get(Mailbox, sighting.mailbox_id)
    assert mailbox is not None
    assert sighting.raw_sha256 is not None
    ctx = engine_context(session, mailbox)
    raw = store.blobs.get(sighting.raw_sha256)
    item = Fetched(
        sighting.folder, sighting.uidvalidity, sighting.uid, sighting.uidl, raw, len(raw)
    )
    place = _place(sighting)
    session.delete(sighting)
    session.flush()
    outcomes = prepare_fetched(
        [item], ParseLimits(max_bytes=ctx.settings.max_message_bytes), store.blobs.root
    ).outcomes()
    try:
        result = store_batch(session, store, ctx, [item], outcomes)
    finally:
        discard_leftovers(store.blobs.root, outcomes)
    again = _sighting_at(session, place)
    if again.tracked and again.email_id is not None:
        return Rerun(again.email_id, again.reason)
    return Rerun(None, again.reason, failed=bool(result.failed))


def _close(
    failure: ItemFailure | None,
    principal: Principal,
    outcome: Rerun,
    now: datetime,
) -> None:
    if failure is None or outcome.failed:
        return  # failed again: store_batch put it back in the queue, attempts counted
    failure.resolved_at, failure.resolved_by_id = now, principal.user_id
    failure.email_id = outcome.email_id
    failure.resolution = (
        ItemResolution.TRACKED if outcome.email_id is not None else ItemResolution.PROCESSED
    )
    if outcome.email_id is None:
        failure.detail = f"{failure.detail}\nRe-run: not tracked ({outcome.reason})."[:4000]


def retry(
    session: Session,
    store: Store,
    principal: Principal,
    kind: ItemKind,
    item_id: uuid.UUID,
    now: datetime | None = None,
) -> Rerun:
    """Re-run the item through the engine; a failure is resolved unless it fails again."""
    failure, sighting = _item_to_track(session, principal, kind, item_id)
    outcome = _rerun(session, store, sighting)
    _close(failure, principal, outcome, now or utcnow())
    return outcome


def create_contact_and_rerun(
    session: Session,
    store: Store,
    principal: Principal,
    kind: ItemKind,
    item_id: uuid.UUID,
    now: datetime | None = None,
) -> Rerun:
    """Make the sender a contact, then re-run the item so it is tracked against them."""
    now = now or utcnow()
    failure, sighting = _item_to_track(session, principal, kind, item_id)
    assert sighting.raw_sha256 is not None
    header = read_header(store.blobs.get(sighting.raw_sha256))
    if header is None or not header.sender_address:
        raise RuleViolation("NO_SENDER", "The message names no sender to make a contact of.")
    made = resolve_address(
        session, principal, header.sender_address, header.sender_name, RecordType.CONTACT
    )
    place = _place(sighting)
    outcome = _rerun(session, store, sighting)
    if outcome.email_id is None and not outcome.failed:
        # The mailbox tracks only replies to CRM email: the person asked, so track it.
        row = _sighting_at(session, place).id
        by_hand = track_message(session, store.blobs, principal, ledger_id=row, now=now)
        outcome = Rerun(by_hand.email.id, by_hand.reason)
    outcome = Rerun(outcome.email_id, outcome.reason, outcome.failed, made.record.id)
    _close(failure, principal, outcome, now)
    return outcome


def track_with_regarding(
    session: Session,
    store: Store,
    principal: Principal,
    kind: ItemKind,
    item_id: uuid.UUID,
    regarding: tuple[RecordType, uuid.UUID],
    now: datetime | None = None,
) -> Rerun:
    """Track the item by hand and make it regard ``regarding``."""
    now = now or utcnow()
    failure, sighting = _item(session, principal, kind, item_id)
    try:
        email_id = track_message(
            session, store.blobs, principal, ledger_id=sighting.id, now=now
        ).email.id
    except AlreadyTracked as exc:
        if exc.email_id is None:
            raise
        email_id = exc.email_id
    email = set_regarding(session, principal, email_id, regarding)
    outcome = Rerun(email.id, "tracked by hand, regarding set")
    _close(failure, principal, outcome, now)
    return outcome


def ignore(
    session: Session,
    principal: Principal,
    kind: ItemKind,
    item_id: uuid.UUID,
    now: datetime | None = None,
) -> None:
    """Leave the item untracked; the queue remembers who decided so, and when."""
    now = now or utcnow()
    if kind is ItemKind.FAILURE:
        failure = _failure(session, principal, item_id)
    else:
        sighting = _unknown(session, principal, item_id)
        mailbox = session.get(Mailbox, sighting.mailbox_id)
        assert mailbox is not None
        failure = ItemFailure(
            organisation_id=mailbox.organisation_id,
            mailbox_id=mailbox.id,
            channel=Channel.INCOMING,
            item_ref=_ignore_ref(sighting),
            code=UNKNOWN_SENDER,
            detail=f"Not tracked: {sighting.reason}.",
            raw_sha256=sighting.raw_sha256,
            first_seen_at=sighting.seen_at,
            last_seen_at=sighting.seen_at,
        )
        session.add(failure)
    failure.resolved_at, failure.resolved_by_id = now, principal.user_id
    failure.resolution = ItemResolution.IGNORED
    session.flush()

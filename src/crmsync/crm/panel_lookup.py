"""What the side panel shows beside an email: who its people are, and whether it is tracked.

Given an email's Internet Message-ID and its participants (``from``/``to``/``cc`` header
values as a mail client has them: ``"Ann <ann@x.example>, bob@y.example"``), ``lookup``
answers, for the principal:

* each distinct address, and what it resolves to through the address index
  (crm/addresses.py): the accounts, contacts and leads carrying it that the principal
  can read (a contact with its account, when that is readable too), the users and queues
  carrying it (colleagues: the directory is the organisation's to read), or nothing;
* the email: ``tracked`` (an email activity with this Message-ID that the principal can
  read: its subject, its regarding record when readable, how it was correlated),
  ``seen`` (a mailbox the principal can read saw the message, and no email the principal
  can read tracks it), or ``unknown``.

A record or an email the principal cannot read is left out as if it did not exist: the
answer for an address carried only by such records is "unresolved", and for an email
tracked only out of the principal's sight "seen" or "unknown".

Must never return a record, email, regarding record or mailbox reason the principal
could not read through crm/access.py, and never write.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import getaddresses
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.types import CorrelationMethod, Participation, Privilege, RecordType
from crmsync.crm import access, addresses
from crmsync.crm.access import Principal
from crmsync.crm.errors import RuleViolation
from crmsync.crm.models.activities import Email
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.records import Account, Contact, CustomerRecord, Lead
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.records import RECORD_MODELS

MAX_PARTICIPANTS = 100
COLLEAGUE_TYPES = (RecordType.USER, RecordType.QUEUE)
ROLES = (Participation.FROM, Participation.TO, Participation.CC)


class Resolution(enum.StrEnum):
    RECORD = "record"  # one or more customer records the principal can read
    COLLEAGUE = "colleague"  # a user's or a queue's address (it may be a record's too)
    UNRESOLVED = "unresolved"


class EmailState(enum.StrEnum):
    TRACKED = "tracked"
    SEEN = "seen"  # in a mailbox the principal can read, but tracked by nothing they see
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Participant:
    """One address of the email, as the client gave it: ``("Ann", "ann@x.example")``."""

    name: str
    address: str
    role: Participation


@dataclass(frozen=True)
class RecordRef:
    """A customer record by its type, id and the name shown for it."""

    record_type: RecordType
    id: uuid.UUID
    name: str


@dataclass(frozen=True)
class Match:
    record: RecordRef
    account: RecordRef | None = None  # a contact's account, when the principal can read it

    @property
    def colleague(self) -> bool:
        return self.record.record_type in COLLEAGUE_TYPES


@dataclass
class Person:
    address: str
    name: str
    roles: list[Participation]
    matches: list[Match] = field(default_factory=list)

    @property
    def resolution(self) -> Resolution:
        if any(match.colleague for match in self.matches):
            return Resolution.COLLEAGUE
        return Resolution.RECORD if self.matches else Resolution.UNRESOLVED


@dataclass(frozen=True)
class EmailFinding:
    state: EmailState
    message_id: str | None
    email_id: uuid.UUID | None = None
    subject: str | None = None
    regarding: RecordRef | None = None
    correlation_method: CorrelationMethod | None = None
    can_write: bool = False
    reason: str | None = None  # seen: why the mailbox did not track it


@dataclass(frozen=True)
class PanelLookup:
    people: list[Person]
    email: EmailFinding


def parse_participants(values_by_role: dict[Participation, Sequence[str]]) -> list[Participant]:
    """Header values → participants, in role order, skipping what is not an address.

    ``{FROM: ['"Doe, Ann" <ann@x.example>'], TO: ['b@y.example, C <c@z.example>']}`` →
    ``[("Doe, Ann", "ann@x.example", FROM), ("", "b@y.example", TO), ("C", ..., TO)]``.
    """
    found = []
    for role in ROLES:
        for name, address in getaddresses(list(values_by_role.get(role, ()))):
            if _usable(address):
                found.append(Participant(name.strip(), address.strip(), role))
    return found


def _usable(address: str) -> bool:
    # Control characters never belong in an address, and PostgreSQL refuses NUL in text.
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in address):
        return False
    return normalise_address(address) is not None


def message_id_forms(text: str | None) -> list[str]:
    """How a Message-ID may be stored: ``' <a@x> '`` → ``['<a@x>', 'a@x']``; [] if none.

    The parser stores ids bracketed, without white space (tracking/headers.py); emails
    written through the API may have them bare.
    """
    if not text:
        return []
    inner = "".join(text.split()).removeprefix("<").removesuffix(">")
    if not inner or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in inner):
        return []
    return [f"<{inner}>", inner]


def lookup(
    session: Session,
    principal: Principal,
    *,
    participants: Sequence[Participant],
    message_id: str | None,
) -> PanelLookup:
    people = _people(participants)
    if len(people) > MAX_PARTICIPANTS:
        raise RuleViolation(
            "TOO_MANY_PARTICIPANTS",
            f"At most {MAX_PARTICIPANTS} distinct addresses can be looked up at once",
        )
    _resolve(session, principal, people)
    return PanelLookup(people=list(people.values()), email=_email(session, principal, message_id))


def _people(participants: Iterable[Participant]) -> dict[str, Person]:
    """One person per normalised address, with every role it has, first seen first."""
    people: dict[str, Person] = {}
    for participant in participants:
        key = normalise_address(participant.address)
        if key is None:
            continue
        person = people.get(key)
        if person is None:
            people[key] = Person(participant.address, participant.name, [participant.role])
            continue
        if participant.role not in person.roles:
            person.roles.append(participant.role)
        person.name = person.name or participant.name
    return people


def _resolve(session: Session, principal: Principal, people: dict[str, Person]) -> None:
    index = addresses.lookup(session, principal.organisation_id, people)
    wanted: dict[RecordType, set[uuid.UUID]] = {}
    for keys in index.values():
        for record_type, record_id in keys:
            wanted.setdefault(record_type, set()).add(record_id)
    readable = _readable(session, principal, wanted)
    accounts = _accounts_of(session, principal, readable)
    for address, keys in index.items():
        for key in keys:
            found = readable.get(key)
            if found is None:
                continue
            account_id = found.account_id if isinstance(found, Contact) else None
            account = accounts.get(account_id) if account_id is not None else None
            people[address].matches.append(Match(_ref(key[0], found), account))


def _readable(
    session: Session, principal: Principal, wanted: dict[RecordType, set[uuid.UUID]]
) -> dict[tuple[RecordType, uuid.UUID], Any]:
    """The wanted records the principal may read, by (type, id). One query per type."""
    found: dict[tuple[RecordType, uuid.UUID], Any] = {}
    for record_type, ids in wanted.items():
        if record_type in COLLEAGUE_TYPES:
            # The directory is readable by everyone in the organisation (crm/access.py).
            directory: Any = User if record_type is RecordType.USER else Queue
            rows: Iterable[Any] = session.scalars(
                select(directory).where(
                    directory.id.in_(ids), directory.organisation_id == principal.organisation_id
                )
            )
        elif record_type in RECORD_MODELS:
            model = RECORD_MODELS[record_type]
            rows = session.scalars(
                select(model).where(model.id.in_(ids), access.visible(model, principal))
            )
        else:
            continue
        for row in rows:
            found[(record_type, row.id)] = row
    return found


def _accounts_of(
    session: Session, principal: Principal, records: dict[tuple[RecordType, uuid.UUID], Any]
) -> dict[uuid.UUID, RecordRef]:
    ids = {r.account_id for r in records.values() if isinstance(r, Contact) and r.account_id}
    if not ids:
        return {}
    rows = session.scalars(
        select(Account).where(Account.id.in_(ids), access.visible(Account, principal))
    )
    return {row.id: _ref(RecordType.ACCOUNT, row) for row in rows}


def display_name(record: Any) -> str:
    """What people call a record: a contact's or user's full name, a lead's name or company."""
    if isinstance(record, Lead):
        person = f"{record.first_name} {record.last_name}".strip()
        return person or record.company_name or record.subject
    if isinstance(record, User):
        return record.full_name or record.username
    for attribute in ("full_name", "name", "title", "subject"):
        value = getattr(record, attribute, None)
        if value:
            return str(value)
    return ""


def _ref(record_type: RecordType, record: Any) -> RecordRef:
    return RecordRef(record_type, record.id, display_name(record))


def _email(session: Session, principal: Principal, message_id: str | None) -> EmailFinding:
    forms = message_id_forms(message_id)
    if not forms:
        return EmailFinding(EmailState.UNKNOWN, None)
    shown = forms[0]
    email = session.scalars(
        select(Email)
        .where(Email.message_id.in_(forms), access.visible(Email, principal))
        .order_by(Email.created_at, Email.id)
        .limit(1)
    ).first()
    if email is not None:
        return EmailFinding(
            EmailState.TRACKED,
            shown,
            email_id=email.id,
            subject=email.subject,
            regarding=_regarding(session, principal, email),
            correlation_method=email.correlation_method,
            can_write=access.can(session, principal, email, Privilege.WRITE),
        )
    sightings = session.execute(
        select(MailboxMessage.tracked, MailboxMessage.reason)
        .join(Mailbox, Mailbox.id == MailboxMessage.mailbox_id)
        .where(MailboxMessage.message_id.in_(forms), access.visible(Mailbox, principal))
        .order_by(MailboxMessage.seen_at.desc(), MailboxMessage.id)
    ).all()
    if not sightings:
        return EmailFinding(EmailState.UNKNOWN, shown)
    # A tracked sighting's reason would describe an email the principal cannot read.
    reasons = [reason for tracked, reason in sightings if not tracked and reason]
    return EmailFinding(EmailState.SEEN, shown, reason=reasons[0] if reasons else None)


def _regarding(session: Session, principal: Principal, email: Email) -> RecordRef | None:
    if email.regarding_type is None or email.regarding_id is None:
        return None
    model: type[CustomerRecord] | None = RECORD_MODELS.get(email.regarding_type)
    if model is None:
        return None
    record = session.get(model, email.regarding_id)
    if record is None or not access.can(session, principal, record, Privilege.READ):
        return None
    return _ref(email.regarding_type, record)

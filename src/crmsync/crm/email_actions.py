"""What a person does to a tracked email: set its regarding record, untrack it, and turn
an address nobody had into a contact or lead.

    set_regarding    the rule of crmsync.crm.activities: write on the email, append on
                     emails, append-to on a record the caller can read; the email's
                     correlation method becomes ``manual``
    untrack_email    deletes the activity (delete on it) and remembers that the message
                     is not to be tracked: its ``email_keys`` row becomes a tombstone
                     (crmsync.crm.models.sync_state.EmailKey) that every mailbox's next
                     sync respects, and the ledger rows of the mailboxes that saw it say
                     "untracked by <name>". Its raw bytes stay: it can be tracked again
                     by hand (crmsync.sync.manual_track).
    resolve_address  creates a contact or lead for an address (create privilege; the
                     caller owns it) and points every unresolved party with that address
                     in the organisation at it — also of activities the caller cannot
                     read: which record an address belongs to is a fact about the address,
                     not about one email. Those activities stay as visible as they were;
                     the new record follows its own access rules.

Tracking a message by hand needs the tracking pipeline, so it lives in sync/
(crmsync.sync.manual_track); this module must never import sync/, tracking/ or
connectors/, and never commits (the caller's unit of work does).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.email_keys import dedupe_key_of
from crmsync.core.types import CorrelationMethod, EmailStatus, Privilege, RecordType
from crmsync.crm.access import Principal
from crmsync.crm.activities import delete_activity, get_activity, update_activity
from crmsync.crm.db import utcnow
from crmsync.crm.errors import Conflict, InvalidReference
from crmsync.crm.models.activities import Activity, ActivityParty, Email
from crmsync.crm.models.org import User
from crmsync.crm.models.records import Contact, Lead
from crmsync.crm.models.sync_state import EmailKey, MailboxMessage
from crmsync.crm.records import create_record
from crmsync.crm.search import ESCAPE, escape_like

_IN_CHUNK = 500
_BUSY = (EmailStatus.PENDING_SEND, EmailStatus.SENDING)


def person_name(session: Session, principal: Principal) -> str:
    """How the caller is named in a ledger's reason: full name, else username."""
    user = session.get(User, principal.user_id)
    if user is None:
        return "the operator"
    return user.full_name or user.username


# -- regarding ---------------------------------------------------------------------------


def set_regarding(
    session: Session,
    principal: Principal,
    email_id: uuid.UUID,
    regarding: tuple[RecordType, uuid.UUID] | None,
) -> Email:
    """Make the email regard ``(record_type, id)``, or nothing (None).

    NotFound for an email the caller cannot read; Forbidden without write on it, append
    on emails or append-to on the record; InvalidReference for a record they cannot read.
    """
    email = get_activity(session, principal, Email, email_id)
    regarding_type, regarding_id = regarding if regarding is not None else (None, None)
    return update_activity(
        session,
        principal,
        email,
        {
            "regarding_type": regarding_type,
            "regarding_id": regarding_id,
            "correlation_method": CorrelationMethod.MANUAL,
        },
    )


# -- untrack -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Untracked:
    """What untracking left: the tombstoned keys and the mailboxes' ledger rows changed."""

    keys: list[str]
    sightings: int


def untrack_email(
    session: Session, principal: Principal, email_id: uuid.UUID, *, now: datetime | None = None
) -> Untracked:
    """Delete the email's activity and keep its message from being tracked again.

    Conflict for an email that is no message from a mailbox (a draft: delete it) or is
    being sent.
    """
    email = get_activity(session, principal, Email, email_id, Privilege.DELETE)
    if email.status in _BUSY:
        raise Conflict(
            f"The email is {email.status.value.replace('_', ' ')}: cancel it first",
            field="status",
        )
    now = now or utcnow()
    user = session.get(User, principal.user_id)
    rows = list(session.scalars(select(EmailKey).where(EmailKey.email_id == email.id)))
    own_key = dedupe_key_of(email.message_id, email.raw_sha256)
    if own_key is not None and all(row.key != own_key for row in rows):
        held = session.get(EmailKey, (email.organisation_id, own_key))
        if held is None:
            held = EmailKey(organisation_id=email.organisation_id, key=own_key)
            session.add(held)
            rows.append(held)
    if not rows:
        raise Conflict(
            "This email is no message from a mailbox, so there is nothing to untrack: "
            "delete it instead",
            field="email_id",
        )
    for row in rows:
        row.email_id = None
        row.untracked_at = now
        row.untracked_by_id = user.id if user is not None else None
    result = session.execute(
        update(MailboxMessage)
        .where(MailboxMessage.email_id == email.id)
        .values(
            tracked=False, email_id=None, reason=f"untracked by {person_name(session, principal)}"
        )
        .execution_options(synchronize_session=False)
    )
    session.flush()  # the keys are tombstones before the delete could cascade to them
    delete_activity(session, principal, email)
    return Untracked(
        keys=sorted(row.key for row in rows),
        sightings=int(result.rowcount or 0),  # type: ignore[attr-defined]
    )


# -- resolve an address ------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    record: Contact | Lead
    parties: int  # unresolved parties now pointing at it


def split_name(display_name: str, address: str) -> tuple[str, str]:
    """(first, last) from a display name: ``'Nancy Buyer'`` → ``('Nancy', 'Buyer')``,
    ``'Buyer, Nancy'`` → ``('Nancy', 'Buyer')``; without one, the address's local part is
    the last name."""
    name = " ".join(display_name.split()).strip("\"' ")
    if normalise_address(name) is not None:  # some clients write the address as the name
        name = ""
    if "," in name:
        last, _, first = name.partition(",")
        first, last = first.strip(), last.strip()
    else:
        first, _, last = name.rpartition(" ")
    if not last:
        first, last = first or "", address.strip().strip("<>").rpartition("@")[0] or address
    return first[:100], last[:100]


def resolve_address(
    session: Session,
    principal: Principal,
    address: str,
    display_name: str,
    as_type: RecordType,
) -> Resolved:
    """Create a contact (``as_type`` CONTACT) or lead (LEAD) for ``address``, owned by the
    caller, and point the organisation's unresolved parties with that address at it."""
    normalised = normalise_address(address)
    if normalised is None:
        raise InvalidReference("Not an email address", field="address")
    first, last = split_name(display_name, address)
    address = address.strip().strip("<>").strip()
    record: Contact | Lead
    if as_type is RecordType.CONTACT:
        record = create_record(
            session,
            principal,
            Contact,
            {"first_name": first, "last_name": last, "email1": address},
        )
        name = record.full_name
    elif as_type is RecordType.LEAD:
        shown = " ".join(display_name.split()) or address
        record = create_record(
            session,
            principal,
            Lead,
            {
                "subject": f"Email from {shown}"[:300],
                "first_name": first,
                "last_name": last,
                "email1": address,
            },
        )
        name = f"{first} {last}".strip()
    else:
        raise InvalidReference("An address becomes a contact or a lead", field="as")
    ids = unresolved_parties(session, principal.organisation_id, normalised)
    for start in range(0, len(ids), _IN_CHUNK):
        session.execute(
            update(ActivityParty)
            .where(ActivityParty.id.in_(ids[start : start + _IN_CHUNK]))
            .values(
                party_type=as_type,
                party_id=record.id,
                display_name=case(
                    (ActivityParty.display_name == "", name[:300]),
                    else_=ActivityParty.display_name,
                ),
            )
            .execution_options(synchronize_session=False)
        )
    session.flush()
    return Resolved(record, len(ids))


def unresolved_parties(
    session: Session, organisation_id: uuid.UUID, normalised: str
) -> list[uuid.UUID]:
    """Ids of the organisation's parties that name ``normalised`` and no record.

    Parties keep the address as written, so the database narrows by local part and the
    exact comparison is ``normalise_address``'s (case, IDNA domains).
    """
    local = normalised.rpartition("@")[0]
    rows = session.execute(
        select(ActivityParty.id, ActivityParty.address)
        .join(Activity, Activity.id == ActivityParty.activity_id)
        .where(
            Activity.organisation_id == organisation_id,
            ActivityParty.party_id.is_(None),
            func.lower(ActivityParty.address).like(f"%{escape_like(local)}@%", escape=ESCAPE),
        )
    )
    return [
        party_id
        for party_id, written in rows
        if written and normalise_address(written) == normalised
    ]

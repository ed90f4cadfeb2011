"""The index that resolves normalised email addresses (``core.addresses``) to records.

The index is maintained by a ``before_flush`` hook on every session, so no write path can
forget it: any new, changed or deleted email-enabled record rewrites its own entries.
It must never be written to by anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crmsync.core.addresses import normalise_address
from crmsync.core.types import RecordType
from crmsync.crm.models.activities import Activity
from crmsync.crm.models.org import Queue, User, UserAddress
from crmsync.crm.models.records import CustomerRecord
from crmsync.crm.models.sharing import EmailAddressEntry

IndexKey = tuple[RecordType, uuid.UUID]
Entry = tuple[str, str]  # (field, raw address)


def _entries_of(obj: Any, session: Session) -> tuple[IndexKey, uuid.UUID, list[Entry]] | None:
    """What ``obj`` contributes to the index: (record key, organisation, entries)."""
    if isinstance(obj, CustomerRecord) and obj.__email_fields__:
        entries = [(field, getattr(obj, field)) for field in obj.__email_fields__]
        return (obj.record_type, obj.id), obj.organisation_id, [e for e in entries if e[1]]
    if isinstance(obj, Queue):
        return (RecordType.QUEUE, obj.id), obj.organisation_id, [("email", obj.email or "")]
    if isinstance(obj, User):
        return (
            (RecordType.USER, obj.id),
            obj.organisation_id,
            [(f"address{entry.position}", entry.address) for entry in obj.addresses],
        )
    return None


def _ensure_id(obj: Any) -> None:
    if getattr(obj, "id", None) is None:
        obj.id = uuid.uuid4()


def _touched(session: Session) -> Iterator[Any]:
    for obj in list(session.new) + list(session.dirty):
        if isinstance(obj, UserAddress):
            # A changed address belongs to its user's entries.
            if obj.user is not None:
                yield obj.user
        elif not isinstance(obj, Activity):
            yield obj


def _reindex(session: Session, _flush_context: Any, _instances: Any) -> None:
    seen: set[int] = set()
    for obj in _touched(session):
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        _ensure_id(obj)
        contribution = _entries_of(obj, session)
        if contribution is None:
            continue
        (record_type, record_id), organisation_id, entries = contribution
        session.execute(
            delete(EmailAddressEntry).where(
                EmailAddressEntry.record_type == record_type,
                EmailAddressEntry.record_id == record_id,
            )
        )
        for field, raw in entries:
            normalised = normalise_address(raw) if raw else None
            if normalised:
                session.add(
                    EmailAddressEntry(
                        organisation_id=organisation_id,
                        address=normalised,
                        record_type=record_type,
                        record_id=record_id,
                        field=field,
                    )
                )
    for obj in session.deleted:
        contribution = _entries_of(obj, session)
        if contribution is not None:
            (record_type, record_id), _, _ = contribution
            session.execute(
                delete(EmailAddressEntry).where(
                    EmailAddressEntry.record_type == record_type,
                    EmailAddressEntry.record_id == record_id,
                )
            )


def install_address_index(session_class: type[Session] = Session) -> None:
    """Hook the index maintenance into every session (idempotent)."""
    from sqlalchemy import event

    if not event.contains(session_class, "before_flush", _reindex):
        event.listen(session_class, "before_flush", _reindex)


def lookup(
    session: Session, organisation_id: uuid.UUID, addresses: Iterable[str]
) -> dict[str, list[IndexKey]]:
    """Every record carrying each address: ``{'ann@x.example': [(CONTACT, id), ...]}``.

    One indexed query for the whole batch; addresses that are not addresses are skipped.
    """
    wanted = {n for n in (normalise_address(a) for a in addresses) if n}
    found: dict[str, list[IndexKey]] = {address: [] for address in wanted}
    if not wanted:
        return found
    rows = session.execute(
        select(
            EmailAddressEntry.address, EmailAddressEntry.record_type, EmailAddressEntry.record_id
        ).where(
            EmailAddressEntry.organisation_id == organisation_id,
            EmailAddressEntry.address.in_(wanted),
        )
    )
    for address, record_type, record_id in rows:
        key = (record_type, record_id)
        if key not in found[address]:
            found[address].append(key)
    return found

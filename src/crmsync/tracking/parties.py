"""Party resolution: which CRM records the From/To/Cc/Bcc addresses of an email are.

Gather → decide: the engine looks every address up in the address index in one query
(``crm.addresses.lookup``) and passes the result as ``matches``, keyed by normalised
address. ``resolve_parties`` then decides, as Dynamics 365 does:

- From resolves to ONE record, by type priority user > contact > account > lead > queue
  (the first of that type in ``matches``; other types after those, in order);
- To, Cc and Bcc resolve to EVERY active match, one party per record; or, when several
  match and ``PartyOptions.leave_ambiguous_unresolved`` is set, to one unresolved party;
- inactive records never resolve; an address that matches nothing stays as an unresolved
  party (``record`` None) with its display name, so the activity still shows it;
- the same address twice in one field collapses to one.

Pure: no I/O, never logs addresses. Relies on ``core.addresses.normalise_address`` for
keys (RFC 5321 local part case-folded, IDNA domain).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from crmsync.core.addresses import normalise_address
from crmsync.core.types import Participation, RecordType
from crmsync.tracking.parse import Address, ParsedMessage

__all__ = [
    "FROM_PRIORITY",
    "PartyOptions",
    "RecordRef",
    "ResolvedParty",
    "address_key",
    "resolve_parties",
    "sender_types",
]

FROM_PRIORITY = (
    RecordType.USER,
    RecordType.CONTACT,
    RecordType.ACCOUNT,
    RecordType.LEAD,
    RecordType.QUEUE,
)


@dataclass(frozen=True, slots=True)
class RecordRef:
    record_type: RecordType
    record_id: uuid.UUID
    active: bool = True


@dataclass(frozen=True, slots=True)
class PartyOptions:
    leave_ambiguous_unresolved: bool = False


@dataclass(frozen=True, slots=True)
class ResolvedParty:
    """One activity party. ``address`` is as written in the message."""

    participation: Participation
    address: str
    display_name: str
    record: RecordRef | None


Matches = Mapping[str, Sequence[RecordRef]]


def address_key(address: str) -> str:
    """The ``matches`` key of an address; what is not an address keys as itself, folded."""
    try:
        normalised = normalise_address(address)
    except (UnicodeError, ValueError):
        normalised = None
    return normalised or address.strip().casefold()


def _active(matches: Matches, key: str) -> list[RecordRef]:
    found: dict[tuple[RecordType, uuid.UUID], RecordRef] = {}
    for ref in matches.get(key, ()):
        if ref.active:
            found.setdefault((ref.record_type, ref.record_id), ref)
    return list(found.values())


def _sender_record(candidates: list[RecordRef]) -> RecordRef | None:
    for record_type in FROM_PRIORITY:
        for ref in candidates:
            if ref.record_type == record_type:
                return ref
    return candidates[0] if candidates else None


def _collapsed(addresses: Sequence[Address]) -> dict[str, tuple[str, str]]:
    """key → (address as first written, first non-empty display name), in order."""
    seen: dict[str, tuple[str, str]] = {}
    for address in addresses:
        key = address_key(address.address)
        written, name = seen.get(key, (address.address, ""))
        seen[key] = (written, name or address.name)
    return seen


def resolve_parties(
    msg: ParsedMessage, matches: Matches, options: PartyOptions = PartyOptions()
) -> list[ResolvedParty]:
    """The parties of ``msg`` in From, To, Cc, Bcc order.

    ``[ResolvedParty(FROM, 'ann@x.example', 'Ann', RecordRef(CONTACT, …)),
    ResolvedParty(TO, 'sales@y.example', '', None)]``
    """
    parties: list[ResolvedParty] = []
    for key, (written, name) in _collapsed(msg.from_).items():
        record = _sender_record(_active(matches, key))
        parties.append(ResolvedParty(Participation.FROM, written, name, record))
    fields = (
        (Participation.TO, msg.to),
        (Participation.CC, msg.cc),
        (Participation.BCC, msg.bcc),
    )
    for participation, addresses in fields:
        for key, (written, name) in _collapsed(addresses).items():
            records = _active(matches, key)
            if not records or (len(records) > 1 and options.leave_ambiguous_unresolved):
                parties.append(ResolvedParty(participation, written, name, None))
                continue
            parties.extend(ResolvedParty(participation, written, name, ref) for ref in records)
    return parties


def sender_types(msg: ParsedMessage, matches: Matches) -> frozenset[RecordType]:
    """Every record type an active match of a From address has, for ``filters.decide``."""
    return frozenset(
        ref.record_type
        for address in msg.from_
        for ref in _active(matches, address_key(address.address))
    )

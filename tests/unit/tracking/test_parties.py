"""Party resolution: From by priority, recipients to every active match, unresolved kept."""

from __future__ import annotations

import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from crmsync.core.types import Participation, RecordType
from crmsync.tracking.parse import Address, ParsedMessage
from crmsync.tracking.parties import (
    PartyOptions,
    RecordRef,
    ResolvedParty,
    address_key,
    resolve_parties,
    sender_types,
)
from tests.unit.tracking.strategies import party_messages

P = Participation
R = RecordType


def ref(record_type: RecordType, n: int, *, active: bool = True) -> RecordRef:
    return RecordRef(record_type, uuid.UUID(int=n), active)


LEAD = ref(R.LEAD, 1)
CONTACT = ref(R.CONTACT, 2)
ACCOUNT = ref(R.ACCOUNT, 3)
USER = ref(R.USER, 4)
QUEUE = ref(R.QUEUE, 5)
OLD_CONTACT = ref(R.CONTACT, 6, active=False)
OTHER_CONTACT = ref(R.CONTACT, 7)

MATCHES = {
    "ann@a.example": [LEAD, OLD_CONTACT, ACCOUNT, CONTACT, OTHER_CONTACT],
    "sales@crm.example": [QUEUE],
    "bob@a.example": [CONTACT, OTHER_CONTACT, OLD_CONTACT],
    "gone@a.example": [OLD_CONTACT],
    "me@crm.example": [QUEUE, USER],
}


def test_from_resolves_to_one_record_by_priority() -> None:
    msg = ParsedMessage(from_=(Address("Ann", "Ann@A.example"),))

    assert resolve_parties(msg, MATCHES) == [ResolvedParty(P.FROM, "Ann@A.example", "Ann", CONTACT)]
    users_first = ParsedMessage(from_=(Address("", "me@crm.example"),))
    assert resolve_parties(users_first, MATCHES)[0].record == USER


def test_recipients_resolve_to_every_active_match() -> None:
    msg = ParsedMessage(
        to=(Address("Sales", "sales@crm.example"), Address("Bob", "bob@a.example")),
        cc=(Address("", "gone@a.example"),),
        bcc=(Address("Stranger", "who@else.example"), Address("", "not an address")),
    )

    assert resolve_parties(msg, MATCHES) == [
        ResolvedParty(P.TO, "sales@crm.example", "Sales", QUEUE),
        ResolvedParty(P.TO, "bob@a.example", "Bob", CONTACT),
        ResolvedParty(P.TO, "bob@a.example", "Bob", OTHER_CONTACT),
        ResolvedParty(P.CC, "gone@a.example", "", None),  # inactive never resolves
        ResolvedParty(P.BCC, "who@else.example", "Stranger", None),
        ResolvedParty(P.BCC, "not an address", "", None),
    ]


def test_ambiguous_recipients_can_stay_unresolved() -> None:
    msg = ParsedMessage(to=(Address("Bob", "bob@a.example"), Address("", "sales@crm.example")))
    options = PartyOptions(leave_ambiguous_unresolved=True)

    assert resolve_parties(msg, MATCHES, options) == [
        ResolvedParty(P.TO, "bob@a.example", "Bob", None),
        ResolvedParty(P.TO, "sales@crm.example", "", QUEUE),
    ]


def test_duplicates_collapse_per_participation() -> None:
    msg = ParsedMessage(
        from_=(Address("", "ann@a.example"),),
        to=(Address("", "BOB@a.example"), Address("Bob", "bob@A.EXAMPLE")),
        cc=(Address("", "ann@a.example"),),
    )
    options = PartyOptions(leave_ambiguous_unresolved=True)

    assert resolve_parties(msg, MATCHES, options) == [
        ResolvedParty(P.FROM, "ann@a.example", "", CONTACT),
        ResolvedParty(P.TO, "BOB@a.example", "Bob", None),
        ResolvedParty(P.CC, "ann@a.example", "", None),
    ]


def test_sender_types() -> None:
    msg = ParsedMessage(from_=(Address("", "ann@a.example"),))

    assert sender_types(msg, MATCHES) == {R.LEAD, R.ACCOUNT, R.CONTACT}
    assert sender_types(ParsedMessage(from_=(Address("", "gone@a.example"),)), MATCHES) == set()
    assert sender_types(ParsedMessage(), MATCHES) == set()


def test_address_key() -> None:
    assert address_key(" <Ann@Bücher.Example> ") == "ann@xn--bcher-kva.example"
    assert address_key("Not An Address") == "not an address"


refs = st.builds(RecordRef, st.sampled_from(RecordType), st.uuids(), st.booleans())


@settings(max_examples=100)
@given(
    party_messages,
    st.dictionaries(
        st.sampled_from(["ann@a.example", "bob@b.example", "sales@x.test", "carol@a.example"]),
        st.lists(refs, max_size=4),
    ),
    st.booleans(),
)
def test_invariants(
    msg: ParsedMessage, matches: dict[str, list[RecordRef]], ambiguous: bool
) -> None:
    parties = resolve_parties(msg, matches, PartyOptions(ambiguous))

    assert all(p.record is None or p.record.active for p in parties)
    keys = [(p.participation, address_key(p.address), p.record) for p in parties]
    assert len(keys) == len(set(keys))
    senders = [p for p in parties if p.participation == P.FROM]
    assert len(senders) == len({address_key(a.address) for a in msg.from_})
    for party in parties:
        known = [r for r in matches.get(address_key(party.address), []) if r.active]
        assert (party.record is None) == (
            not known or (ambiguous and party.participation != P.FROM and len(set(known)) > 1)
        )

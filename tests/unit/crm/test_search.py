"""Search finds what a person types — names, titles, ticket numbers, addresses — best
first, and never a record they may not read. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.core.types import RecordType
from crmsync.crm import records
from crmsync.crm.models import Account, Case, Contact, Lead, Opportunity
from crmsync.crm.search import SearchHit, escape_like, search
from tests.conftest import Org


def _titles(hits: list[SearchHit]) -> list[str]:
    return [hit.title for hit in hits]


def test_every_record_type_is_found_by_what_people_call_it(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        fabrikam = records.create_record(
            session, admin, Account, {"name": "Fabrikam", "email1": "info@fabrikam.test"}
        )
        nancy = records.create_record(
            session,
            admin,
            Contact,
            {
                "first_name": "Nancy",
                "last_name": "Buyer",
                "email2": "nb@home.test",
                "account_id": fabrikam.id,
            },
        )
        records.create_record(
            session,
            admin,
            Lead,
            {"subject": "Wants a demo", "first_name": "Lee", "company_name": "Tailspin"},
        )
        records.create_record(
            session, admin, Opportunity, {"name": "200 seats", "account_id": fabrikam.id}
        )
        records.create_record(
            session, admin, Case, {"title": "Printer on fire", "ticket_number": "CAS-01234"}
        )
        found = {
            q: [(hit.record_type, hit.title, hit.subtitle) for hit in search(session, admin, q)]
            for q in ("nancy buyer", "NB@HOME", "tailspin", "200 SEATS", "cas-012", "fire")
        }
        assert found["nancy buyer"] == [
            (RecordType.CONTACT, "Nancy Buyer", "nb@home.test · Fabrikam")
        ]
        assert found["NB@HOME"] == [(RecordType.CONTACT, "Nancy Buyer", "nb@home.test · Fabrikam")]
        assert found["tailspin"] == [(RecordType.LEAD, "Lee", "Wants a demo · Tailspin")]
        assert found["200 SEATS"] == [(RecordType.OPPORTUNITY, "200 seats", "Fabrikam")]
        assert found["cas-012"] == [(RecordType.CASE, "Printer on fire", "CAS-01234")]
        assert found["fire"] == found["cas-012"]
        hits = search(session, admin, "fabrikam")
        assert {(hit.record_type, hit.record_id) for hit in hits} == {
            (RecordType.ACCOUNT, fabrikam.id)
        }  # a contact's or deal's account is a subtitle, not a match
        assert search(session, admin, "buyer", types=[RecordType.LEAD]) == []
        assert search(session, admin, "buyer", types=[RecordType.CONTACT])[0].record_id == nancy.id
        assert search(session, admin, "   ") == []


def test_exact_matches_come_first_then_prefixes(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        for name in ("Big Acme Holdings", "Acme Corp", "acme", "Zed Acme"):
            records.create_record(session, admin, Account, {"name": name})
        records.create_record(session, admin, Contact, {"first_name": "Acmel", "last_name": "X"})
        hits = search(session, admin, "Acme")
        assert _titles(hits) == ["acme", "Acme Corp", "Acmel X", "Big Acme Holdings", "Zed Acme"]
        assert _titles(search(session, admin, "acme", limit=2)) == ["acme", "Acme Corp"]


def test_an_address_finds_its_records_however_it_is_written(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        records.create_record(
            session, admin, Contact, {"last_name": "Müller", "email1": "Ann@Bücher.Example"}
        )
        records.create_record(
            session, admin, Account, {"name": "Bücher GmbH", "email1": "ann@xn--bcher-kva.example"}
        )
        hits = search(session, admin, "ANN@xn--BCHER-kva.example")
        assert {hit.record_type for hit in hits} == {RecordType.CONTACT, RecordType.ACCOUNT}
        assert _titles(search(session, admin, "müller")) == ["Müller"]


def test_records_the_caller_may_not_read_are_never_found_nor_named(org: Org) -> None:
    with org.store.transaction() as session:
        north = org.add_unit(session, "North")
        south = org.add_unit(session, "South")
        ann = org.add_user(session, "ann", unit_id=north)
        cid = org.add_user(session, "cid", unit_id=south)
        admin = org.principal(session, org.admin_id)
        secret = records.create_record(
            session, admin, Account, {"name": "Secret Fabrikam"}, owner_id=cid
        )
        records.create_record(
            session,
            admin,
            Contact,
            {"last_name": "Fabrikam Fan", "account_id": secret.id},
            owner_id=ann,
        )
        records.create_record(session, admin, Contact, {"last_name": "Fabrikam Spy"}, owner_id=cid)
    with org.store.transaction() as session:
        as_ann = search(session, org.principal(session, ann), "fabrikam")
        as_cid = search(session, org.principal(session, cid), "fabrikam")
    assert [(hit.title, hit.subtitle) for hit in as_ann] == [("Fabrikam Fan", "")]
    assert _titles(as_cid) == ["Fabrikam Spy", "Secret Fabrikam"]


def test_wildcards_in_the_query_are_plain_characters(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        for name in ("50% off", "500 off", "a_b", "axb", "back\\slash", "backslash"):
            records.create_record(session, admin, Account, {"name": name})
        assert _titles(search(session, admin, "50%")) == ["50% off"]
        assert _titles(search(session, admin, "a_b")) == ["a_b"]
        assert _titles(search(session, admin, "k\\s")) == ["back\\slash"]
        assert _titles(search(session, admin, "%")) == ["50% off"]


def test_escape_like_escapes_exactly_the_wildcards() -> None:
    assert escape_like("50%_a\\b") == "50\\%\\_a\\\\b"


ALPHABET = "aA%_\\b"


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    names=st.lists(st.text(ALPHABET, min_size=1, max_size=6), min_size=1, max_size=6),
    query=st.text(ALPHABET, min_size=1, max_size=3),
)
def test_search_is_a_case_blind_substring_match_whatever_is_typed(
    org: Org, names: list[str], query: str
) -> None:
    """Whatever mixture of wildcards and escapes is typed, the hits are exactly the
    records whose name contains it, ignoring case."""
    session = org.store.sessions()
    try:  # nothing is committed: every example starts from the same organisation
        admin = org.principal(session, org.admin_id)
        made = {
            records.create_record(session, admin, Account, {"name": name}).id: name
            for name in names
        }
        hits = search(session, admin, query, limit=50)
        assert {hit.record_id for hit in hits} == {
            record_id for record_id, name in made.items() if query.lower() in name.lower()
        }
    finally:
        session.rollback()
        session.close()

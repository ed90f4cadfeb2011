"""The normalised address index: one lookup finds every record carrying an address."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from crmsync.core.addresses import normalise_address
from crmsync.core.types import RecordType
from crmsync.crm import records
from crmsync.crm.addresses import lookup
from crmsync.crm.models import Contact, Queue, User, UserAddress
from tests.conftest import Org


def test_normalise_folds_case_and_encodes_idn() -> None:
    assert normalise_address(" Ann@Bücher.Example ") == "ann@xn--bcher-kva.example"
    assert normalise_address("<ANN@EXAMPLE.TEST>") == "ann@example.test"
    assert normalise_address("ann@example.test.") == "ann@example.test"
    for bad in ("", "ann", "@example.test", "ann@", "a b@example.test"):
        assert normalise_address(bad) is None


local_parts = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFXYZ0123456789._+-", min_size=1, max_size=20
)
# No "ß": its upper case is "SS", and IDNA 2008 rightly treats "ß" and "ss" as two domains.
labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäöüé", min_size=1, max_size=12)


@given(local=local_parts, domain=st.lists(labels, min_size=2, max_size=3))
def test_normalise_is_idempotent_and_case_blind(local: str, domain: list[str]) -> None:
    address = f"{local}@{'.'.join(domain)}"
    once = normalise_address(address)
    assert once is not None
    assert normalise_address(once) == once
    assert normalise_address(address.upper()) == normalise_address(address.lower())


def test_index_follows_creates_updates_and_deletes(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        contact = records.create_record(
            session,
            admin,
            Contact,
            {"last_name": "Buyer", "email1": "Buyer@Fabrikam.test", "email2": "b2@fabrikam.test"},
        )
        queue = Queue(
            organisation_id=org.organisation_id,
            business_unit_id=org.root_unit_id,
            owner_id=org.admin_id,
            name="Support",
            email="support@acme.test",
        )
        session.add(queue)
        session.flush()
        found = lookup(
            session,
            org.organisation_id,
            ["buyer@FABRIKAM.test", "b2@fabrikam.test", "support@acme.test", "nobody@x.test"],
        )
        assert found["buyer@fabrikam.test"] == [(RecordType.CONTACT, contact.id)]
        assert found["b2@fabrikam.test"] == [(RecordType.CONTACT, contact.id)]
        assert found["support@acme.test"] == [(RecordType.QUEUE, queue.id)]
        assert found["nobody@x.test"] == []

        records.update_record(
            session, admin, contact, {"email1": "new@fabrikam.test", "email2": None}
        )
        found = lookup(
            session,
            org.organisation_id,
            ["buyer@fabrikam.test", "new@fabrikam.test", "b2@fabrikam.test"],
        )
        assert found == {
            "buyer@fabrikam.test": [],
            "b2@fabrikam.test": [],
            "new@fabrikam.test": [(RecordType.CONTACT, contact.id)],
        }
        records.delete_record(session, admin, contact)
        assert lookup(session, org.organisation_id, ["new@fabrikam.test"]) == {
            "new@fabrikam.test": []
        }


def test_user_addresses_are_indexed_and_several_records_share_one(org: Org) -> None:
    with org.store.transaction() as session:
        user_id = org.add_user(session, "ann", addresses=("ann@acme.test", "sales@acme.test"))
        admin = org.principal(session, org.admin_id)
        contact = records.create_record(
            session, admin, Contact, {"last_name": "Alias", "email1": "sales@acme.test"}
        )
        found = lookup(session, org.organisation_id, ["sales@acme.test", "ann@acme.test"])
        assert found["ann@acme.test"] == [(RecordType.USER, user_id)]
        assert set(found["sales@acme.test"]) == {
            (RecordType.USER, user_id),
            (RecordType.CONTACT, contact.id),
        }
        user = session.get(User, user_id)
        assert user is not None
        user.addresses = [UserAddress(position=0, address="ann.new@acme.test")]
        session.flush()
        found = lookup(session, org.organisation_id, ["ann@acme.test", "ann.new@acme.test"])
        assert found == {"ann@acme.test": [], "ann.new@acme.test": [(RecordType.USER, user_id)]}


def test_lookup_is_per_organisation(org: Org) -> None:
    from tests.conftest import make_org

    other = make_org(org.store, "Globex")
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        records.create_record(session, admin, Contact, {"last_name": "X", "email1": "x@y.test"})
        assert lookup(session, other.organisation_id, ["x@y.test"]) == {"x@y.test": []}
        assert lookup(session, uuid.uuid4(), []) == {}

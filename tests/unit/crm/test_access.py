"""Who sees what: role depth, business units, shares, organisations, the timeline."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crmsync.core.types import Participation, Privilege, RecordType
from crmsync.crm import access, activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.errors import Forbidden, InvalidReference, NotFound
from crmsync.crm.models import Account, Contact, Email, Team
from crmsync.crm.setup import READ_ONLY
from crmsync.crm.timeline import timeline
from tests.conftest import Org, make_org


def _account(org: Org, owner_id, name: str = "Fabrikam") -> Account:  # type: ignore[no-untyped-def]
    with org.store.transaction() as session:
        principal = org.principal(session, owner_id)
        return records.create_record(session, principal, Account, {"name": name})


def test_salesperson_sees_own_unit_but_not_another(org: Org) -> None:
    with org.store.transaction() as session:
        north = org.add_unit(session, "North")
        south = org.add_unit(session, "South")
        ann = org.add_user(session, "ann", unit_id=north)
        bob = org.add_user(session, "bob", unit_id=north)
        cid = org.add_user(session, "cid", unit_id=south)
    account = _account(org, ann)
    with org.store.transaction() as session:
        for viewer, sees in ((ann, True), (bob, True), (cid, False), (org.admin_id, True)):
            principal = org.principal(session, viewer)
            listed = session.scalars(select(Account).where(access.visible(Account, principal)))
            assert ({a.id for a in listed} == {account.id}) is sees
            if sees:
                records.get_record(session, principal, Account, account.id)
            else:
                with pytest.raises(NotFound):
                    records.get_record(session, principal, Account, account.id)


def test_business_unit_reader_cannot_write_a_colleagues_record(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        bob = org.add_user(session, "bob")
    account = _account(org, ann)
    with org.store.transaction() as session:
        principal = org.principal(session, bob)
        record = records.get_record(session, principal, Account, account.id)
        with pytest.raises(Forbidden):
            records.update_record(session, principal, record, {"name": "Renamed"})
        with pytest.raises(Forbidden):
            records.delete_record(session, principal, record)


def test_user_without_roles_sees_nothing_until_shared_with_their_team(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        dan = org.add_user(session, "dan", role=None)
        team = Team(
            organisation_id=org.organisation_id, business_unit_id=org.root_unit_id, name="Key"
        )
        session.add(team)
        session.flush()
        team.members = [session.get(type(team).members.property.mapper.class_, dan)]
        team_id = team.id
    account = _account(org, ann)
    with org.store.transaction() as session:
        with pytest.raises(NotFound):
            records.get_record(session, org.principal(session, dan), Account, account.id)
        record = records.get_record(session, org.principal(session, ann), Account, account.id)
        records.share_record(session, org.principal(session, ann), record, team_id=team_id)
    with org.store.transaction() as session:
        principal = org.principal(session, dan)
        seen = records.get_record(session, principal, Account, account.id)
        assert seen.id == account.id
        with pytest.raises(Forbidden):
            records.update_record(session, principal, seen, {"name": "x"})


def test_write_share_allows_update(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        dan = org.add_user(session, "dan", role=None)
    account = _account(org, ann)
    with org.store.transaction() as session:
        record = records.get_record(session, org.principal(session, ann), Account, account.id)
        records.share_record(
            session, org.principal(session, ann), record, user_id=dan, can_write=True
        )
    with org.store.transaction() as session:
        principal = org.principal(session, dan)
        record = records.get_record(session, principal, Account, account.id)
        records.update_record(session, principal, record, {"name": "Shared and renamed"})
    with org.store.transaction() as session:
        assert session.get(Account, account.id).name == "Shared and renamed"  # type: ignore[union-attr]


def test_nothing_crosses_organisations(org: Org) -> None:
    other = make_org(org.store, "Globex")
    account = _account(org, org.admin_id)
    with org.store.transaction() as session:
        principal = other.principal(session, other.admin_id)
        assert principal.depth(RecordType.ACCOUNT, Privilege.READ) is not None
        with pytest.raises(NotFound):
            records.get_record(session, principal, Account, account.id)
        page = records.list_records(session, principal, Account)
        assert page.items == []
        # Not even as a reference: the other admin cannot attach a contact to it.
        with pytest.raises(InvalidReference):
            records.create_record(
                session, principal, Contact, {"last_name": "Spy", "account_id": account.id}
            )


def test_read_only_role_can_read_everything_but_create_nothing(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann", unit_id=org.add_unit(session, "Far"))
        reader = org.add_user(session, "reader", role=READ_ONLY)
    account = _account(org, ann)
    with org.store.transaction() as session:
        principal = org.principal(session, reader)
        records.get_record(session, principal, Account, account.id)
        with pytest.raises(Forbidden):
            records.create_record(session, principal, Account, {"name": "Mine"})


def test_timeline_never_shows_an_activity_the_caller_may_not_read(org: Org) -> None:
    with org.store.transaction() as session:
        north = org.add_unit(session, "North")
        south = org.add_unit(session, "South")
        ann = org.add_user(session, "ann", unit_id=north)
        cid = org.add_user(session, "cid", unit_id=south)
    account = _account(org, org.admin_id)  # organisation-wide visible? no: admin's own
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        record = records.get_record(session, admin, Account, account.id)
        records.share_record(session, admin, record, user_id=ann)
        records.share_record(session, admin, record, user_id=cid)
        for owner, subject in ((ann, "north email"), (cid, "south email")):
            activities.create_activity(
                session,
                admin,
                Email,
                {
                    "subject": subject,
                    "regarding_type": RecordType.ACCOUNT,
                    "regarding_id": account.id,
                },
                [PartySpec(Participation.TO, address="buyer@fabrikam.test")],
                owner_id=owner,
            )
    with org.store.transaction() as session:
        admin_view = timeline(
            session, org.principal(session, org.admin_id), RecordType.ACCOUNT, account.id
        )
        ann_view = timeline(session, org.principal(session, ann), RecordType.ACCOUNT, account.id)
        cid_view = timeline(session, org.principal(session, cid), RecordType.ACCOUNT, account.id)
    assert sorted(i.activity.subject for i in admin_view.items) == ["north email", "south email"]
    assert [i.activity.subject for i in ann_view.items] == ["north email"]
    assert [i.activity.subject for i in cid_view.items] == ["south email"]


def test_timeline_includes_activities_naming_the_record_as_a_party(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        contact = records.create_record(
            session, admin, Contact, {"last_name": "Buyer", "email1": "buyer@fabrikam.test"}
        )
        activities.create_activity(
            session,
            admin,
            Email,
            {"subject": "hello"},
            [PartySpec(Participation.TO, RecordType.CONTACT, contact.id)],
        )
        page = timeline(session, admin, RecordType.CONTACT, contact.id)
    assert [i.activity.subject for i in page.items] == ["hello"]
    assert page.items[0].activity.parties[0].display_name == "Buyer"
    assert page.items[0].via is None


def test_regarding_needs_append_to_on_the_record(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        bob = org.add_user(session, "bob")
    account = _account(org, ann)
    with org.store.transaction() as session:
        principal = org.principal(session, bob)  # reads ann's account (same unit) only
        with pytest.raises(Forbidden):
            activities.create_activity(
                session,
                principal,
                Email,
                {"regarding_type": RecordType.ACCOUNT, "regarding_id": account.id},
                [],
            )

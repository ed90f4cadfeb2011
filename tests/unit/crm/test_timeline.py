"""An account's and a contact's timeline roll up their related records' activities, once
each, newest first, saying through which record — and never through one the reader may
not see. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from crmsync.core.types import Participation, RecordType
from crmsync.crm import activities, records
from crmsync.crm.activities import PartySpec
from crmsync.crm.errors import NotFound
from crmsync.crm.models import Account, Case, Contact, Opportunity, Task
from crmsync.crm.pagination import Page
from crmsync.crm.timeline import TimelineItem, Via, timeline
from tests.conftest import Org
from tests.unit.crm.activity_support import add_email

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


_email = partial(add_email, start=START)


def _seen(page: Page[TimelineItem]) -> list[tuple[str, str | None]]:
    return [(item.activity.subject, item.via.name if item.via else None) for item in page.items]


def test_an_account_shows_what_regards_or_addresses_its_contacts_deals_and_cases(
    org: Org,
) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        contoso = records.create_record(session, admin, Account, {"name": "Contoso"})
        nancy = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Nancy", "last_name": "Buyer", "account_id": contoso.id},
        )
        deal = records.create_record(
            session, admin, Opportunity, {"name": "200 seats", "account_id": contoso.id}
        )
        ticket = records.create_record(
            session, admin, Case, {"title": "Printer on fire", "account_id": contoso.id}
        )
        elsewhere = records.create_record(session, admin, Contact, {"last_name": "Stranger"})
        _email(session, admin, "own", 1, regarding=(RecordType.ACCOUNT, contoso.id))
        _email(
            session,
            admin,
            "from nancy",
            2,
            parties=[PartySpec(Participation.FROM, RecordType.CONTACT, nancy.id)],
        )
        _email(session, admin, "about nancy", 3, regarding=(RecordType.CONTACT, nancy.id))
        _email(session, admin, "the deal", 4, regarding=(RecordType.OPPORTUNITY, deal.id))
        _email(session, admin, "the case", 5, regarding=(RecordType.CASE, ticket.id))
        # Own and through Nancy: once, as the account's own.
        _email(
            session,
            admin,
            "both",
            6,
            regarding=(RecordType.ACCOUNT, contoso.id),
            parties=[PartySpec(Participation.TO, RecordType.CONTACT, nancy.id)],
        )
        # Through Nancy twice (regarding and party) and through the deal: once, via Nancy.
        _email(
            session,
            admin,
            "twice",
            7,
            regarding=(RecordType.OPPORTUNITY, deal.id),
            parties=[
                PartySpec(Participation.TO, RecordType.CONTACT, nancy.id),
                PartySpec(Participation.CC, RecordType.CONTACT, nancy.id),
            ],
        )
        _email(session, admin, "not contoso", 8, regarding=(RecordType.CONTACT, elsewhere.id))
        task = activities.create_activity(
            session,
            admin,
            Task,
            {"subject": "call back", "regarding_type": RecordType.CASE, "regarding_id": ticket.id},
            [],
        )
        task.occurred_at = START + timedelta(minutes=9)
        page = timeline(session, admin, RecordType.ACCOUNT, contoso.id)
    assert _seen(page) == [
        ("call back", "Printer on fire"),
        ("twice", "Nancy Buyer"),
        ("both", None),
        ("the case", "Printer on fire"),
        ("the deal", "200 seats"),
        ("about nancy", "Nancy Buyer"),
        ("from nancy", "Nancy Buyer"),
        ("own", None),
    ]
    assert page.next_cursor is None
    vias = {item.activity.subject: item.via for item in page.items}
    assert vias["the deal"] == Via(RecordType.OPPORTUNITY, deal.id, "200 seats")
    assert vias["from nancy"] == Via(RecordType.CONTACT, nancy.id, "Nancy Buyer")


def test_a_contact_shows_its_deals_and_cases_but_not_its_colleagues(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Contoso"})
        nancy = records.create_record(
            session, admin, Contact, {"last_name": "Buyer", "account_id": account.id}
        )
        colleague = records.create_record(
            session, admin, Contact, {"last_name": "Colleague", "account_id": account.id}
        )
        deal = records.create_record(
            session, admin, Opportunity, {"name": "Renewal", "contact_id": nancy.id}
        )
        ticket = records.create_record(
            session, admin, Case, {"title": "Broken", "contact_id": nancy.id}
        )
        _email(session, admin, "deal", 1, regarding=(RecordType.OPPORTUNITY, deal.id))
        _email(session, admin, "case", 2, regarding=(RecordType.CASE, ticket.id))
        _email(session, admin, "colleague", 3, regarding=(RecordType.CONTACT, colleague.id))
        _email(session, admin, "account", 4, regarding=(RecordType.ACCOUNT, account.id))
        page = timeline(session, admin, RecordType.CONTACT, nancy.id)
    assert _seen(page) == [("case", "Broken"), ("deal", "Renewal")]


def test_a_salesperson_never_sees_another_units_email_in_the_roll_up(org: Org) -> None:
    with org.store.transaction() as session:
        north = org.add_unit(session, "North")
        south = org.add_unit(session, "South")
        ann = org.add_user(session, "ann", unit_id=north)
        cid = org.add_user(session, "cid", unit_id=south)
        admin = org.principal(session, org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Contoso"})
        records.share_record(session, admin, account, user_id=ann)
        nancy = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Nancy", "last_name": "Buyer", "account_id": account.id},
            owner_id=ann,
        )
        secret = records.create_record(
            session,
            admin,
            Contact,
            {"first_name": "Secret", "last_name": "Source", "account_id": account.id},
            owner_id=cid,
        )
        for owner, subject in ((ann, "north"), (cid, "south")):
            _email(
                session,
                admin,
                subject,
                1 if owner == ann else 2,
                parties=[PartySpec(Participation.FROM, RecordType.CONTACT, nancy.id)],
                owner_id=owner,
            )
        # Ann's own email, about a contact she may not read: it is hers, but it does not
        # come into the account's timeline through that contact, nor name it.
        _email(
            session,
            admin,
            "via the secret",
            3,
            regarding=(RecordType.CONTACT, secret.id),
            owner_id=ann,
        )
    with org.store.transaction() as session:
        as_ann = timeline(session, org.principal(session, ann), RecordType.ACCOUNT, account.id)
        as_admin = timeline(
            session, org.principal(session, org.admin_id), RecordType.ACCOUNT, account.id
        )
        with pytest.raises(NotFound):
            timeline(session, org.principal(session, cid), RecordType.ACCOUNT, account.id)
    assert _seen(as_ann) == [("north", "Nancy Buyer")]
    assert _seen(as_admin) == [
        ("via the secret", "Secret Source"),
        ("south", "Nancy Buyer"),
        ("north", "Nancy Buyer"),
    ]


def test_pages_of_a_roll_up_hold_every_activity_once(org: Org) -> None:
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        account = records.create_record(session, admin, Account, {"name": "Contoso"})
        nancy = records.create_record(
            session, admin, Contact, {"last_name": "Buyer", "account_id": account.id}
        )
        made = set()
        for minute in range(7):
            # Some at the same moment, so ties are broken by id across pages.
            made.add(
                _email(
                    session,
                    admin,
                    f"m{minute}",
                    minute // 2,
                    regarding=(RecordType.ACCOUNT, account.id),
                    parties=[PartySpec(Participation.TO, RecordType.CONTACT, nancy.id)],
                )
            )
    seen: list[uuid.UUID] = []
    cursor = None
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        while True:
            page = timeline(session, admin, RecordType.ACCOUNT, account.id, cursor=cursor, limit=3)
            seen.extend(item.activity.id for item in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert len(seen) == len(made) == len(set(seen))
    assert set(seen) == made

"""The side panel's lookup: who an email's people are, and whether it is tracked — for the
caller's eyes only."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from crmsync.core.types import CorrelationMethod, RecordType
from crmsync.crm import connect
from crmsync.crm.auth import issue_token
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Account, Contact, Email, Lead
from crmsync.crm.models.org import Queue, User
from crmsync.crm.models.sync_state import MailboxMessage
from crmsync.crm.store import Store
from tests.conftest import Org
from tests.unit.api.panel_support import PANEL, bearer, panel_client

LOOKUP = f"{PANEL}/lookup"


@pytest.fixture
def client(store: Store, org: Org) -> Iterator[TestClient]:
    yield from panel_client(store)


@dataclass
class World:
    """East and West business units; Sally sells in East and reads East's records only."""

    sally: dict[str, str]  # her panel token
    admin: dict[str, str]
    east_contact: uuid.UUID
    east_account: uuid.UUID
    west_contact: uuid.UUID
    west_account: uuid.UUID
    east_lead: uuid.UUID
    bob: uuid.UUID
    queue: uuid.UUID
    tracked_east: uuid.UUID
    tracked_west: uuid.UUID


def _owned(org: Org, session: Session, owner: uuid.UUID) -> dict[str, Any]:
    user = session.get(User, owner)
    assert user is not None
    return {
        "organisation_id": org.organisation_id,
        "owner_id": owner,
        "owning_business_unit_id": user.business_unit_id,
    }


def _panel_token(client: TestClient, store: Store, user_id: uuid.UUID) -> dict[str, str]:
    with store.transaction() as session:
        user = session.get(User, user_id)
        assert user is not None
        code, _ = connect.issue_connect_code(session, user)
    response = client.post(f"{PANEL}/tokens", json={"code": code, "name": "Outlook"})
    assert response.status_code == 201, response.text
    return bearer(response.json()["token"])


@pytest.fixture
def world(client: TestClient, org: Org, store: Store) -> World:
    with store.transaction() as session:
        east = org.add_unit(session, "East")
        west = org.add_unit(session, "West")
        sally_id = org.add_user(session, "sally", unit_id=east, addresses=("sally@acme.test",))
        erin = org.add_user(session, "erin", unit_id=east)
        wes = org.add_user(session, "wes", unit_id=west)
        bob = org.add_user(session, "bob", unit_id=west, addresses=("Bob@Acme.test",))
        queue = Queue(
            organisation_id=org.organisation_id,
            business_unit_id=org.root_unit_id,
            owner_id=org.admin_id,
            name="Support",
            email="support@acme.test",
        )
        east_account = Account(name="Fabrikam East", **_owned(org, session, erin))
        west_account = Account(name="Fabrikam West", **_owned(org, session, wes))
        session.add_all([queue, east_account, west_account])
        session.flush()
        east_contact = Contact(
            first_name="Ann",
            last_name="East",
            email1="ann@fabrikam.test",
            account_id=east_account.id,
            **_owned(org, session, erin),
        )
        # Same address, another business unit: Sally must not learn it exists.
        west_contact = Contact(
            first_name="Ann",
            last_name="West",
            email2="ANN@fabrikam.test",
            account_id=west_account.id,
            **_owned(org, session, wes),
        )
        # Readable contact whose account is not.
        east_contact_of_west = Contact(
            last_name="Cross",
            email1="cross@fabrikam.test",
            account_id=west_account.id,
            **_owned(org, session, erin),
        )
        west_only = Contact(
            last_name="Hidden", email1="hidden@west.test", **_owned(org, session, wes)
        )
        east_lead = Lead(
            subject="Interested in widgets",
            company_name="Northwind",
            email1="buyer@northwind.test",
            **_owned(org, session, erin),
        )
        session.add_all([east_contact, west_contact, east_contact_of_west, west_only, east_lead])
        session.flush()
        tracked_east = Email(
            subject="Quote for Fabrikam",
            message_id="<east-1@fabrikam.test>",
            regarding_type=RecordType.ACCOUNT,
            regarding_id=east_account.id,
            correlation_method=CorrelationMethod.IN_REPLY_TO,
            **_owned(org, session, erin),
        )
        regarding_hidden = Email(
            subject="About the West deal",
            message_id="<east-2@fabrikam.test>",
            regarding_type=RecordType.ACCOUNT,
            regarding_id=west_account.id,
            **_owned(org, session, erin),
        )
        tracked_west = Email(
            subject="West secrets",
            message_id="<west-1@fabrikam.test>",
            **_owned(org, session, wes),
        )
        session.add_all([tracked_east, regarding_hidden, tracked_west])
        sally_user = session.get(User, sally_id)
        assert sally_user is not None
        mailbox = create_mailbox_for(session, user=sally_user)
        wes_user = session.get(User, wes)
        assert wes_user is not None
        wes_mailbox = create_mailbox_for(session, user=wes_user)
        session.flush()
        session.add_all(
            [
                # Sally's mailbox saw the West email, which West tracked.
                MailboxMessage(
                    mailbox_id=mailbox.id,
                    folder="INBOX",
                    uid=1,
                    message_id="<west-1@fabrikam.test>",
                    email_id=tracked_west.id,
                    tracked=True,
                    reason="tracked: correlated with West secrets",
                ),
                MailboxMessage(
                    mailbox_id=mailbox.id,
                    folder="INBOX",
                    uid=2,
                    message_id="<newsletter@list.test>",
                    tracked=False,
                    reason="not tracked: a mailing list",
                ),
                # Only Wes's mailbox saw this one.
                MailboxMessage(
                    mailbox_id=wes_mailbox.id,
                    folder="INBOX",
                    uid=1,
                    message_id="<wes-only@west.test>",
                    tracked=False,
                    reason="not tracked: from nobody in the CRM",
                ),
            ]
        )
        admin = session.get(User, org.admin_id)
        assert admin is not None
        _, admin_token = issue_token(session, admin, "admin")
    return World(
        sally=_panel_token(client, store, sally_id),
        admin=bearer(admin_token),
        east_contact=east_contact.id,
        east_account=east_account.id,
        west_contact=west_contact.id,
        west_account=west_account.id,
        east_lead=east_lead.id,
        bob=bob,
        queue=queue.id,
        tracked_east=tracked_east.id,
        tracked_west=tracked_west.id,
    )


def _lookup(client: TestClient, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    response = client.get(LOOKUP, params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _people(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {person["address"]: person for person in body["people"]}


def test_people_resolve_to_what_the_caller_can_read(client: TestClient, world: World) -> None:
    body = _lookup(
        client,
        world.sally,
        **{
            "from": '"East, Ann" <Ann@Fabrikam.test>',
            "to": [
                "buyer@northwind.test, Bob <bob@acme.test>",
                "support@acme.test",
            ],
            "cc": [
                "hidden@west.test",
                "nobody@nowhere.test",
                "ann@fabrikam.test",
                "not-an-address",
            ],
        },
    )
    people = _people(body)
    assert list(people) == [
        "Ann@Fabrikam.test",
        "buyer@northwind.test",
        "bob@acme.test",
        "support@acme.test",
        "hidden@west.test",
        "nobody@nowhere.test",
    ]
    ann = people["Ann@Fabrikam.test"]
    assert ann["name"] == "East, Ann"
    assert ann["roles"] == ["from", "cc"]
    assert ann["resolution"] == "record"
    # Only the East contact: the West one with the same address stays invisible.
    assert ann["records"] == [
        {
            "record_type": "contact",
            "id": str(world.east_contact),
            "name": "Ann East",
            "colleague": False,
            "account": {
                "record_type": "account",
                "id": str(world.east_account),
                "name": "Fabrikam East",
            },
        }
    ]
    lead = people["buyer@northwind.test"]
    assert [(r["record_type"], r["id"], r["name"]) for r in lead["records"]] == [
        ("lead", str(world.east_lead), "Northwind")
    ]
    bob = people["bob@acme.test"]
    assert bob["resolution"] == "colleague"
    assert [(r["record_type"], r["id"], r["colleague"]) for r in bob["records"]] == [
        ("user", str(world.bob), True)
    ]
    support = people["support@acme.test"]
    assert support["resolution"] == "colleague"
    assert [(r["record_type"], r["name"]) for r in support["records"]] == [("queue", "Support")]
    for address in ("hidden@west.test", "nobody@nowhere.test"):
        assert people[address]["resolution"] == "unresolved"
        assert people[address]["records"] == []


def test_the_administrator_sees_both_contacts(client: TestClient, world: World) -> None:
    people = _people(_lookup(client, world.admin, **{"from": "ann@fabrikam.test"}))
    ids = {record["id"] for record in people["ann@fabrikam.test"]["records"]}
    assert ids == {str(world.east_contact), str(world.west_contact)}
    hidden = _people(_lookup(client, world.admin, to="hidden@west.test"))
    assert hidden["hidden@west.test"]["resolution"] == "record"


def test_a_contacts_account_is_shown_only_when_readable(client: TestClient, world: World) -> None:
    people = _people(_lookup(client, world.sally, to="cross@fabrikam.test"))
    [record] = people["cross@fabrikam.test"]["records"]
    assert record["name"] == "Cross"
    assert record["account"] is None


def test_a_tracked_email_says_what_it_is_regarding(client: TestClient, world: World) -> None:
    email = _lookup(client, world.sally, message_id="<east-1@fabrikam.test>")["email"]
    assert email == {
        "state": "tracked",
        "message_id": "<east-1@fabrikam.test>",
        "email_id": str(world.tracked_east),
        "subject": "Quote for Fabrikam",
        "regarding": {
            "record_type": "account",
            "id": str(world.east_account),
            "name": "Fabrikam East",
        },
        "correlation_method": "in_reply_to",
        "can_write": False,  # Erin's email: Sally reads her unit's, writes her own
        "reason": None,
    }
    # Office.js gives the id bracketed; other clients may not. White space is folding.
    bare = _lookup(client, world.sally, message_id=" east-1@fabrikam.test ")["email"]
    assert bare["email_id"] == str(world.tracked_east)


def test_an_unreadable_regarding_record_is_left_out(client: TestClient, world: World) -> None:
    email = _lookup(client, world.sally, message_id="<east-2@fabrikam.test>")["email"]
    assert email["state"] == "tracked"
    assert email["regarding"] is None


def test_an_email_tracked_out_of_sight_is_only_seen(client: TestClient, world: World) -> None:
    email = _lookup(client, world.sally, message_id="<west-1@fabrikam.test>", subject="Hi")
    assert email["email"] == {
        "state": "seen",
        "message_id": "<west-1@fabrikam.test>",
        "email_id": None,
        "subject": "Hi",
        "regarding": None,
        "correlation_method": None,
        "can_write": False,
        "reason": None,  # the reason would speak of the email Sally cannot read
    }
    admin = _lookup(client, world.admin, message_id="<west-1@fabrikam.test>")["email"]
    assert admin["state"] == "tracked"
    assert admin["email_id"] == str(world.tracked_west)


def test_seen_and_unknown_emails(client: TestClient, world: World) -> None:
    seen = _lookup(client, world.sally, message_id="<newsletter@list.test>")["email"]
    assert (seen["state"], seen["reason"]) == ("seen", "not tracked: a mailing list")
    # Wes's mailbox saw it; Sally cannot read Wes's mailbox.
    other = _lookup(client, world.sally, message_id="<wes-only@west.test>")["email"]
    assert other["state"] == "unknown"
    assert _lookup(client, world.admin, message_id="<wes-only@west.test>")["email"]["state"] == (
        "seen"
    )
    unknown = _lookup(client, world.sally, message_id="<never@seen.test>", subject="Hello")
    assert unknown["email"]["state"] == "unknown"
    assert unknown["email"]["subject"] == "Hello"
    nothing = _lookup(client, world.sally)
    assert nothing == {
        "people": [],
        "email": {
            "state": "unknown",
            "message_id": None,
            "email_id": None,
            "subject": None,
            "regarding": None,
            "correlation_method": None,
            "can_write": False,
            "reason": None,
        },
    }


def test_hostile_input_is_refused_or_harmless(client: TestClient, world: World) -> None:
    many = ", ".join(f"p{n}@many.test" for n in range(101))
    response = client.get(LOOKUP, params={"to": many}, headers=world.sally)
    assert response.status_code == 422
    assert response.json()["code"] == "TOO_MANY_PARTICIPANTS"
    hundred = ", ".join(f"p{n}@many.test" for n in range(100))
    assert len(_lookup(client, world.sally, to=hundred, cc="P1@many.test")["people"]) == 100
    # NUL and control characters reach neither database (PostgreSQL refuses NUL in text).
    odd = _lookup(
        client, world.sally, message_id="<a\x00b@x.test>", to=["a\x00b@x.test", "c\x01@d.test"]
    )
    assert odd["people"] == []
    assert odd["email"]["state"] == "unknown"
    assert client.get(
        LOOKUP, params={"message_id": "x" * 999}, headers=world.sally
    ).status_code == (422)


def test_lookup_needs_credentials(client: TestClient, world: World) -> None:
    response = client.get(LOOKUP)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"

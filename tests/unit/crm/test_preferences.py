"""Personal options: what a user (or a queue's owner) saves is what the incoming engine
applies next; bad values are refused by name; nothing else stored is lost."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from crmsync.core.types import TrackingScope
from crmsync.crm import directory, preferences
from crmsync.crm.errors import Forbidden, NotFound
from crmsync.crm.models import Mailbox, User
from crmsync.crm.preferences import InvalidPreference
from crmsync.crm.settings import TrackingPreferences, UnknownSenderRecord
from crmsync.sync.context import mailbox_context
from tests.conftest import Org, make_org


def test_the_scope_names_exactly_the_filters_scopes() -> None:
    assert [scope.value for scope in TrackingScope] == [scope.value for scope in TrackingScope]


def test_preferences_stored_as_plain_strings_read_back_unchanged() -> None:
    stored = {"track_scope": "from_crm_records", "create_for_unknown_sender": "lead"}
    read = TrackingPreferences.model_validate(stored)
    assert read.track_scope is TrackingScope.FROM_CRM_RECORDS
    assert read.model_dump(mode="json") == {**stored, "leave_ambiguous_unresolved": False}


def test_what_a_user_saves_is_what_their_mailbox_syncs_with(org: Org) -> None:
    with org.store.transaction() as session:
        ann = org.add_user(session, "ann")
        user = session.get(User, ann)
        assert user is not None
        user.settings = {"written_by_a_newer_version": 7}
    with org.store.transaction() as session:
        me = org.principal(session, ann)
        assert preferences.my_preferences(session, me).track_scope is TrackingScope.REPLIES_TO_CRM
        saved = preferences.set_my_preferences(
            session, me, {"track_scope": "all", "create_for_unknown_sender": "contact"}
        )
        assert saved.track_scope is TrackingScope.ALL
    with org.store.transaction() as session:
        me = org.principal(session, ann)
        preferences.set_my_preferences(session, me, {"leave_ambiguous_unresolved": True})
    with org.store.transaction() as session:
        user = session.get(User, ann)
        assert user is not None
        assert user.settings == {
            "written_by_a_newer_version": 7,
            "track_scope": "all",
            "create_for_unknown_sender": "contact",
            "leave_ambiguous_unresolved": True,
        }
        mailbox = Mailbox(
            organisation_id=org.organisation_id,
            owner_id=ann,
            owning_business_unit_id=org.root_unit_id,
            name="ann",
            user_id=ann,
        )
        session.add(mailbox)
        session.flush()
        ctx = mailbox_context(session, mailbox.id)
    assert ctx.preferences.track_scope is TrackingScope.ALL
    assert ctx.preferences.create_for_unknown_sender is UnknownSenderRecord.CONTACT
    assert ctx.preferences.leave_ambiguous_unresolved is True


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"track_scope": "everything"}, "track_scope"),
        ({"create_for_unknown_sender": "account"}, "create_for_unknown_sender"),
        ({"leave_ambiguous_unresolved": "perhaps"}, "leave_ambiguous_unresolved"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_a_bad_value_is_refused_by_name_and_nothing_changes(
    org: Org, changes: dict[str, object], field: str
) -> None:
    with org.store.transaction() as session:
        me = org.principal(session, org.admin_id)
        with pytest.raises(InvalidPreference) as refused:
            preferences.set_my_preferences(session, me, {"track_scope": "none", **changes})
        assert refused.value.fields["field"] == field
        assert refused.value.status == 422
        assert preferences.my_preferences(session, me).track_scope is TrackingScope.REPLIES_TO_CRM


def test_a_value_written_into_the_database_by_hand_reads_as_the_default(org: Org) -> None:
    with org.store.transaction() as session:
        admin = session.get(User, org.admin_id)
        assert admin is not None
        admin.settings = {"track_scope": "bogus", "leave_ambiguous_unresolved": True}
    with org.store.transaction() as session:
        me = org.principal(session, org.admin_id)
        read = preferences.my_preferences(session, me)
        assert read.track_scope is TrackingScope.REPLIES_TO_CRM
        assert read.leave_ambiguous_unresolved is True
        mended = preferences.set_my_preferences(session, me, {"create_for_unknown_sender": "lead"})
        assert mended.track_scope is TrackingScope.REPLIES_TO_CRM


def test_a_queues_preferences_belong_to_its_owner_and_administrators(org: Org) -> None:
    with org.store.transaction() as session:
        owner = org.add_user(session, "owner")
        other = org.add_user(session, "other")
        queue = directory.create_queue(
            session,
            org.principal(session, org.admin_id),
            name="Support",
            email="support@acme.test",
            business_unit_id=org.root_unit_id,
            owner_id=owner,
        )
        queue_id = queue.id
    with org.store.transaction() as session:
        as_owner = org.principal(session, owner)
        preferences.set_queue_preferences(session, as_owner, queue_id, {"track_scope": "all"})
        as_admin = org.principal(session, org.admin_id)
        assert preferences.queue_preferences(session, as_admin, queue_id).track_scope == "all"
        preferences.set_queue_preferences(
            session, as_admin, queue_id, {"create_for_unknown_sender": "lead"}
        )
        as_other = org.principal(session, other)
        with pytest.raises(Forbidden):
            preferences.queue_preferences(session, as_other, queue_id)
        with pytest.raises(Forbidden):
            preferences.set_queue_preferences(session, as_other, queue_id, {"track_scope": "none"})
    with org.store.transaction() as session:
        mailbox = session.scalars(select(Mailbox).where(Mailbox.queue_id == queue_id)).one()
        ctx = mailbox_context(session, mailbox.id)
    assert ctx.preferences.track_scope is TrackingScope.ALL
    assert ctx.preferences.create_for_unknown_sender is UnknownSenderRecord.LEAD
    stranger = make_org(org.store, "Globex")
    with org.store.transaction() as session, pytest.raises(NotFound):
        preferences.queue_preferences(
            session, stranger.principal(session, stranger.admin_id), queue_id
        )

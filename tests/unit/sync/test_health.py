"""Retry policy and channel health: retry transient errors, disable on permanent ones."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from crmsync.core.alerts import AlertCode
from crmsync.core.errors import CATALOGUE, ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import AlertSeverity, Channel, ServerType
from crmsync.crm.alerts import purge_older_than, raise_alert, visible_alerts
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Alert, EmailServerProfile, Mailbox, User
from crmsync.sync.health import record_failure
from tests.conftest import Org

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_every_code_has_an_entry_with_remediation() -> None:
    assert set(CATALOGUE) == set(ErrorCode)
    for entry in CATALOGUE.values():
        assert entry.remediation.endswith(".")
    assert SyncError(ErrorCode.AUTH_FAILED).transient is False
    assert SyncError(ErrorCode.HOST_UNREACHABLE).transient is True


@given(attempt=st.integers(min_value=0, max_value=60), seed=st.integers())
def test_backoff_is_bounded_and_grows(attempt: int, seed: int) -> None:
    policy = RetryPolicy(max_attempts=5, base_seconds=30, cap_seconds=3600)
    delay = policy.delay(attempt, random.Random(seed))
    assert 0 <= delay <= min(3600, 30 * 2**attempt)


def test_transient_errors_are_retried_then_treated_as_permanent() -> None:
    policy = RetryPolicy(max_attempts=3)
    timeout = SyncError(ErrorCode.TIMEOUT)
    assert [policy.gives_up(timeout, n) for n in (1, 2, 3)] == [False, False, True]
    assert policy.gives_up(SyncError(ErrorCode.AUTH_FAILED), 1)


def _mailboxes(org: Org, count: int) -> list[Mailbox]:
    with org.store.transaction() as session:
        profile = EmailServerProfile(
            organisation_id=org.organisation_id,
            owner_id=org.admin_id,
            owning_business_unit_id=org.root_unit_id,
            name="Dovecot",
            server_type=ServerType.IMAP_SMTP,
        )
        session.add(profile)
        session.flush()
        boxes = []
        for index in range(count):
            user = session.get(User, org.add_user(session, f"user{index}"))
            mailbox = create_mailbox_for(session, user=user)
            mailbox.profile = profile
            boxes.append(mailbox)
        session.flush()
        return boxes


def test_a_transient_failure_keeps_the_channel_enabled_until_the_limit(org: Org) -> None:
    (mailbox,) = _mailboxes(org, 1)
    policy = RetryPolicy(max_attempts=2, base_seconds=10)
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox.id)
        assert mailbox is not None
        channel = mailbox.channel(Channel.INCOMING)
        channel.enabled = True
        error = SyncError(ErrorCode.HOST_UNREACHABLE, "127.0.0.1:1")
        record_failure(session, mailbox, channel, error, policy=policy, now=NOW)
        assert channel.enabled is True
        assert channel.next_attempt_at is not None
        assert channel.next_attempt_at > NOW
        record_failure(session, mailbox, channel, error, policy=policy, now=NOW)
        assert channel.enabled is False
        assert channel.next_attempt_at is None
        assert mailbox.channel(Channel.OUTGOING).enabled is False  # never touched
        alerts = session.scalars(select(Alert).where(Alert.mailbox_id == mailbox.id)).all()
        by_code = {a.code: a for a in alerts}
        assert by_code["HOST_UNREACHABLE"].occurrences == 2  # one alert, not a flood
        assert "disabled" in by_code["HOST_UNREACHABLE"].remediation


def test_most_mailboxes_of_a_profile_failing_alerts_the_profile_owner(org: Org) -> None:
    boxes = _mailboxes(org, 3)
    policy = RetryPolicy()
    with org.store.transaction() as session:
        for index, box in enumerate(boxes[:2]):
            mailbox = session.get(Mailbox, box.id)
            assert mailbox is not None
            record_failure(
                session,
                mailbox,
                mailbox.channel(Channel.INCOMING),
                SyncError(ErrorCode.AUTH_FAILED),
                policy=policy,
                now=NOW + timedelta(minutes=index),
            )
            majority = session.scalars(
                select(Alert).where(Alert.code == AlertCode.PROFILE_MAJORITY_FAILING)
            ).all()
            assert len(majority) == index  # 1 of 3 is not a majority; 2 of 3 is
        assert majority[0].profile_owner_id == org.admin_id


def test_alerts_are_visible_to_owners_and_admins_only_and_purged(org: Org) -> None:
    (mailbox,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox.id)
        assert mailbox is not None
        raise_alert(
            session,
            organisation_id=org.organisation_id,
            severity=AlertSeverity.WARNING,
            code="X",
            title="t",
            mailbox=mailbox,
            now=NOW,
        )
        stranger = org.add_user(session, "stranger")
        owner = org.principal(session, mailbox.owner_id)
        assert len(visible_alerts(session, owner).items) == 1
        assert len(visible_alerts(session, org.principal(session, org.admin_id)).items) == 1
        assert visible_alerts(session, org.principal(session, stranger)).items == []
        assert purge_older_than(session, org.organisation_id, NOW - timedelta(days=1)) == 0
        assert purge_older_than(session, org.organisation_id, NOW + timedelta(days=1)) == 1

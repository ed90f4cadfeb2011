"""An alert's life: acknowledged, dismissed, resolving itself when its cause is gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.connectors.probe import ProbeResult, ProbeStep
from crmsync.core.alerts import AlertCode
from crmsync.core.errors import ErrorCode, RetryPolicy, SyncError
from crmsync.core.types import AlertSeverity, AlertState, Approval, Channel, ServerType
from crmsync.crm.alerts import (
    acknowledge_alert,
    dismiss_alert,
    mark_channel_ok,
    purge_expired,
    raise_alert,
    raise_catalogued,
    visible_alerts,
)
from crmsync.crm.errors import NotFound
from crmsync.crm.mailboxes import create_mailbox_for, set_approval
from crmsync.crm.models import Alert, EmailServerProfile, Mailbox, Organisation, User
from crmsync.crm.secrets import SecretBox
from crmsync.sync import check_enable
from crmsync.sync.check_enable import ChannelOutcome, check_and_enable
from crmsync.sync.health import record_failure
from tests.conftest import Org

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _mailboxes(org: Org, count: int) -> list[uuid.UUID]:
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
        ids = []
        for index in range(count):
            user = session.get(User, org.add_user(session, f"user{index}"))
            mailbox = create_mailbox_for(session, user=user)
            mailbox.profile = profile
            session.flush()
            ids.append(mailbox.id)
        return ids


def _fail(session: Session, mailbox_id: uuid.UUID, code: ErrorCode, now: datetime) -> Alert:
    mailbox = session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    channel = mailbox.channel(Channel.INCOMING)
    return record_failure(session, mailbox, channel, SyncError(code), policy=RetryPolicy(), now=now)


def _recover(session: Session, mailbox_id: uuid.UUID, now: datetime) -> None:
    mailbox = session.get(Mailbox, mailbox_id)
    assert mailbox is not None
    mark_channel_ok(mailbox.channel(Channel.INCOMING), now=now, enable=True)


def _by_code(session: Session) -> dict[str, Alert]:
    return {alert.code: alert for alert in session.scalars(select(Alert))}


def test_a_passing_test_and_enable_resolves_what_the_failing_one_raised(
    org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported case: after the fix, AUTH_MECHANISM_UNSUPPORTED and
    PROFILE_MAJORITY_FAILING were still listed."""
    (mailbox_id,) = _mailboxes(org, 1)
    answer: list[SyncError | None] = [SyncError(ErrorCode.AUTH_MECHANISM_UNSUPPORTED, "PLAIN")]

    def probe(channel: Channel, plan: object, *_: object) -> ChannelOutcome:
        error = answer[0]
        code = error.code if error else None
        step = ProbeStep("auth", error is None, 0.01, error.detail if error else "", code)
        return ChannelOutcome(channel, ProbeResult([step]), error)

    # The probe's verdict, as a server would give it; everything around it is the real
    # Test & Enable: channels marked, alerts raised and resolved, the run recorded.
    monkeypatch.setattr(check_enable, "plan_for", lambda mailbox, box: object())
    monkeypatch.setattr(check_enable, "_probe", probe)
    box = SecretBox([SecretBox.generate_key()])

    failed = check_and_enable(org.store, box, mailbox_id)
    assert not failed.ok
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        open_codes = {
            alert.code for alert in visible_alerts(session, admin, states=(AlertState.OPEN,)).items
        }
        assert {"AUTH_MECHANISM_UNSUPPORTED", AlertCode.PROFILE_MAJORITY_FAILING} <= open_codes

    answer[0] = None
    passed = check_and_enable(org.store, box, mailbox_id)
    assert passed.ok
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        still_open = visible_alerts(session, admin, states=(AlertState.OPEN,)).items
        assert {alert.code for alert in still_open} <= {"APPROVAL_PENDING"}
        alerts = _by_code(session)
        for code in ("AUTH_MECHANISM_UNSUPPORTED", AlertCode.PROFILE_MAJORITY_FAILING):
            assert alerts[code].state is AlertState.RESOLVED
            assert alerts[code].resolved_at is not None
        assert "succeeded again" in alerts["AUTH_MECHANISM_UNSUPPORTED"].resolution
        assert "0 of 1" in (alerts[AlertCode.PROFILE_MAJORITY_FAILING].resolution or "")


def test_a_channel_that_syncs_again_resolves_its_alerts_only(org: Org) -> None:
    first, second = _mailboxes(org, 2)
    with org.store.transaction() as session:
        mine = _fail(session, first, ErrorCode.AUTH_FAILED, NOW)
        theirs = _fail(session, second, ErrorCode.AUTH_FAILED, NOW)
        mailbox = session.get(Mailbox, first)
        assert mailbox is not None
        # An alert no success can answer: a person must look at it.
        renumbered = raise_alert(
            session,
            organisation_id=org.organisation_id,
            severity=AlertSeverity.INFORMATION,
            code="UIDVALIDITY_CHANGED",
            title="renumbered",
            mailbox=mailbox,
            channel=Channel.INCOMING,
            now=NOW,
        )
        _recover(session, first, NOW + timedelta(minutes=5))
        assert mine.state is AlertState.RESOLVED
        assert mine.resolved_at == NOW + timedelta(minutes=5)
        assert theirs.state is AlertState.OPEN
        assert renumbered.state is AlertState.OPEN


@pytest.mark.parametrize(
    ("mailboxes", "failing", "still_majority"),
    [(3, 3, True), (4, 3, False), (3, 2, False)],
)
def test_most_mailboxes_failing_resolves_when_the_share_drops(
    org: Org, mailboxes: int, failing: int, still_majority: bool
) -> None:
    ids = _mailboxes(org, mailboxes)
    with org.store.transaction() as session:
        for index, mailbox_id in enumerate(ids[:failing]):
            _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW + timedelta(minutes=index))
        majority = _by_code(session)[AlertCode.PROFILE_MAJORITY_FAILING]
        assert majority.state is AlertState.OPEN
        _recover(session, ids[0], NOW + timedelta(minutes=10))
        expected = AlertState.OPEN if still_majority else AlertState.RESOLVED
        assert majority.state is expected


def test_a_resolved_alert_raised_again_opens_again(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        alert = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW)
        _recover(session, mailbox_id, NOW + timedelta(minutes=1))
        assert alert.state is AlertState.RESOLVED
        again = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW + timedelta(minutes=2))
        assert again.id == alert.id
        assert again.state is AlertState.OPEN
        assert again.occurrences == 2
        assert again.resolved_at is None
        assert again.resolution is None
        # Long after it resolved, the same failure is a new alert of its own.
        _recover(session, mailbox_id, NOW + timedelta(minutes=3))
        later = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW + timedelta(hours=3))
        assert later.id != alert.id
        assert later.state is AlertState.OPEN


def test_an_open_alert_gathers_its_occurrences_however_long_it_lasts(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        first = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW)
        later = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW + timedelta(hours=5))
        assert later.id == first.id
        assert first.occurrences == 2


def test_acknowledged_alerts_say_who_and_still_resolve(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        alert = _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW)
        acknowledge_alert(session, admin, alert.id, NOW + timedelta(minutes=1))
        assert alert.state is AlertState.ACKNOWLEDGED
        assert alert.acknowledged_by_id == org.admin_id
        assert alert.acknowledged_at == NOW + timedelta(minutes=1)
        _fail(session, mailbox_id, ErrorCode.AUTH_FAILED, NOW + timedelta(minutes=2))
        assert alert.state is AlertState.ACKNOWLEDGED  # still someone's, not new again
        _recover(session, mailbox_id, NOW + timedelta(minutes=3))
        assert alert.state is AlertState.RESOLVED


def test_a_dismissed_alert_stays_dismissed_when_it_recurs_within_the_hour(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        admin = org.principal(session, org.admin_id)
        alert = _fail(session, mailbox_id, ErrorCode.TIMEOUT, NOW)
        dismiss_alert(session, admin, alert.id, NOW)
        assert alert.dismissed_by_id == org.admin_id
        again = _fail(session, mailbox_id, ErrorCode.TIMEOUT, NOW + timedelta(minutes=10))
        assert again.id == alert.id
        assert again.state is AlertState.DISMISSED
        assert alert.id not in {
            a.id for a in visible_alerts(session, admin, states=(AlertState.OPEN,)).items
        }


def test_only_those_an_alert_is_addressed_to_can_act_on_it(org: Org) -> None:
    first, second = _mailboxes(org, 2)
    with org.store.transaction() as session:
        alert = _fail(session, first, ErrorCode.AUTH_FAILED, NOW)
        owner = session.get(Mailbox, first)
        other = session.get(Mailbox, second)
        assert owner is not None
        assert other is not None
        stranger = org.principal(session, other.owner_id)
        with pytest.raises(NotFound):
            acknowledge_alert(session, stranger, alert.id, NOW)
        with pytest.raises(NotFound):
            dismiss_alert(session, stranger, alert.id, NOW)
        assert alert.state is AlertState.OPEN
        acknowledge_alert(session, org.principal(session, owner.owner_id), alert.id, NOW)
        assert alert.state is AlertState.ACKNOWLEDGED


def test_approving_the_mailbox_resolves_its_awaits_approval_alert(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        raise_catalogued(
            session,
            AlertCode.APPROVAL_PENDING,
            organisation_id=org.organisation_id,
            detail="passed every check",
            mailbox=mailbox,
            now=NOW,
        )
        admin = org.principal(session, org.admin_id)
        set_approval(session, admin, mailbox, Approval.REJECTED)
        assert _by_code(session)[AlertCode.APPROVAL_PENDING].state is AlertState.OPEN
        set_approval(session, admin, mailbox, Approval.APPROVED)
        alert = _by_code(session)[AlertCode.APPROVAL_PENDING]
        assert alert.state is AlertState.RESOLVED
        assert alert.resolution == "the mailbox was approved"


def test_alerts_past_the_organisations_retention_are_purged(org: Org) -> None:
    (mailbox_id,) = _mailboxes(org, 1)
    with org.store.transaction() as session:
        organisation = session.get(Organisation, org.organisation_id)
        assert organisation is not None
        organisation.settings = {**organisation.settings, "alert_retention_days": 7}
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        for days_ago, code in ((8, "OLD"), (6, "RECENT")):
            raise_alert(
                session,
                organisation_id=org.organisation_id,
                severity=AlertSeverity.WARNING,
                code=code,
                title=code,
                mailbox=mailbox,
                now=NOW - timedelta(days=days_ago),
            )
        assert purge_expired(session, NOW) == 1
        assert set(_by_code(session)) == {"RECENT"}
        # A longer retention keeps what a shorter one would purge.
        organisation.settings = {**organisation.settings, "alert_retention_days": 30}
        assert purge_expired(session, NOW + timedelta(days=2)) == 0

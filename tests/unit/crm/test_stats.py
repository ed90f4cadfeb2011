"""Pass statistics: what a pass records, and the dashboard's buckets, windows, profile
filter and access (an administrator sees the organisation's; anyone else, nothing)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.core.types import Channel, ChannelStatus, ServerType
from crmsync.crm import stats
from crmsync.crm.errors import NotFound
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import EmailServerProfile, Mailbox, SyncPass, User
from crmsync.crm.stats import PassFigures, Window, record_pass
from tests.conftest import Org

# Half past an hour, so a pass "now" and one 30 minutes ago share the current bucket.
NOW = datetime(2026, 12, 6, 17, 30, tzinfo=UTC)


@dataclass
class Boxes:
    imap_profile: uuid.UUID
    pop_profile: uuid.UUID
    ann: uuid.UUID  # on the IMAP profile
    bob: uuid.UUID  # on the POP3 profile


def add_profile(session: Session, org: Org, name: str, server_type: ServerType) -> uuid.UUID:
    profile = EmailServerProfile(
        organisation_id=org.organisation_id,
        owner_id=org.admin_id,
        owning_business_unit_id=org.root_unit_id,
        name=name,
        server_type=server_type,
    )
    session.add(profile)
    session.flush()
    return profile.id


def add_mailbox(session: Session, org: Org, username: str, profile_id: uuid.UUID) -> uuid.UUID:
    user = session.get(User, org.add_user(session, username))
    mailbox = create_mailbox_for(session, user=user)
    mailbox.profile_id = profile_id
    mailbox.name = f"{username.title()}'s mailbox"
    session.flush()
    return mailbox.id


def make_boxes(org: Org) -> Boxes:
    with org.store.transaction() as session:
        imap = add_profile(session, org, "Dovecot IMAP", ServerType.IMAP_SMTP)
        pop = add_profile(session, org, "Old POP", ServerType.POP3_SMTP)
        return Boxes(
            imap, pop, add_mailbox(session, org, "ann", imap), add_mailbox(session, org, "bob", pop)
        )


def add_pass(
    org: Org,
    mailbox_id: uuid.UUID,
    *,
    at: datetime,
    channel: Channel = Channel.INCOMING,
    seconds: float = 2.0,
    previous_success: datetime | None = None,
    pushed_after: float | None = None,
    **counts: int,
) -> None:
    """A pass that started at ``at`` and took ``seconds``; ``pushed_after``: the IDLE
    notice came that many seconds before the pass committed."""
    now = at + timedelta(seconds=seconds)
    pushed_at = now - timedelta(seconds=pushed_after) if pushed_after is not None else None
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        figures = PassFigures(
            protocol="smtp" if channel is Channel.OUTGOING else "imap",
            started_at=at,
            pushed_at=pushed_at,
            **counts,  # type: ignore[arg-type]
        )
        record_pass(session, mailbox, channel, figures, previous_success=previous_success, now=now)


def admin_board(org: Org, window: Window, **kwargs: object) -> stats.Dashboard:
    with org.store.transaction() as session:
        principal = org.principal(session, org.admin_id)
        return stats.dashboard(session, principal, window, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_a_pass_records_its_duration_lag_and_push_latency(org: Org) -> None:
    boxes = make_boxes(org)
    start = NOW - timedelta(minutes=5)
    add_pass(
        org,
        boxes.ann,
        at=start,
        seconds=3,
        previous_success=start - timedelta(minutes=2),
        pushed_after=4.5,
        fetched=5,
        tracked=4,
        failed=1,
    )
    with org.store.transaction() as session:
        row = session.scalars(select(SyncPass)).one()
    assert row.duration_seconds == pytest.approx(3)
    assert row.lag_seconds == pytest.approx(120)
    assert row.push_latency_seconds == pytest.approx(4.5)
    assert (row.fetched, row.tracked, row.failed, row.protocol) == (5, 4, 1, "imap")
    assert row.profile_id == boxes.imap_profile


def test_passes_older_than_the_retention_go_as_new_ones_come(org: Org) -> None:
    boxes = make_boxes(org)
    add_pass(org, boxes.ann, at=NOW - stats.RETENTION - timedelta(days=1), tracked=1)
    add_pass(org, boxes.bob, at=NOW - stats.RETENTION - timedelta(days=1), tracked=1)
    add_pass(org, boxes.ann, at=NOW, tracked=2)
    with org.store.transaction() as session:
        kept = session.execute(select(SyncPass.mailbox_id, SyncPass.tracked)).all()
    # Ann's old pass went with her new one; Bob has had no pass since to purge his.
    assert sorted((row.mailbox_id == boxes.ann, row.tracked) for row in kept) == [
        (False, 1),
        (True, 2),
    ]


def test_the_day_is_hourly_buckets_and_counts_land_in_theirs(org: Org) -> None:
    boxes = make_boxes(org)
    add_pass(org, boxes.ann, at=NOW - timedelta(minutes=20), fetched=3, tracked=3)
    add_pass(org, boxes.bob, at=NOW - timedelta(minutes=25), fetched=2, tracked=1, failed=1)
    add_pass(org, boxes.ann, at=NOW - timedelta(hours=3), fetched=7, tracked=7)
    add_pass(org, boxes.ann, at=NOW - timedelta(hours=30), tracked=100)  # outside 24 h
    add_pass(org, boxes.ann, at=NOW - timedelta(hours=1), channel=Channel.OUTGOING, sent=4)

    board = admin_board(org, Window.DAY)

    assert len(board.buckets) == 24
    assert board.buckets[-1] == int(NOW.replace(minute=0).timestamp())
    assert board.buckets[1] - board.buckets[0] == 3600
    assert (board.tracked[-1], board.failed[-1], board.fetched[-1]) == (4, 1, 5)
    assert board.tracked[-4] == 7
    assert board.sent[-2] == 4
    assert sum(board.tracked) == 11  # the pass 30 hours ago is in no bucket
    assert board.passes == 4


def test_longer_windows_have_wider_buckets(org: Org) -> None:
    boxes = make_boxes(org)
    add_pass(org, boxes.ann, at=NOW - timedelta(hours=30), tracked=100)
    add_pass(org, boxes.ann, at=NOW - timedelta(days=20), tracked=9)

    week = admin_board(org, Window.WEEK)
    month = admin_board(org, Window.MONTH)

    assert (len(week.buckets), week.bucket_seconds) == (28, 6 * 3600)
    assert sum(week.tracked) == 100
    assert week.passes == 1  # the pass 20 days ago is not the week's
    assert (len(month.buckets), month.bucket_seconds) == (30, 24 * 3600)
    assert sum(month.tracked) == 109
    assert month.tracked[-2] == 100  # yesterday, by the day's bucket


def test_lag_is_per_mailbox_and_push_latency_is_median_and_p95(org: Org) -> None:
    boxes = make_boxes(org)
    at = NOW - timedelta(minutes=10)
    for seconds, latency in ((60, 1.0), (120, 2.0), (90, 3.0), (30, 10.0)):
        add_pass(
            org,
            boxes.ann,
            at=at,
            previous_success=at - timedelta(seconds=seconds),
            pushed_after=latency,
        )
    add_pass(org, boxes.bob, at=at, previous_success=at - timedelta(minutes=15))

    board = admin_board(org, Window.DAY)

    lags = {series.mailbox: series.values[-1] for series in board.lag}
    assert lags == {"Ann's mailbox": pytest.approx(120), "Bob's mailbox": pytest.approx(900)}
    assert board.lag[0].mailbox == "Bob's mailbox"  # the longest lag first
    assert board.push_median[-1] == pytest.approx(2.0)
    assert board.push_p95[-1] == pytest.approx(10.0)
    assert board.push_median[0] is None
    assert board.push_passes == 4


def test_the_profile_filter_keeps_its_mailboxes_and_totals_are_by_profile(org: Org) -> None:
    boxes = make_boxes(org)
    add_pass(org, boxes.ann, at=NOW, tracked=3)
    add_pass(org, boxes.bob, at=NOW, tracked=5, failed=2)

    only_pop = admin_board(org, Window.DAY, profile_id=boxes.pop_profile)
    everything = admin_board(org, Window.DAY)

    assert (sum(only_pop.tracked), sum(only_pop.failed)) == (5, 2)
    assert [(row.name, row.tracked, row.failed) for row in everything.by_profile] == [
        ("Dovecot IMAP", 3, 0),
        ("Old POP", 5, 2),
    ]
    assert [option.name for option in everything.profiles] == ["Dovecot IMAP", "Old POP"]


def test_a_salesperson_gets_no_dashboard_and_an_unknown_profile_is_not_found(org: Org) -> None:
    boxes = make_boxes(org)
    add_pass(org, boxes.ann, at=NOW, tracked=3)
    with org.store.transaction() as session:
        sally = org.principal(session, org.add_user(session, "sally"))
        with pytest.raises(NotFound):
            stats.dashboard(session, sally, Window.DAY, now=NOW)
        admin = org.principal(session, org.admin_id)
        with pytest.raises(NotFound):
            stats.dashboard(session, admin, Window.DAY, profile_id=uuid.uuid4(), now=NOW)


def test_another_organisations_passes_are_not_counted(org: Org) -> None:
    from tests.conftest import make_org

    other = make_org(org.store, "Globex")
    theirs = make_boxes(other)
    add_pass(other, theirs.ann, at=NOW, tracked=50)
    ours = make_boxes(org)
    add_pass(org, ours.ann, at=NOW, tracked=1)

    assert sum(admin_board(org, Window.DAY).tracked) == 1


def test_channel_states_count_every_channel_by_state(org: Org) -> None:
    boxes = make_boxes(org)
    with org.store.transaction() as session:
        mailbox = session.get(Mailbox, boxes.ann)
        assert mailbox is not None
        incoming = mailbox.channel(Channel.INCOMING)
        incoming.enabled, incoming.status = True, ChannelStatus.SUCCESS
    with org.store.transaction() as session:
        counts = stats.channel_states(session)
    found = {(c.protocol, c.channel, c.status, c.enabled, c.profile_name): c.count for c in counts}
    assert found[("imap", Channel.INCOMING, ChannelStatus.SUCCESS, True, "Dovecot IMAP")] == 1
    assert found[("smtp", Channel.OUTGOING, ChannelStatus.NOT_RUN, False, "Dovecot IMAP")] == 1
    assert found[("pop3", Channel.INCOMING, ChannelStatus.NOT_RUN, False, "Old POP")] == 1

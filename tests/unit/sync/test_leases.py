"""Channel leases on a migrated store: one holder at a time, expiry, release, renewal."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select, update

from crmsync.core.types import Channel
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import Mailbox, User
from crmsync.crm.models.mail import MailboxChannel
from crmsync.crm.store import Store
from crmsync.sync import leases
from crmsync.sync.leases import acquire, release
from tests.conftest import Org

A = "host-a:1:1"
B = "host-b:2:2"


def _mailbox(org: Org) -> uuid.UUID:
    with org.store.transaction() as session:
        user = session.get(User, org.add_user(session, "owner"))
        assert user is not None
        mailbox: Mailbox = create_mailbox_for(session, user=user)
        session.flush()
        return mailbox.id


def _lease(
    store: Store, mailbox_id: uuid.UUID, channel: Channel
) -> tuple[str | None, datetime | None]:
    with store.transaction() as session:
        row = session.execute(
            select(MailboxChannel.lease_owner, MailboxChannel.lease_expires_at).where(
                MailboxChannel.mailbox_id == mailbox_id, MailboxChannel.channel == channel
            )
        ).one()
        return row[0], row[1]


def _expire(store: Store, mailbox_id: uuid.UUID, channel: Channel) -> None:
    """Move the lease's expiry into the past, as if its TTL had run out."""
    with store.transaction() as session:
        expires = session.scalar(
            select(MailboxChannel.lease_expires_at).where(
                MailboxChannel.mailbox_id == mailbox_id, MailboxChannel.channel == channel
            )
        )
        assert expires is not None
        session.execute(
            update(MailboxChannel)
            .where(MailboxChannel.mailbox_id == mailbox_id, MailboxChannel.channel == channel)
            .values(lease_expires_at=expires - leases.DEFAULT_TTL - timedelta(minutes=1))
            .execution_options(synchronize_session=False)
        )


def test_one_worker_holds_a_channel_and_a_second_is_refused(org: Org) -> None:
    mailbox_id = _mailbox(org)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, A)
    assert not acquire(org.store, mailbox_id, Channel.INCOMING, B)
    assert _lease(org.store, mailbox_id, Channel.INCOMING)[0] == A
    # The other channel of the same mailbox is a lease of its own.
    assert acquire(org.store, mailbox_id, Channel.OUTGOING, B)
    assert _lease(org.store, mailbox_id, Channel.OUTGOING)[0] == B


def test_an_expired_lease_is_taken_over(org: Org) -> None:
    mailbox_id = _mailbox(org)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, A)
    _expire(org.store, mailbox_id, Channel.INCOMING)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, B)
    assert _lease(org.store, mailbox_id, Channel.INCOMING)[0] == B
    assert not acquire(org.store, mailbox_id, Channel.INCOMING, A)


def test_release_by_the_holder_frees_the_lease_and_by_another_does_not(org: Org) -> None:
    mailbox_id = _mailbox(org)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, A)
    release(org.store, mailbox_id, Channel.INCOMING, B)
    assert _lease(org.store, mailbox_id, Channel.INCOMING)[0] == A
    assert not acquire(org.store, mailbox_id, Channel.INCOMING, B)
    release(org.store, mailbox_id, Channel.INCOMING, A)
    assert _lease(org.store, mailbox_id, Channel.INCOMING) == (None, None)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, B)


def test_acquiring_again_renews_only_the_holders_lease(org: Org) -> None:
    mailbox_id = _mailbox(org)
    short = timedelta(minutes=1)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, A, ttl=short)
    _, first = _lease(org.store, mailbox_id, Channel.INCOMING)
    assert not acquire(org.store, mailbox_id, Channel.INCOMING, B, ttl=timedelta(hours=1))
    assert _lease(org.store, mailbox_id, Channel.INCOMING) == (A, first)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, A, ttl=timedelta(hours=1))
    owner, renewed = _lease(org.store, mailbox_id, Channel.INCOMING)
    assert owner == A
    assert first is not None
    assert renewed is not None
    assert renewed - first > timedelta(minutes=50)


def test_a_lease_of_a_dead_local_process_is_taken_over_at_once(org: Org) -> None:
    mailbox_id = _mailbox(org)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    host, _, thread, identity = leases.worker_name().split(":")
    child.wait()
    dead = f"{host}:{child.pid}:{thread}:{identity}"
    assert leases.owner_is_dead(dead)
    assert not leases.owner_is_dead(leases.worker_name())
    assert acquire(org.store, mailbox_id, Channel.INCOMING, dead)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, B)
    assert _lease(org.store, mailbox_id, Channel.INCOMING)[0] == B
    # A live holder of this host keeps its lease.
    me = leases.worker_name()
    release(org.store, mailbox_id, Channel.INCOMING, B)
    assert acquire(org.store, mailbox_id, Channel.INCOMING, me)
    assert not acquire(org.store, mailbox_id, Channel.INCOMING, B)


def test_only_a_sure_death_frees_a_lease_early() -> None:
    """A lease is taken over before it expires only when its holder is known to be gone;
    anything uncertain waits for the TTL — a second send is worse than a late one."""
    host, pid, thread, identity = leases.worker_name().split(":")
    namespace, _, started = identity.partition(".")
    # This very process id, started at another time: the id was reused, the holder is gone.
    assert leases.owner_is_dead(f"{host}:{pid}:{thread}:{namespace}.{int(started) + 1}")
    # A process of another PID namespace (a container sharing the host name) or another
    # host: its id means nothing here.
    assert not leases.owner_is_dead(f"{host}:999999:{thread}:{int(namespace) + 1}.1")
    assert not leases.owner_is_dead(f"other-host:999999:{thread}:{identity}")
    # A name without an identity, as older versions wrote them.
    assert not leases.owner_is_dead(f"{host}:999999:{thread}")

"""One worker at a time per mailbox channel: a lease row in the database.

The same mechanism serves the embedded runtime and Celery workers on many machines: a
worker may run a channel only while it holds an unexpired lease, taken with one
conditional UPDATE (atomic on SQLite and PostgreSQL alike). A crashed worker's lease
expires; one held by a process of this host that no longer exists is taken over at
once, so a restart after a crash resumes without waiting. Leases are taken and released
in transactions of their own, never held open across network I/O.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta

from sqlalchemy import or_, select, update

from crmsync.core.types import Channel
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import MailboxChannel
from crmsync.crm.store import Store

DEFAULT_TTL = timedelta(minutes=10)


def worker_name() -> str:
    """``host:pid:thread`` — unique among live workers, readable in the database."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def owner_is_dead(owner: str | None) -> bool:
    """Whether ``owner`` names a process of this host that has exited."""
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def acquire(
    store: Store,
    mailbox_id: uuid.UUID,
    channel: Channel,
    owner: str,
    ttl: timedelta = DEFAULT_TTL,
) -> bool:
    now = utcnow()
    with store.transaction() as session:
        holder = session.scalar(
            select(MailboxChannel.lease_owner).where(
                MailboxChannel.mailbox_id == mailbox_id, MailboxChannel.channel == channel
            )
        )
        dead = [holder] if owner_is_dead(holder) else []
        result = session.execute(
            update(MailboxChannel)
            .where(
                MailboxChannel.mailbox_id == mailbox_id,
                MailboxChannel.channel == channel,
                or_(
                    MailboxChannel.lease_owner.is_(None),
                    MailboxChannel.lease_expires_at < now,
                    MailboxChannel.lease_owner.in_([owner, *dead]),
                ),
            )
            .values(lease_owner=owner, lease_expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def release(store: Store, mailbox_id: uuid.UUID, channel: Channel, owner: str) -> None:
    with store.transaction() as session:
        session.execute(
            update(MailboxChannel)
            .where(
                MailboxChannel.mailbox_id == mailbox_id,
                MailboxChannel.channel == channel,
                MailboxChannel.lease_owner == owner,
            )
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )

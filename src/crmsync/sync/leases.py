"""One worker at a time per mailbox channel: a lease row in the database.

The same mechanism serves the embedded runtime and Celery workers on many machines: a
worker may run a channel only while it holds an unexpired lease, taken with one
conditional UPDATE (atomic on SQLite and PostgreSQL alike). A crashed worker's lease
expires; one held by a process of this host that no longer exists is taken over at
once, so a restart after a crash resumes without waiting (a worker's name carries its
process's identity, so a reused process id or a container sharing the host name is never
mistaken for the holder). Leases are taken and released
in transactions of their own, never held open across network I/O.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import or_, select, update

from crmsync.core.types import Channel
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import MailboxChannel
from crmsync.crm.store import Store

DEFAULT_TTL = timedelta(minutes=10)


def _identity(pid: int | str) -> str | None:
    """``'<PID namespace>.<start time>'`` of a process of this host; None when there is
    no such process; '' where /proc cannot tell (not Linux)."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return ""
    try:
        # The namespace of our own PIDs: a process id means something only within it.
        namespace = os.stat(proc / "self" / "ns" / "pid").st_ino
        stat = (proc / str(pid) / "stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # proc(5): starttime is field 22; the command name (field 2) may hold spaces.
    started = stat.rpartition(")")[2].split()[19]
    return f"{namespace}.{started}"


def worker_name() -> str:
    """``host:pid:thread:identity`` — unique among live workers, readable in the
    database. The identity (PID namespace and start time) lets ``owner_is_dead`` tell a
    reused process id, or a process of another container that shares the host name."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}:{_identity('self')}"


def owner_is_dead(owner: str | None) -> bool:
    """Whether ``owner`` names a process of this host that has exited.

    Only a sure answer counts: another host, another PID namespace (a container with the
    same host name) or a name without an identity (an older crmsync's) is not known to be
    dead, and its lease is left to expire.
    """
    if not owner:
        return False
    host, pid_text, _thread, identity = [*owner.split(":", 3), "", "", ""][:4]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    mine = _identity("self")
    if mine == "" and identity == "":  # no /proc here: whether the pid exists is all
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    if not mine or identity.partition(".")[0] != mine.partition(".")[0]:
        return False  # another PID namespace, or an older crmsync's name
    found = _identity(pid_text)
    return found is None or (found != "" and found != identity)


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

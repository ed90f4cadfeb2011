"""Shared set-up for benchmarks: a fresh CRM wired to a test Dovecot, and timing."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import select

from crmsync.core.types import Approval, Channel, ServerType
from crmsync.crm import mailboxes, profiles
from crmsync.crm.access import load_principal
from crmsync.crm.directory import create_user
from crmsync.crm.models import Mailbox, MailboxChannel, User
from crmsync.crm.secrets import SecretBox
from crmsync.crm.setup import initialise, root_business_unit
from crmsync.crm.store import Store
from tests.servers import DovecotServer
from tests.servers.dovecot_users import MailUser


@contextmanager
def work_directory(prefix: str) -> Iterator[Path]:
    """A fresh directory Dovecot's users can reach (0755), removed afterwards."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def settle_disk() -> None:
    """Write back every dirty page before a timed run (untimed).

    A tool that does not sync (mbsync with ``FSync no``) leaves hundreds of MB dirty in
    the page cache; the next tool that syncs — crmsync, before each commit — would pay
    for writing them. Each timed run starts from a clean cache instead.
    """
    os.sync()


def _cpu_of(pid: int | str) -> float:
    """utime + stime of one process, in seconds (proc(5): fields 14 and 15)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # it exited meanwhile
        return 0.0
    fields = stat.rpartition(")")[2].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu() -> float:
    """CPU seconds used so far by this process and its live descendants (the parser
    processes, which live as long as the engine, so RUSAGE_CHILDREN never counts them).
    Servers (Dovecot, PostgreSQL) are not descendants and are not counted."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    tree, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        tree.update(children)
        frontier.extend(children)
    return sum(_cpu_of(pid) for pid in tree)


def timed(command: list[str]) -> float:
    settle_disk()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{command[0]} failed:\n{done.stdout}\n{done.stderr}")
    return time.perf_counter() - started


def connected_store(
    dovecot: DovecotServer, user: MailUser, directory: Path, database_url: str | None
) -> tuple[Store, SecretBox, uuid.UUID]:
    """A migrated store with one approved, enabled mailbox for ``user`` (tracks all)."""
    directory.mkdir(parents=True, exist_ok=True)
    store = Store(database_url or f"sqlite:///{directory / 'crm.sqlite3'}", directory / "blobs")
    store.migrate()
    box = SecretBox([SecretBox.generate_key()])
    with store.transaction() as session:
        result = initialise(
            session, organisation_name="Bench", admin_username="admin", admin_password="x" * 12
        )
        admin = load_principal(result.admin)
        profiles.create_profile(
            session,
            admin,
            {
                "name": "Dovecot",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": dovecot.imap_port,
                "incoming_security": "plain",
                "outgoing_host": "127.0.0.1",
                "outgoing_port": 25,
                "outgoing_security": "plain",
                "allow_plaintext": True,
                "is_default": True,
            },
            box,
        )
    return store, box, add_mailbox(store, box, user)


def add_mailbox(store: Store, box: SecretBox, user: MailUser) -> uuid.UUID:
    """A user with an approved mailbox for ``user`` whose incoming channel is enabled."""
    with store.transaction() as session:
        first = session.scalars(select(User).order_by(User.created_at)).first()
        assert first is not None
        admin = load_principal(first)
        owner = create_user(
            session,
            admin,
            username=user.name,
            full_name="Bench",
            business_unit_id=root_business_unit(session, admin.organisation_id).id,
            email_addresses=[user.address],
        )
        owner.settings = {"track_scope": "all"}
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == owner.id)).one()
        mailboxes.update_mailbox(session, admin, mailbox, {"password": user.password}, box)
        mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
        for channel in session.scalars(
            select(MailboxChannel).where(MailboxChannel.mailbox_id == mailbox.id)
        ):
            channel.enabled = channel.channel is Channel.INCOMING
        return mailbox.id

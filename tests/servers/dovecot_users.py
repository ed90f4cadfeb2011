"""Mail accounts of a test Dovecot: the ``MailUser`` record and the passwd-files behind it.

What it is for: Dovecot reads one passwd-file per user, ``DIR/users.d/<login>``, because
Dovecot 2.3 re-reads a passwd-file at most once per second (``passwd_file_sync``): a new
user in a shared file could take a second to appear, a new file is read at once. The
aggregate file ``DIR/users`` (same format, every user) is for the SMTP relay and people.
A rewritten file gets an mtime later than the previous one, so Dovecot notices the change
even within the same second and with the same size.

What it must never do: write outside the instance directory, or accept a login that could
escape ``users.d`` ('/' in it) or break the file format (':' or newlines).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tests.servers import process
from tests.servers.dovecot_conf import MAIL_GID, MAIL_UID, DovecotLayout
from tests.servers.passwd import format_line, write_atomically


@dataclass(frozen=True)
class MailUser:
    """A mailbox account: ``login`` is what IMAP/POP3/SMTP AUTH take (the full address)."""

    name: str
    address: str
    login: str
    password: str

    @classmethod
    def make(cls, name: str, password: str, domain: str) -> MailUser:
        """``make("alice", "pw", "example.test")`` → alice@example.test; full addresses too."""
        address = name if "@" in name else f"{name}@{domain}"
        if "/" in address or address.startswith("."):
            raise ValueError(f"unusable login for a passwd-file path: {address!r}")
        return cls(
            name=address.partition("@")[0], address=address, login=address, password=password
        )


def write_user_files(layout: DovecotLayout, users: Iterable[MailUser]) -> list[MailUser]:
    """Write every user's file and the aggregate file; return users whose file changed."""
    layout.user_files.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    changed: list[MailUser] = []
    for user in users:
        home = layout.mail / user.address
        line = format_line(user.login, user.password, uid=MAIL_UID, gid=MAIL_GID, home=home)
        lines.append(f"{line}\n")
        path = layout.user_files / user.login
        try:
            old = path.read_text()
            old_mtime = int(path.stat().st_mtime)
        except FileNotFoundError:
            old, old_mtime = None, 0
        if old == lines[-1]:
            continue
        write_atomically(path, lines[-1])
        mtime = max(int(time.time()), old_mtime + 1)
        os.utime(path, (mtime, mtime))
        changed.append(user)
    write_atomically(layout.users, "".join(lines))
    return changed


def wait_until_known(
    user: MailUser,
    doveadm: Callable[..., subprocess.CompletedProcess[str]],
    log_tail: Callable[[], str],
    timeout: float = 10.0,
) -> None:
    """Return once Dovecot's userdb knows ``user`` and its passdb accepts the password.

    A userdb lookup costs ~20 ms, a failed ``auth test`` ~0.5 s (auth_failure_delay), so
    the userdb is polled first. "--" because generated passwords may start with "-".
    """
    last: list[subprocess.CompletedProcess[str]] = []

    def succeeds(*argv: str) -> bool:
        last[:] = [doveadm(*argv, check=False)]
        return last[0].returncode == 0

    try:
        process.wait_until(
            lambda: succeeds("user", "--", user.login),
            timeout=timeout,
            interval=0.05,
            what=f"userdb {user.login}",
        )
        process.wait_until(
            lambda: succeeds("auth", "test", "--", user.login, user.password),
            timeout=timeout,
            interval=0.1,
            what=f"passdb {user.login}",
        )
    except TimeoutError as exc:
        output = f"{last[0].args}: {last[0].stdout}{last[0].stderr}" if last else ""
        raise RuntimeError(
            f"Dovecot did not pick up {user.login}: {exc}\n{output}\n{log_tail()}"
        ) from exc

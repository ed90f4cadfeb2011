"""The dovecot.conf of a throwaway Dovecot 2.3 instance (see shared/recipes/dovecot-loopback.md).

What it is for: turning a directory, ports and options into a self-contained configuration:
it includes nothing from /etc/dovecot, uses its own ``instance_name``, ``base_dir``,
``state_dir`` and log files, and listens on 127.0.0.1 only.

What it must never do: enable a listener on a non-loopback address, or refer to a path
outside the instance directory (apart from Dovecot's own binaries).

Facts relied on (Dovecot 2.3.19):
- passwd-file passdb/userdb files are re-read when their mtime or size changes, checked at
  most once per second per file (``passwd_file_sync``); hence one file per user, found
  through ``%u`` in the path (``dovecot_users.py``). A missing file means "no such user".
- A passdb with ``master = yes`` plus ``auth_master_user_separator = *`` lets
  ``alice@example.test*admin`` log in as alice with admin's password.
- Anvil's auth penalty (2, 4, 8, 15 s per client IP after failed logins) is disabled
  unless asked for; ``auth_failure_delay = 0`` still leaves ~0.5 s per failure.
- With ``ssl = yes`` the plain IMAP/POP3 ports offer STARTTLS/STLS and do not require it
  (``disable_plaintext_auth = no``); imaps/pop3s listeners speak implicit TLS.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from tests.servers import process
from tests.servers.tls import TlsMaterial

MAIL_UID = 14000
MAIL_GID = 14000


@dataclass(frozen=True)
class DovecotPorts:
    imap: int
    pop3: int
    lmtp: int
    imaps: int | None = None
    pop3s: int | None = None

    @classmethod
    def pick(cls, *, tls: bool) -> DovecotPorts:
        free = process.free_port
        if tls:
            return cls(free(), free(), free(), imaps=free(), pop3s=free())
        return cls(free(), free(), free())


@dataclass(frozen=True)
class DovecotLayout:
    """Where everything of one instance lives, all under ``root``."""

    root: Path

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def users(self) -> Path:
        return self.root / "users"

    @property
    def user_files(self) -> Path:
        """One passwd-file per user (see module docstring)."""
        return self.root / "users.d"

    @property
    def master_users(self) -> Path:
        return self.root / "master-users"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def logs(self) -> Path:
        return self.root / "log"

    @property
    def log(self) -> Path:
        return self.logs / "dovecot.log"

    @property
    def stderr_log(self) -> Path:
        return self.logs / "master-stderr.log"

    @property
    def mail(self) -> Path:
        return self.root / "mail"

    @property
    def tls(self) -> Path:
        return self.root / "tls"


def prepare_layout(layout: DovecotLayout) -> None:
    """Create the directories; refuse a place Dovecot's unprivileged processes cannot reach."""
    for parent in layout.root.parents:
        if parent.exists() and not parent.stat().st_mode & stat.S_IXOTH:
            raise process.ServerStartError(
                f"{parent} is not searchable by other users, so Dovecot's mail (uid "
                f"{MAIL_UID}) and auth processes cannot reach {layout.root}; "
                "choose a directory under /tmp or chmod o+x the parents"
            )
    for path in (layout.root, layout.run, layout.state, layout.logs, layout.mail):
        path.mkdir(parents=True, exist_ok=True)
    # Mail processes run as uid 14000 and the auth process as the dovecot user: both must
    # reach their files, so the instance directory cannot stay mkdtemp's 0700.
    layout.root.chmod(0o755)
    os.chown(layout.mail, MAIL_UID, MAIL_GID)


def _listener(name: str, port: int | None, *, ssl: bool = False) -> str:
    if port is None:
        return f"  inet_listener {name} {{\n    port = 0\n  }}\n"
    ssl_line = "    ssl = yes\n" if ssl else ""
    return (
        f"  inet_listener {name} {{\n    address = 127.0.0.1\n    port = {port}\n{ssl_line}  }}\n"
    )


def render_conf(
    layout: DovecotLayout,
    *,
    instance_name: str,
    ports: DovecotPorts,
    tls: TlsMaterial | None,
    master_user: bool,
    auth_penalty: bool = False,
) -> str:
    if tls is not None:
        ssl = f"ssl = yes\nssl_cert = <{tls.cert}\nssl_key = <{tls.key}\n"
        ssl += "ssl_min_protocol = TLSv1.2\n"
    else:
        ssl = "ssl = no\n"
    master = ""
    if master_user:
        master = (
            "auth_master_user_separator = *\n"
            "passdb {\n  driver = passwd-file\n  master = yes\n"
            f"  args = scheme=PLAIN username_format=%u {layout.master_users}\n}}\n"
        )
    # Anvil's auth penalty delays every login from an IP by 2-15 s after failures;
    # tests that check wrong passwords would slow all later logins down.
    anvil = "service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
    if auth_penalty:
        anvil = ""
    return f"""# generated by tests/servers/dovecot_conf.py; do not edit
instance_name = {instance_name}
protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {layout.run}
state_dir = {layout.state}
log_path = {layout.log}
info_log_path = {layout.log}
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
default_internal_user = dovecot
default_login_user = dovenull
{master}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {layout.user_files}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {layout.user_files}/%u
}}
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
first_valid_gid = {MAIL_GID}
last_valid_gid = {MAIL_GID}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
  prefix =
}}
mail_max_userip_connections = 200
service imap-login {{
{_listener("imap", ports.imap)}{_listener("imaps", ports.imaps, ssl=True)}}}
service pop3-login {{
{_listener("pop3", ports.pop3)}{_listener("pop3s", ports.pop3s, ssl=True)}}}
service lmtp {{
{_listener("lmtp", ports.lmtp)}}}
{anvil}pop3_uidl_format = %08Xu%08Xv
"""

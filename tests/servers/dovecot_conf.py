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
- OAuth2 mode: XOAUTH2/OAUTHBEARER hand the token to every passdb as if it were a
  password, so the passwd-file passdb is limited to ``mechanisms = plain login`` (else a
  user's password sent as a token logs in) and the oauth2 passdb to ``xoauth2
  oauthbearer``. Without ``tokeninfo_url`` the oauth2 passdb introspects every token;
  ``introspection_mode = post`` sends ``token=…`` with HTTP Basic taken from the URL's
  user:password, and needs ``username`` equal to the login and ``active`` = ``true``
  ("Introspection failed: Provided token is not valid" in the log otherwise). With
  ``auth_cache_size`` at its default 0 a revoked token is refused at the next login.
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

    @property
    def oauth2_conf(self) -> Path:
        """The oauth2 passdb's settings (OAuth2 mode only; see ``render_oauth2_conf``)."""
        return self.root / "dovecot-oauth2.conf.ext"


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
    oauth2: bool = False,
) -> str:
    """dovecot.conf; with ``oauth2`` also XOAUTH2/OAUTHBEARER through ``layout.oauth2_conf``."""
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
    mechanisms, password_mechanisms, oauth2_passdb = "plain login", "", ""
    if oauth2:
        # Tokens are checked by the oauth2 passdb only, passwords by passwd-file only: a
        # password sent as an XOAUTH2 token must not log in.
        mechanisms = "plain login xoauth2 oauthbearer"
        password_mechanisms = "  mechanisms = plain login\n"
        oauth2_passdb = (
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {layout.oauth2_conf}\n}}\n"
        )
    return f"""# generated by tests/servers/dovecot_conf.py; do not edit
instance_name = {instance_name}
protocols = imap pop3 lmtp
listen = 127.0.0.1
base_dir = {layout.run}
state_dir = {layout.state}
log_path = {layout.log}
info_log_path = {layout.log}
{ssl}disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
auth_verbose = yes
default_internal_user = dovecot
default_login_user = dovenull
{master}passdb {{
  driver = passwd-file
{password_mechanisms}  args = scheme=PLAIN username_format=%u {layout.user_files}/%u
}}
{oauth2_passdb}userdb {{
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


def render_oauth2_conf(introspection_url: str) -> str:
    """The oauth2 passdb's settings: every token is checked by RFC 7662 introspection.

    No ``tokeninfo_url``, so Dovecot 2.3 goes straight to introspection; ``post`` sends
    ``token=…`` as a form, with HTTP Basic from the URL's user and password; the answer
    must say ``"active": true`` and carry ``"username"`` equal to the login.
    """
    return f"""# generated by tests/servers/dovecot_conf.py; do not edit
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
timeout_msecs = 5000
"""

"""A real Dovecot 2.3 (IMAP, POP3, LMTP) in a throwaway directory on 127.0.0.1 high ports.

What it is for: integration tests and the demo stack need a genuine IMAP/POP3 server.
``DovecotServer`` writes a self-contained dovecot.conf (``dovecot_conf.py``), runs
``dovecot -F -c DIR/dovecot.conf`` as a child in its own process group, waits (bounded)
until every port accepts connections, and stops with ``doveadm -c DIR/dovecot.conf stop``,
falling back to SIGTERM/SIGKILL of the process group. Users live in passwd-files with
``{PLAIN}`` passwords (``dovecot_users.py``); mail is Maildir under DIR/mail, owned by
uid/gid 14000 (no such system user is needed: Dovecot only uses the numbers). Requires
root, as on the CI machines.

What it must never do: touch /etc/dovecot or a system Dovecot, listen beyond loopback,
or leave a process behind (see ``process.py`` for the parent-death and atexit guards).

OAuth2 mode (``oauth2_introspection_url=…``, e.g. ``OAuthServer.introspection_url``) adds
AUTH=XOAUTH2 and AUTH=OAUTHBEARER, checked by Dovecot's oauth2 passdb through RFC 7662
token introspection (``dovecot_conf.render_oauth2_conf``); passwords keep working through
the passwd-file passdb, but only with PLAIN/LOGIN. Users are still added with
``add_user`` (the userdb needs them); their OAuth grants live in the OAuth server.

    server = DovecotServer(tls=True, master_user=True).start()
    alice = server.add_user("alice", "secret")   # MailUser(address='alice@example.test', ...)
    server.deliver(alice, b"Subject: hi\\r\\n\\r\\nbody\\r\\n")
    server.imap_port, server.imaps_port, server.ca_cert
    server.stop()
"""

from __future__ import annotations

import os
import secrets
import shutil
import smtplib
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import astuple
from pathlib import Path
from typing import Self

from tests.servers import process
from tests.servers.dovecot_conf import (
    DovecotLayout,
    DovecotPorts,
    prepare_layout,
    render_conf,
    render_oauth2_conf,
)
from tests.servers.dovecot_users import MailUser, wait_until_known, write_user_files
from tests.servers.passwd import write_atomically
from tests.servers.tls import TlsMaterial, make_tls_material

__all__ = ["DovecotServer", "MailUser"]

START_ATTEMPTS = 3  # a port picked with free_port() can be taken before Dovecot binds it
STOP_GRACE = 3.0  # seconds for a clean shutdown before SIGKILL


class DovecotServer(process.ServerLifecycle):
    """One Dovecot instance. Use as a context manager or call ``start()``/``stop()``."""

    host = process.LOOPBACK

    def __init__(
        self,
        directory: Path | None = None,
        *,
        tls: bool = False,
        master_user: bool = False,
        auth_penalty: bool = False,
        domain: str = "example.test",
        startup_timeout: float = 20.0,
        keep_directory: bool = False,
        oauth2_introspection_url: str | None = None,
    ) -> None:
        self.domain = domain
        self.oauth2_introspection_url = oauth2_introspection_url
        self.tls = tls
        self.auth_penalty = auth_penalty
        self.startup_timeout = startup_timeout
        self.instance_name = f"crmsync-test-{secrets.token_hex(4)}"
        self.master_login: str | None = "admin" if master_user else None
        self.master_password: str | None = secrets.token_urlsafe(12) if master_user else None
        self.tls_material: TlsMaterial | None = None
        self.users: dict[str, MailUser] = {}
        self._directory = directory
        self._owns_directory = directory is None and not keep_directory
        self._layout: DovecotLayout | None = None
        self._ports: DovecotPorts | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- where things are ---------------------------------------------------------------
    @property
    def layout(self) -> DovecotLayout:
        if self._layout is None:
            root = self._directory or Path(tempfile.mkdtemp(prefix="crmsync-dovecot-"))
            self._layout = DovecotLayout(root.resolve())
        return self._layout

    @property
    def directory(self) -> Path:
        return self.layout.root

    @property
    def conf_path(self) -> Path:
        return self.layout.conf

    @property
    def users_path(self) -> Path:
        return self.layout.users

    @property
    def log_path(self) -> Path:
        return self.layout.log

    @property
    def ca_cert(self) -> Path | None:
        return self.tls_material.ca_cert if self.tls_material else None

    @property
    def ports(self) -> DovecotPorts:
        if self._ports is None:
            raise RuntimeError("DovecotServer is not started")
        return self._ports

    @property
    def imap_port(self) -> int:
        return self.ports.imap

    @property
    def pop3_port(self) -> int:
        return self.ports.pop3

    @property
    def lmtp_port(self) -> int:
        return self.ports.lmtp

    @property
    def imaps_port(self) -> int | None:
        return self.ports.imaps

    @property
    def pop3s_port(self) -> int | None:
        return self.ports.pop3s

    @property
    def pid(self) -> int | None:
        """The master's pid, which is also the process group of all Dovecot processes."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> Self:
        return self._start(keep_ports=False)

    def _start(self, *, keep_ports: bool) -> Self:
        if self.running:
            return self
        if os.geteuid() != 0:
            raise process.ServerStartError("DovecotServer needs root (mail owned by uid 14000)")
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        self._prepare_directory()
        process.track(self)
        for attempt in range(1, START_ATTEMPTS + 1):
            if not (keep_ports and attempt == 1 and self._ports is not None):
                self._ports = DovecotPorts.pick(tls=self.tls)
            self.conf_path.write_text(
                render_conf(
                    self.layout,
                    instance_name=self.instance_name,
                    ports=self._ports,
                    tls=self.tls_material,
                    master_user=self.master_login is not None,
                    auth_penalty=self.auth_penalty,
                    oauth2=self.oauth2_introspection_url is not None,
                )
            )
            self._proc = process.spawn(
                [binary, "-F", "-c", str(self.conf_path)], log_path=self.layout.stderr_log
            )
            try:
                self._wait_ready()
                return self
            except TimeoutError as exc:
                port_taken = "Address already in use" in self.log_tail(200)
                self._halt()
                if not port_taken or attempt == START_ATTEMPTS:
                    self.stop()
                    raise process.ServerStartError(
                        f"Dovecot {self.instance_name} did not start: {exc}\n{self.log_tail()}"
                    ) from exc
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """Stop all Dovecot processes; remove the directory if it was a temporary one.

        Safe to call twice, before ``start()`` and after a ``start()`` that failed.
        """
        self._halt()
        process.untrack(self)
        if self._owns_directory and self._layout is not None:
            shutil.rmtree(self._layout.root, ignore_errors=True)
            self._layout = None

    def restart(self) -> Self:
        """Stop the processes and start them again on the same ports; mail is kept."""
        self._halt()
        return self._start(keep_ports=True)

    # -- users and mail -----------------------------------------------------------------
    def add_user(self, name: str, password: str) -> MailUser:
        """Add (or replace) a user; when running, return only once Dovecot accepts it.

        ``name`` is a local part (``alice`` → ``alice@example.test``) or a full address.
        """
        return self.add_users([(name, password)])[0]

    def add_users(self, credentials: Iterable[tuple[str, str]]) -> list[MailUser]:
        """Add several ``(name, password)`` users at once (see ``add_user``)."""
        added = [MailUser.make(name, password, self.domain) for name, password in credentials]
        self.users.update((user.login, user) for user in added)
        if self._layout is not None and self.running:
            for user in write_user_files(self.layout, self.users.values()):
                wait_until_known(user, self.doveadm, self.log_tail)
        return added

    def impersonation_login(self, user: MailUser | str) -> str:
        """The login that opens ``user``'s mailbox with the master password."""
        if self.master_login is None:
            raise RuntimeError("DovecotServer was created without master_user=True")
        login = user.login if isinstance(user, MailUser) else user
        return f"{login}*{self.master_login}"

    def deliver(
        self, recipient: MailUser | str, raw: bytes, *, mail_from: str = "sender@external.test"
    ) -> None:
        """Deliver ``raw`` (RFC 5322 bytes) into the recipient's INBOX over LMTP (RFC 2033)."""
        address = recipient.address if isinstance(recipient, MailUser) else recipient
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=10) as lmtp:
            lmtp.sendmail(mail_from, [address], raw)

    def doveadm(
        self, *args: str, check: bool = True, timeout: float = 30.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``doveadm -c DIR/dovecot.conf ARGS`` (e.g. ``doveadm("mailbox", "list", ...)``)."""
        return subprocess.run(
            ["doveadm", "-c", str(self.conf_path), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def log_tail(self, lines: int = 40) -> str:
        return (
            f"--- {self.layout.log} ---\n{process.tail(self.layout.log, lines)}\n"
            f"--- {self.layout.stderr_log} ---\n{process.tail(self.layout.stderr_log, lines)}"
        )

    def describe(self) -> dict[str, object]:
        """Ports and paths as JSON-ready data (used by the demo stack)."""
        return {
            "host": self.host,
            "imap": self.imap_port,
            "pop3": self.pop3_port,
            "lmtp": self.lmtp_port,
            "imaps": self.imaps_port,
            "pop3s": self.pop3s_port,
            "ca_cert": str(self.ca_cert) if self.ca_cert else None,
            "master_login": self.master_login,
            "master_password": self.master_password,
            "master_separator": "*",
            "directory": str(self.directory),
        }

    # -- internals ----------------------------------------------------------------------
    def _prepare_directory(self) -> None:
        prepare_layout(self.layout)
        if self.tls and self.tls_material is None:
            self.tls_material = make_tls_material(self.layout.tls)
        if self.master_login is not None:
            write_atomically(
                self.layout.master_users, f"{self.master_login}:{{PLAIN}}{self.master_password}\n"
            )
        write_user_files(self.layout, self.users.values())
        if self.oauth2_introspection_url is not None:
            write_atomically(
                self.layout.oauth2_conf, render_oauth2_conf(self.oauth2_introspection_url)
            )

    def _wait_ready(self) -> None:
        ports = [p for p in astuple(self.ports) if p is not None]
        proc = self._proc
        assert proc is not None

        def exited() -> str | None:
            code = proc.poll()
            return None if code is None else f"dovecot exited with status {code}"

        process.wait_until(
            lambda: all(process.port_open(p) for p in ports),
            timeout=self.startup_timeout,
            what=f"Dovecot ports {ports}",
            abort=exited,
        )

    def _halt(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            # doveadm stop signals the master and waits for it to vanish, but the master
            # is our child: it only vanishes once we reap it, so wait for both at once.
            # A master stopped right after start waits ~5 s for login processes stuck in
            # their stats handshake; after STOP_GRACE seconds the group gets SIGKILL.
            stopper = subprocess.Popen(
                ["doveadm", "-c", str(self.conf_path), "stop"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                proc.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill_group(proc.pid)
            finally:
                try:
                    stopper.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    stopper.kill()
                    stopper.wait()
        process.terminate(proc)
        self._proc = None

"""Dovecot + SMTP relay (+ Radicale) started together, with sample users.

What it is for: the demo (``python -m tests.servers``) and tests that want the whole set of
mail servers at once. Users get the same login (their address) and password on every
server. With a ``directory``, each server lives in a subdirectory of it and nothing is
deleted afterwards; without one, every server uses its own temporary directory.

What it must never do: leave a server running when another failed to start — ``start()``
stops what it already started before re-raising.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Self

from tests.servers import process
from tests.servers.dovecot import DovecotServer
from tests.servers.dovecot_users import MailUser
from tests.servers.radicale import RadicaleServer
from tests.servers.smtp import SmtpServer

DEMO_USERS = ("alice", "bob", "carol")


class ServerStack(process.ServerLifecycle):
    def __init__(
        self,
        directory: Path | None = None,
        *,
        tls: bool = False,
        with_radicale: bool = True,
        users: Sequence[str] = DEMO_USERS,
        password: str | None = None,
    ) -> None:
        self.directory = directory.resolve() if directory else None
        self.password = password or secrets.token_urlsafe(9)
        self.user_names = tuple(users)
        self.users: list[MailUser] = []
        self.dovecot = DovecotServer(self._sub("dovecot"), tls=tls, master_user=True)
        self.smtp: SmtpServer | None = None
        self.radicale: RadicaleServer | None = None
        self._with_radicale = with_radicale

    def _sub(self, name: str) -> Path | None:
        return self.directory / name if self.directory else None

    def start(self) -> Self:
        try:
            self.dovecot.start()
            self.users = self.dovecot.add_users((name, self.password) for name in self.user_names)
            self.smtp = SmtpServer.in_front_of(self.dovecot, directory=self._sub("smtp")).start()
            if self._with_radicale:
                self.radicale = RadicaleServer(self._sub("radicale"), tls=self.dovecot.tls_material)
                for user in self.users:
                    self.radicale.add_user(user.login, user.password)
                self.radicale.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything that was started, in reverse order. Idempotent."""
        errors: list[BaseException] = []
        for server in (self.radicale, self.smtp, self.dovecot):
            if server is None:
                continue
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(exc)
        if errors:
            raise errors[0]

    def describe(self) -> dict[str, object]:
        """Everything a client needs, as JSON-ready data."""
        return {
            "host": self.dovecot.host,
            "tls": self.dovecot.tls,
            "ca_cert": str(self.dovecot.ca_cert) if self.dovecot.ca_cert else None,
            "dovecot": self.dovecot.describe(),
            "smtp": self.smtp.describe() if self.smtp else None,
            "radicale": self.radicale.describe() if self.radicale else None,
            "users": [
                {"address": u.address, "login": u.login, "password": u.password} for u in self.users
            ],
        }

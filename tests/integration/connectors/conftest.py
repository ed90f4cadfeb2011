"""Fixtures for connector tests: endpoints on the real test servers, plus odd sockets.

``servers`` gives, per protocol, the host, the port for each security mode and the CA of
the session's TLS-mode Dovecot and SMTP relay (``tests.servers.fixtures``). Local extras:
a Dovecot and relay *without* TLS (to see STARTTLS refused), a port nothing listens on,
and a port that accepts connections but never says a word.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.probe import ProbeResult, probe_imap, probe_pop3, probe_smtp
from tests.servers import DovecotServer, MailUser, SmtpServer

HOST = "127.0.0.1"
PROTOCOLS = ("imap", "pop3", "smtp")
STEPS = {
    "imap": ["dns", "tcp", "tls", "auth", "inbox"],
    "pop3": ["dns", "tcp", "tls", "auth", "inbox"],
    "smtp": ["dns", "tcp", "tls", "ehlo", "auth"],
}


@dataclass(frozen=True)
class Server:
    """One protocol of a test server: its ports by security mode and the CA it trusts."""

    protocol: str
    ports: dict[Security, int]
    ca_pem: str | None

    def endpoint(self, security: Security, **options: Any) -> Endpoint:
        """Verified against the generated CA; plain allowed when asked for; ``options`` win."""
        base = Endpoint(
            HOST,
            self.ports[security],
            security,
            ca_pem=self.ca_pem,
            allow_plaintext=security is Security.PLAIN,
            timeout=10.0,
        )
        return dataclasses.replace(base, **options)


def probe(protocol: str, endpoint: Endpoint, credentials: Credentials | None) -> ProbeResult:
    if protocol == "imap":
        assert credentials is not None
        return probe_imap(endpoint, credentials)
    if protocol == "pop3":
        assert credentials is not None
        return probe_pop3(endpoint, credentials)
    return probe_smtp(endpoint, credentials)


def _servers(dovecot: DovecotServer, smtp: Callable[[], SmtpServer]) -> Callable[[str], Server]:
    ca_pem = dovecot.ca_cert.read_text() if dovecot.ca_cert else None

    def get(protocol: str) -> Server:
        ports: dict[Security, int] = {}
        if protocol == "imap":
            ports = {Security.STARTTLS: dovecot.imap_port, Security.PLAIN: dovecot.imap_port}
            if dovecot.imaps_port:
                ports[Security.IMPLICIT_TLS] = dovecot.imaps_port
        elif protocol == "pop3":
            ports = {Security.STARTTLS: dovecot.pop3_port, Security.PLAIN: dovecot.pop3_port}
            if dovecot.pop3s_port:
                ports[Security.IMPLICIT_TLS] = dovecot.pop3s_port
        else:
            relay = smtp()
            ports = {Security.STARTTLS: relay.port, Security.PLAIN: relay.port}
            if relay.smtps_port:
                ports[Security.IMPLICIT_TLS] = relay.smtps_port
        return Server(protocol, ports, ca_pem)

    return get


@pytest.fixture
def servers(dovecot: DovecotServer, request: pytest.FixtureRequest) -> Callable[[str], Server]:
    """``servers("imap")`` etc. on the session's TLS-mode servers (SMTP started on demand)."""
    return _servers(dovecot, lambda: request.getfixturevalue("smtp_server"))


@pytest.fixture(scope="session")
def plain_dovecot() -> Iterator[DovecotServer]:
    with DovecotServer(tls=False) as server:
        yield server


@pytest.fixture(scope="session")
def plain_smtp(plain_dovecot: DovecotServer) -> Iterator[SmtpServer]:
    with SmtpServer.in_front_of(plain_dovecot) as server:
        yield server


@pytest.fixture
def plain_servers(
    plain_dovecot: DovecotServer, request: pytest.FixtureRequest
) -> Callable[[str], Server]:
    """Like ``servers``, on a Dovecot and relay that offer no TLS at all."""
    return _servers(plain_dovecot, lambda: request.getfixturevalue("plain_smtp"))


@pytest.fixture
def plain_user(plain_dovecot: DovecotServer, mail_user: MailUser) -> MailUser:
    return plain_dovecot.add_user(mail_user.login, mail_user.password)


@pytest.fixture
def credentials(mail_user: MailUser) -> Credentials:
    return Credentials(mail_user.login, password=mail_user.password)


@pytest.fixture
def closed_port() -> int:
    """A port that was just free: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A listening socket that never accepts: the kernel completes the TCP handshake,
    then nothing is ever said (a hung server)."""
    with socket.create_server((HOST, 0), backlog=8) as sock:
        sock.setblocking(False)
        yield sock

"""pytest fixtures for the real test servers; load with ``pytest_plugins``.

    pytest_plugins = ["tests.servers.fixtures"]      # in tests/conftest.py

Session-scoped (one process each per test session, started on first use):
    dovecot      DovecotServer in TLS mode (STARTTLS + IMAPS/POP3S) with a master user
    smtp_server  SmtpServer relay in front of ``dovecot`` (same users and CA); its fault
                 queue is emptied after every test that used it
    radicale     RadicaleServer over plain HTTP
    oauth_server OAuthServer, the test OAuth 2.0 authorization server (token endpoint and
                 RFC 7662 introspection); its settings and fault queue are reset after
                 every test that used it
    dovecot_oauth  a second DovecotServer (TLS) in OAuth2 mode: XOAUTH2/OAUTHBEARER
                 checked against ``oauth_server``; add users with ``add_user`` as usual
Function-scoped:
    mail_user    a fresh MailUser on ``dovecot`` with a random name and password
    dav_user     a fresh DavUser on ``radicale``
    postgres_url the SQLAlchemy URL of a fresh PostgreSQL database, dropped afterwards
    oauth_client a fresh OAuthClient (random id and secret) registered on ``oauth_server``

What it must never do: share mutable state between tests beyond the servers themselves
(each test makes its own users), or start a server that no test asked for.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from tests.servers.dovecot import DovecotServer
from tests.servers.dovecot_users import MailUser
from tests.servers.oauth import OAuthClient, OAuthServer
from tests.servers.postgres import fresh_database
from tests.servers.radicale import DavUser, RadicaleServer
from tests.servers.smtp import SmtpServer


def _random_user() -> tuple[str, str]:
    return f"user-{secrets.token_hex(4)}", secrets.token_urlsafe(12)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    with DovecotServer(tls=True, master_user=True) as server:
        yield server


@pytest.fixture(scope="session")
def smtp_server(dovecot: DovecotServer) -> Iterator[SmtpServer]:
    with SmtpServer.in_front_of(dovecot) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_smtp_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "smtp_server" in request.fixturenames:
        server: SmtpServer = request.getfixturevalue("smtp_server")
        server.set_faults([])


@pytest.fixture(scope="session")
def radicale() -> Iterator[RadicaleServer]:
    with RadicaleServer() as server:
        yield server


@pytest.fixture
def mail_user(dovecot: DovecotServer) -> MailUser:
    name, password = _random_user()
    return dovecot.add_user(name, password)


@pytest.fixture
def dav_user(radicale: RadicaleServer) -> DavUser:
    name, password = _random_user()
    return radicale.add_user(name, password)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    with fresh_database() as url:
        yield url


@pytest.fixture(scope="session")
def oauth_server() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_oauth_server(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "oauth_server" in request.fixturenames:
        server: OAuthServer = request.getfixturevalue("oauth_server")
        server.reset()


@pytest.fixture(scope="session")
def dovecot_oauth(oauth_server: OAuthServer) -> Iterator[DovecotServer]:
    with DovecotServer(tls=True, oauth2_introspection_url=oauth_server.introspection_url) as server:
        yield server


@pytest.fixture
def oauth_client(oauth_server: OAuthServer) -> OAuthClient:
    return oauth_server.register_client(f"client-{secrets.token_hex(4)}", secrets.token_urlsafe(16))

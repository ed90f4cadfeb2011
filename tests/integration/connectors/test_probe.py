"""Test & Enable against the real servers: every step, every failure a person can meet."""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Callable

import pytest

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.probe import PLAIN_SKIPPED, ProbeResult
from crmsync.core.errors import ErrorCode
from tests.integration.connectors.conftest import HOST, PROTOCOLS, STEPS, Server, probe
from tests.servers import MailUser

pytestmark = pytest.mark.integration

SECURE = (Security.IMPLICIT_TLS, Security.STARTTLS)
SYNC_CAPABILITIES = {"IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS"}


def names(result: ProbeResult) -> list[str]:
    return [step.name for step in result.steps]


@pytest.mark.parametrize("security", SECURE)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_correct_credentials_pass_every_step(
    servers: Callable[[str], Server],
    credentials: Credentials,
    protocol: str,
    security: Security,
) -> None:
    endpoint = servers(protocol).endpoint(security)  # verified against the generated CA
    result = probe(protocol, endpoint, credentials)
    assert result.ok, result.steps
    assert result.error is None
    assert names(result) == STEPS[protocol]
    assert all(step.ok and step.code is None for step in result.steps)
    assert all(step.seconds >= 0 for step in result.steps)
    tls = result.steps[2]
    assert "certificate verified for 127.0.0.1" in tls.detail
    assert ("STARTTLS" if security is Security.STARTTLS else "implicit TLS") in tls.detail
    if protocol == "imap":
        assert result.capabilities >= SYNC_CAPABILITIES
        assert "INBOX holds 0 messages" in result.steps[-1].detail
        assert "IDLE CONDSTORE QRESYNC MOVE UIDPLUS" in result.steps[-1].detail
    if protocol == "smtp":
        assert {"AUTH=PLAIN", "SIZE"} <= result.capabilities
        assert "PLAIN" in result.steps[-1].detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wrong_password_fails_at_auth(
    servers: Callable[[str], Server], mail_user: MailUser, protocol: str
) -> None:
    wrong = Credentials(mail_user.login, password=f"wrong-{secrets.token_hex(6)}")
    result = probe(protocol, servers(protocol).endpoint(Security.STARTTLS), wrong)
    assert not result.ok
    assert names(result) == STEPS[protocol][: STEPS[protocol].index("auth") + 1]
    *before, auth = result.steps
    assert all(step.ok for step in before)
    assert not auth.ok
    assert auth.code is ErrorCode.AUTH_FAILED
    assert result.error is not None
    assert result.error.code is ErrorCode.AUTH_FAILED
    assert not result.error.transient
    assert wrong.password is not None
    assert wrong.password not in auth.detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_closed_port_fails_at_tcp(
    servers: Callable[[str], Server], credentials: Credentials, protocol: str, closed_port: int
) -> None:
    endpoint = Endpoint(HOST, closed_port, Security.IMPLICIT_TLS, timeout=5.0)
    result = probe(protocol, endpoint, credentials)
    assert names(result) == ["dns", "tcp"]
    assert result.steps[0].ok
    assert result.steps[1].code is ErrorCode.HOST_UNREACHABLE
    assert "connection refused" in result.steps[1].detail
    assert result.error is not None
    assert result.error.transient


@pytest.mark.parametrize(
    ("protocol", "security"),
    [(p, Security.IMPLICIT_TLS) for p in PROTOCOLS] + [("imap", Security.STARTTLS)],
)
def test_tls_without_the_ca_names_the_certificate_problem(
    servers: Callable[[str], Server], credentials: Credentials, protocol: str, security: Security
) -> None:
    endpoint = servers(protocol).endpoint(security, ca_pem=None)
    result = probe(protocol, endpoint, credentials)
    assert names(result) == ["dns", "tcp", "tls"]
    tls = result.steps[-1]
    assert tls.code is ErrorCode.TLS_FAILED
    # The server sends only its leaf, signed by a CA nobody trusts.
    assert tls.detail.startswith(
        "certificate verify failed: unable to get local issuer certificate"
    )
    assert tls.detail.endswith(f"({endpoint.where})")
    assert result.error is not None
    assert not result.error.transient


def test_tls_without_verification_passes_and_says_so(
    servers: Callable[[str], Server], credentials: Credentials
) -> None:
    endpoint = servers("imap").endpoint(
        Security.IMPLICIT_TLS, ca_pem=None, verify_certificates=False
    )
    result = probe("imap", endpoint, credentials)
    assert result.ok, result.steps
    assert "certificate NOT verified" in result.steps[2].detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_implicit_tls_on_a_plain_port_fails_at_tls(
    servers: Callable[[str], Server], credentials: Credentials, protocol: str
) -> None:
    server = servers(protocol)
    endpoint = Endpoint(HOST, server.ports[Security.STARTTLS], Security.IMPLICIT_TLS, timeout=5)
    result = probe(protocol, endpoint, credentials)
    assert result.steps[-1].name == "tls"
    assert result.steps[-1].code is ErrorCode.TLS_FAILED
    assert "wrong version number" in result.steps[-1].detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_endpoint_allowed_skips_tls(
    servers: Callable[[str], Server], credentials: Credentials, protocol: str
) -> None:
    result = probe(protocol, servers(protocol).endpoint(Security.PLAIN), credentials)
    assert result.ok, result.steps
    assert result.steps[2].detail == PLAIN_SKIPPED


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_plain_endpoint_not_allowed_never_connects(
    credentials: Credentials, protocol: str, silent_listener: socket.socket
) -> None:
    port = silent_listener.getsockname()[1]
    result = probe(protocol, Endpoint(HOST, port, Security.PLAIN), credentials)
    assert names(result) == ["tls"]
    assert result.steps[0].code is ErrorCode.TLS_REQUIRED
    with pytest.raises(BlockingIOError):
        silent_listener.accept()  # nobody ever connected


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_starttls_refused_by_a_server_without_tls(
    plain_servers: Callable[[str], Server], plain_user: MailUser, protocol: str
) -> None:
    credentials = Credentials(plain_user.login, password=plain_user.password)
    result = probe(protocol, plain_servers(protocol).endpoint(Security.STARTTLS), credentials)
    assert names(result) == ["dns", "tcp", "tls"]
    assert result.steps[-1].code is ErrorCode.TLS_REQUIRED
    assert "STARTTLS" in result.steps[-1].detail or "STLS" in result.steps[-1].detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unresolvable_host_fails_at_dns(credentials: Credentials, protocol: str) -> None:
    endpoint = Endpoint("nonexistent.invalid", 993, Security.IMPLICIT_TLS, timeout=5)
    result = probe(protocol, endpoint, credentials)
    assert names(result) == ["dns"]
    assert result.steps[0].code is ErrorCode.DNS_FAILED
    assert "nonexistent.invalid" in result.steps[0].detail


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_silent_server_times_out(
    credentials: Credentials, protocol: str, silent_listener: socket.socket
) -> None:
    port = silent_listener.getsockname()[1]
    endpoint = Endpoint(HOST, port, Security.IMPLICIT_TLS, timeout=0.5)
    result = probe(protocol, endpoint, credentials)
    assert names(result) == ["dns", "tcp", "tls"]
    assert result.steps[-1].code is ErrorCode.TIMEOUT
    assert result.error is not None
    assert result.error.transient


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_oauth_token_needs_xoauth2(
    servers: Callable[[str], Server], mail_user: MailUser, protocol: str
) -> None:
    token = Credentials(mail_user.login, oauth_access_token=f"ya29.{secrets.token_hex(8)}")
    result = probe(protocol, servers(protocol).endpoint(Security.STARTTLS), token)
    assert result.steps[-1].name == "auth"
    assert result.steps[-1].code is ErrorCode.AUTH_MECHANISM_UNSUPPORTED
    assert "PLAIN" in result.steps[-1].detail


def test_smtp_without_credentials_skips_auth(servers: Callable[[str], Server]) -> None:
    result = probe("smtp", servers("smtp").endpoint(Security.STARTTLS), None)
    assert result.ok, result.steps
    assert result.steps[-1].detail.startswith("skipped: no credentials")


def test_missing_secret_fails_at_auth(
    servers: Callable[[str], Server], mail_user: MailUser
) -> None:
    result = probe("imap", servers("imap").endpoint(Security.STARTTLS), Credentials("x"))
    assert result.steps[-1].code is ErrorCode.CREDENTIALS_MISSING


def test_secrets_never_leak(
    servers: Callable[[str], Server],
    mail_user: MailUser,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    good = Credentials(mail_user.login, password=mail_user.password)
    wrong = Credentials(mail_user.login, password=f"wrong-{secrets.token_hex(6)}")
    token = Credentials(mail_user.login, oauth_access_token=f"ya29.{secrets.token_hex(8)}")
    hidden = [mail_user.password, wrong.password, token.oauth_access_token]
    shown: list[str] = []
    for protocol in PROTOCOLS:
        for security in (Security.IMPLICIT_TLS, Security.STARTTLS, Security.PLAIN):
            for creds in (good, wrong, token):
                result = probe(protocol, servers(protocol).endpoint(security), creds)
                shown += [step.detail for step in result.steps]
                shown += [repr(result), str(result.error)]
            shown += [repr(creds), str(creds)]
    captured = capsys.readouterr()
    shown += [caplog.text, captured.out, captured.err]
    shown += [str(record.args) for record in caplog.records]
    assert any("LOGIN **REDACTED**" in r.getMessage() for r in caplog.records)
    for secret in hidden:
        assert secret
        leaks = [text for text in shown if secret in text]
        assert not leaks, f"secret leaked into: {leaks[:3]}"

"""Endpoint, Credentials and the XOAUTH2 string: pure, no server."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest

from crmsync.connectors.endpoints import Credentials, Endpoint, Security, xoauth2_string
from crmsync.core.errors import ErrorCode, SyncError
from tests.servers.tls import make_tls_material

GOOGLE_TOKEN = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"


def test_xoauth2_string_matches_the_documented_bytes() -> None:
    raw = xoauth2_string("someuser@example.com", GOOGLE_TOKEN).encode()
    assert raw == (
        b"user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
        b"\x01\x01"
    )
    # The base64 form printed in Google's XOAUTH2 documentation for the same inputs.
    assert base64.b64encode(raw) == (
        b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr"
        b"QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="
    )


def test_credentials_never_show_secrets() -> None:
    creds = Credentials("alice@example.test", password="hunter2-secret")
    token = Credentials("alice@example.test", oauth_access_token="tok-very-secret")
    for text in (repr(creds), str(creds), f"{creds}", repr(token), str([creds, token])):
        assert "hunter2-secret" not in text
        assert "tok-very-secret" not in text
    assert repr(creds) == (
        "Credentials(username='alice@example.test', password=<set>, oauth_access_token=None)"
    )
    assert creds.secrets == ("hunter2-secret",)
    assert token.uses_oauth
    assert not creds.uses_oauth


def test_credentials_without_secret_are_missing() -> None:
    with pytest.raises(SyncError) as caught:
        Credentials("alice").require_secret("imap.example.test:993")
    assert caught.value.code is ErrorCode.CREDENTIALS_MISSING


@pytest.mark.parametrize(
    ("host", "port", "timeout"),
    [("", 993, 30.0), ("a b", 993, 30.0), ("h", 0, 30.0), ("h", 70000, 30.0), ("h", 1, 0.0)],
)
def test_invalid_endpoint_is_a_configuration_error(host: str, port: int, timeout: float) -> None:
    with pytest.raises(SyncError) as caught:
        Endpoint(host, port, Security.IMPLICIT_TLS, timeout=timeout)
    assert caught.value.code is ErrorCode.CONFIGURATION


def test_where_brackets_ipv6() -> None:
    assert Endpoint("::1", 993, Security.IMPLICIT_TLS).where == "[::1]:993"
    assert Endpoint("mail.example.test", 465, Security.IMPLICIT_TLS).where == (
        "mail.example.test:465"
    )


def test_plain_requires_allow_plaintext() -> None:
    with pytest.raises(SyncError) as caught:
        Endpoint("127.0.0.1", 143, Security.PLAIN).require_allowed()
    assert caught.value.code is ErrorCode.TLS_REQUIRED
    assert not caught.value.transient
    Endpoint("127.0.0.1", 143, Security.PLAIN, allow_plaintext=True).require_allowed()
    Endpoint("127.0.0.1", 143, Security.STARTTLS).require_allowed()


def test_ssl_context_verifies_by_default_and_adds_ca_pem(tmp_path: Path) -> None:
    ca_pem = make_tls_material(tmp_path).ca_cert.read_text()
    default = Endpoint("h", 993, Security.IMPLICIT_TLS).ssl_context()
    with_ca = Endpoint("h", 993, Security.IMPLICIT_TLS, ca_pem=ca_pem).ssl_context()
    for context in (default, with_ca):
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname
    subjects = [str(ca["subject"]) for ca in with_ca.get_ca_certs()]
    assert any("crmsync test CA" in subject for subject in subjects)
    assert len(with_ca.get_ca_certs()) == len(default.get_ca_certs()) + 1


def test_ssl_context_without_verification() -> None:
    context = Endpoint("h", 993, Security.IMPLICIT_TLS, verify_certificates=False).ssl_context()
    assert context.verify_mode is ssl.CERT_NONE
    assert not context.check_hostname


def test_bad_ca_pem_is_a_configuration_error() -> None:
    endpoint = Endpoint("h", 993, Security.IMPLICIT_TLS, ca_pem="not a certificate")
    with pytest.raises(SyncError) as caught:
        endpoint.ssl_context()
    assert caught.value.code is ErrorCode.CONFIGURATION
    assert "h:993" in caught.value.detail

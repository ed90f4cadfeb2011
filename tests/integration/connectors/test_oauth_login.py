"""The refresh-token grant against the test OAuth server, then XOAUTH2 logins to Dovecot.

The OAuth server (``tests/servers/oauth.py``) stands in for Google's and Microsoft's token
services; ``dovecot_oauth`` asks it, by RFC 7662 introspection, whether a token is valid.
"""

from __future__ import annotations

import logging
import secrets
import socket
import time
from datetime import UTC, datetime, timedelta

import pytest

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.oauth import TokenGrant, refresh_access_token
from crmsync.core.errors import ErrorCode, SyncError
from tests.servers import DovecotServer, MailUser
from tests.servers.oauth import OAuthClient, OAuthServer

pytestmark = pytest.mark.integration

E = ErrorCode
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _refresh(
    server: OAuthServer, client: OAuthClient, refresh_token: str, **options: object
) -> TokenGrant:
    settings: dict[str, object] = {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "refresh_token": refresh_token,
        "scopes": None,
        "allow_plaintext": True,  # the test server speaks plain HTTP on 127.0.0.1
        "timeout": 10.0,
        **options,
    }
    return refresh_access_token(server.token_url, **settings)  # type: ignore[arg-type]


def _refused(
    server: OAuthServer, client: OAuthClient, refresh_token: str, **options: object
) -> SyncError:
    with pytest.raises(SyncError) as caught:
        _refresh(server, client, refresh_token, **options)
    error = caught.value
    for secret in (refresh_token, client.client_secret):
        assert secret
        assert secret not in str(error)
        assert secret not in repr(error)
    assert error.__cause__ is None  # no chained httpx exception carrying the form
    return error


def _login() -> str:
    return f"oauth-{secrets.token_hex(4)}@example.test"


# -- the refresh grant --------------------------------------------------------------------


def test_refresh_returns_a_token_the_server_issued(
    oauth_server: OAuthServer, oauth_client: OAuthClient, caplog: pytest.LogCaptureFixture
) -> None:
    login = _login()
    refresh_token = oauth_server.grant_refresh_token(login, scope="mail calendar")
    caplog.set_level(logging.DEBUG)
    grant = _refresh(oauth_server, oauth_client, refresh_token, now=NOW)
    assert grant.expires_at == NOW + timedelta(seconds=3600)
    assert grant.refresh_token is None  # not rotated
    assert grant.scope == "mail calendar"
    info = oauth_server.access_token_info(grant.access_token)
    assert info is not None
    assert info["login"] == login
    assert info["client_id"] == oauth_client.client_id
    for text in (repr(grant), str(grant), caplog.text):
        assert grant.access_token not in text
        assert refresh_token not in text
        assert oauth_client.client_secret not in text  # type: ignore[operator]


def test_expiry_follows_expires_in_from_the_current_time(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    oauth_server.configure(access_token_lifetime=120)
    before = datetime.now(UTC)
    grant = _refresh(oauth_server, oauth_client, oauth_server.grant_refresh_token(_login()))
    assert before + timedelta(seconds=120) <= grant.expires_at
    assert grant.expires_at <= datetime.now(UTC) + timedelta(seconds=120)


def test_narrower_scope_is_granted_wider_is_refused(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    refresh_token = oauth_server.grant_refresh_token(_login(), scope="mail calendar")
    assert _refresh(oauth_server, oauth_client, refresh_token, scopes="mail").scope == "mail"
    error = _refused(oauth_server, oauth_client, refresh_token, scopes="mail contacts")
    assert error.code is E.CONFIGURATION
    assert "invalid_scope" in error.detail


def test_rotated_refresh_token_replaces_the_old_one(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    oauth_server.configure(rotate_refresh_tokens=True)
    first = oauth_server.grant_refresh_token(_login())
    grant = _refresh(oauth_server, oauth_client, first)
    assert grant.refresh_token is not None
    assert grant.refresh_token != first
    assert "<hidden>" in repr(grant)
    assert grant.refresh_token not in repr(grant)
    again = _refresh(oauth_server, oauth_client, grant.refresh_token)
    assert again.refresh_token not in (None, first, grant.refresh_token)
    error = _refused(oauth_server, oauth_client, first)
    assert error.code is E.OAUTH_REFRESH_FAILED


def test_public_client_sends_no_secret(oauth_server: OAuthServer) -> None:
    client = oauth_server.register_client(f"public-{secrets.token_hex(4)}", None)
    refresh_token = oauth_server.grant_refresh_token(_login(), client_id=client.client_id)
    assert _refresh(oauth_server, client, refresh_token).access_token


def test_revoked_refresh_token_is_a_permanent_failure(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    refresh_token = oauth_server.grant_refresh_token(_login())
    _refresh(oauth_server, oauth_client, refresh_token)
    assert oauth_server.revoke(refresh_token)
    error = _refused(oauth_server, oauth_client, refresh_token)
    assert error.code is E.OAUTH_REFRESH_FAILED
    assert not error.transient
    assert "invalid_grant: Token has been expired or revoked." in error.detail
    assert error.detail.endswith(f"(127.0.0.1:{oauth_server.port})")


def test_unknown_refresh_token(oauth_server: OAuthServer, oauth_client: OAuthClient) -> None:
    error = _refused(oauth_server, oauth_client, f"rt-{secrets.token_urlsafe(32)}")
    assert error.code is E.OAUTH_REFRESH_FAILED
    assert "invalid_grant" in error.detail


def test_refresh_token_of_another_client(
    oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    other = oauth_server.register_client(f"other-{secrets.token_hex(4)}", "other-secret-123")
    refresh_token = oauth_server.grant_refresh_token(_login(), client_id=other.client_id)
    error = _refused(oauth_server, oauth_client, refresh_token)
    assert error.code is E.OAUTH_REFRESH_FAILED
    assert "invalid_grant" in error.detail


def test_wrong_client_secret(oauth_server: OAuthServer, oauth_client: OAuthClient) -> None:
    refresh_token = oauth_server.grant_refresh_token(_login())
    wrong = OAuthClient(oauth_client.client_id, f"wrong-{secrets.token_urlsafe(12)}")
    error = _refused(oauth_server, wrong, refresh_token)
    assert error.code is E.OAUTH_REFRESH_FAILED
    assert not error.transient
    assert "(HTTP 401): invalid_client" in error.detail


@pytest.mark.parametrize(
    ("fault", "code", "words"),
    [
        ({"status": 429, "retry_after": "7"}, E.THROTTLED, "HTTP 429; it asks to wait 7 s"),
        ({"status": 503, "body": "<h1>Down</h1>"}, E.SERVER_UNAVAILABLE, "HTTP 503"),
        ({"status": 500, "error": "server_error"}, E.SERVER_UNAVAILABLE, "HTTP 500"),
        ({"status": 200, "body": "<html>Sign in</html>"}, E.PROTOCOL_ERROR, "not a JSON object"),
        ({"status": 200, "body": '{"token_type": "Bearer"}'}, E.PROTOCOL_ERROR, "no access_token"),
        ({"status": 200, "body": "{" + " " * 70_000 + "}"}, E.PROTOCOL_ERROR, "exceeds"),
        ({"status": 404, "body": "Not Found"}, E.CONFIGURATION, "check the token URL"),
    ],
)
def test_server_faults(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    fault: dict[str, object],
    code: ErrorCode,
    words: str,
) -> None:
    refresh_token = oauth_server.grant_refresh_token(_login())
    oauth_server.fail_next(**fault)  # type: ignore[arg-type]
    error = _refused(oauth_server, oauth_client, refresh_token)
    assert error.code is code
    assert words in error.detail
    assert _refresh(oauth_server, oauth_client, refresh_token).access_token  # one fault only


def test_server_down_then_back(tmp_path_factory: pytest.TempPathFactory) -> None:
    with OAuthServer(tmp_path_factory.mktemp("oauth")) as server:
        client = server.register_client("crmsync", "client-secret-123")
        refresh_token = server.grant_refresh_token(_login())
        server.halt()
        error = _refused(server, client, refresh_token)
        assert error.code is E.HOST_UNREACHABLE
        assert error.transient
        server.start()  # same port, same state
        assert _refresh(server, client, refresh_token).access_token


def test_silent_server_times_out(
    silent_listener: socket.socket, oauth_server: OAuthServer, oauth_client: OAuthClient
) -> None:
    port = silent_listener.getsockname()[1]
    with pytest.raises(SyncError) as caught:
        refresh_access_token(
            f"http://127.0.0.1:{port}/token",
            client_id=oauth_client.client_id,
            client_secret=oauth_client.client_secret,
            refresh_token="rt-never-sent-anywhere-useful",
            scopes=None,
            timeout=0.5,
            allow_plaintext=True,
        )
    assert caught.value.code is E.TIMEOUT
    assert caught.value.transient


def test_untrusted_certificate_is_a_tls_failure(
    dovecot: DovecotServer, oauth_client: OAuthClient
) -> None:
    # Dovecot's IMAPS port has a certificate from the test CA, which is not trusted here.
    assert dovecot.imaps_port is not None
    with pytest.raises(SyncError) as caught:
        refresh_access_token(
            f"https://127.0.0.1:{dovecot.imaps_port}/token",
            client_id=oauth_client.client_id,
            client_secret=oauth_client.client_secret,
            refresh_token="rt-never-sent-anywhere-useful",
            scopes=None,
            timeout=5.0,
        )
    assert caught.value.code is E.TLS_FAILED
    assert "certificate verify failed" in caught.value.detail


# -- XOAUTH2 logins to Dovecot -------------------------------------------------------------


@pytest.fixture
def oauth_user(dovecot_oauth: DovecotServer) -> MailUser:
    return dovecot_oauth.add_user(f"oauth-{secrets.token_hex(4)}", secrets.token_urlsafe(12))


def _imap_endpoint(dovecot: DovecotServer) -> Endpoint:
    assert dovecot.ca_cert is not None
    return Endpoint(
        "127.0.0.1",
        dovecot.imap_port,
        Security.STARTTLS,
        ca_pem=dovecot.ca_cert.read_text(),
        timeout=10.0,
    )


def _imap_refused(dovecot: DovecotServer, credentials: Credentials) -> SyncError:
    with pytest.raises(SyncError) as caught:
        ImapConnection.open(_imap_endpoint(dovecot), credentials)
    for secret in credentials.secrets:
        assert secret not in str(caught.value)
    return caught.value


def test_xoauth2_login_with_a_refreshed_token(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    dovecot_oauth: DovecotServer,
    oauth_user: MailUser,
) -> None:
    dovecot_oauth.deliver(oauth_user, b"Subject: hello\r\n\r\nbody\r\n")
    grant = _refresh(oauth_server, oauth_client, oauth_server.grant_refresh_token(oauth_user.login))
    credentials = Credentials(oauth_user.login, oauth_access_token=grant.access_token)
    with ImapConnection.open(_imap_endpoint(dovecot_oauth), credentials) as imap:
        assert imap.tls_version is not None
        assert imap.select_folder("INBOX").exists == 1
    assert "method=XOAUTH2" in dovecot_oauth.log_tail(200)


def test_password_login_still_works_in_oauth2_mode(
    dovecot_oauth: DovecotServer, oauth_user: MailUser
) -> None:
    credentials = Credentials(oauth_user.login, password=oauth_user.password)
    with ImapConnection.open(_imap_endpoint(dovecot_oauth), credentials) as imap:
        assert imap.select_folder("INBOX").exists == 0


def test_garbage_token_is_refused(dovecot_oauth: DovecotServer, oauth_user: MailUser) -> None:
    token = f"at-{secrets.token_urlsafe(32)}"
    error = _imap_refused(dovecot_oauth, Credentials(oauth_user.login, oauth_access_token=token))
    assert error.code is E.AUTH_FAILED


def test_revoked_access_token_is_refused(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    dovecot_oauth: DovecotServer,
    oauth_user: MailUser,
) -> None:
    refresh_token = oauth_server.grant_refresh_token(oauth_user.login)
    grant = _refresh(oauth_server, oauth_client, refresh_token)
    credentials = Credentials(oauth_user.login, oauth_access_token=grant.access_token)
    ImapConnection.open(_imap_endpoint(dovecot_oauth), credentials).logout()
    oauth_server.revoke(refresh_token)  # revokes the access tokens issued from it too
    assert _imap_refused(dovecot_oauth, credentials).code is E.AUTH_FAILED


def test_expired_access_token_is_refused(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    dovecot_oauth: DovecotServer,
    oauth_user: MailUser,
) -> None:
    oauth_server.configure(access_token_lifetime=1)
    grant = _refresh(oauth_server, oauth_client, oauth_server.grant_refresh_token(oauth_user.login))
    time.sleep(max(0.0, (grant.expires_at - datetime.now(UTC)).total_seconds()) + 1.0)
    credentials = Credentials(oauth_user.login, oauth_access_token=grant.access_token)
    assert _imap_refused(dovecot_oauth, credentials).code is E.AUTH_FAILED


def test_another_users_token_is_refused(
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
    dovecot_oauth: DovecotServer,
    oauth_user: MailUser,
) -> None:
    other = dovecot_oauth.add_user(f"other-{secrets.token_hex(4)}", secrets.token_urlsafe(12))
    grant = _refresh(oauth_server, oauth_client, oauth_server.grant_refresh_token(other.login))
    credentials = Credentials(oauth_user.login, oauth_access_token=grant.access_token)
    assert _imap_refused(dovecot_oauth, credentials).code is E.AUTH_FAILED


def test_password_sent_as_a_token_is_refused(
    dovecot_oauth: DovecotServer, oauth_user: MailUser
) -> None:
    credentials = Credentials(oauth_user.login, oauth_access_token=oauth_user.password)
    assert _imap_refused(dovecot_oauth, credentials).code is E.AUTH_FAILED

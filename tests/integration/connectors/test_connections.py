"""ImapConnection, Pop3Connection and SmtpConnection against the real servers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from crmsync.connectors.endpoints import Credentials, Security
from crmsync.connectors.imap import FolderStatus, ImapConnection
from crmsync.connectors.pop3 import Pop3Connection
from crmsync.connectors.smtp import SmtpConnection
from crmsync.core.errors import ErrorCode, SyncError
from tests.integration.connectors.conftest import Server
from tests.servers import DovecotServer, MailUser

pytestmark = pytest.mark.integration


def _deliver(dovecot: DovecotServer, user: MailUser, count: int) -> None:
    for n in range(count):
        dovecot.deliver(user, f"Subject: test {n}\r\n\r\nbody {n}\r\n".encode())


# -- IMAP ---------------------------------------------------------------------------------


def test_imap_select_reports_uid_state(
    servers: Callable[[str], Server],
    dovecot: DovecotServer,
    mail_user: MailUser,
    credentials: Credentials,
) -> None:
    _deliver(dovecot, mail_user, 2)
    with ImapConnection.open(servers("imap").endpoint(Security.STARTTLS), credentials) as imap:
        assert imap.tls_version is not None
        assert imap.capabilities() >= {"IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS"}
        status = imap.select_folder("INBOX")
        assert isinstance(status, FolderStatus)
        assert status.exists == 2
        assert status.uidnext == 3
        assert status.uidvalidity > 0
        assert isinstance(status.highestmodseq, int)  # CONDSTORE was enabled at login
        assert imap.select_folder("INBOX", readonly=True) == status
        assert sorted(imap.client.search(["ALL"])) == [1, 2]


def test_imap_missing_folder(servers: Callable[[str], Server], credentials: Credentials) -> None:
    with ImapConnection.open(servers("imap").endpoint(Security.IMPLICIT_TLS), credentials) as imap:
        with pytest.raises(SyncError) as caught:
            imap.select_folder("No/Such/Folder")
        assert caught.value.code is ErrorCode.FOLDER_MISSING
        assert "No/Such/Folder" in caught.value.detail
        assert imap.select_folder("INBOX").exists == 0  # the session is still usable


def test_imap_wrong_password_raises_auth_failed(
    servers: Callable[[str], Server], mail_user: MailUser
) -> None:
    wrong = Credentials(mail_user.login, password="not-the-password-123")
    with pytest.raises(SyncError) as caught:
        ImapConnection.open(servers("imap").endpoint(Security.IMPLICIT_TLS), wrong)
    assert caught.value.code is ErrorCode.AUTH_FAILED
    assert "AUTHENTICATIONFAILED" in caught.value.detail
    assert "not-the-password-123" not in str(caught.value)
    assert caught.value.__cause__ is None  # no chained exception to carry a secret


def test_imap_master_user_impersonation(
    servers: Callable[[str], Server], dovecot: DovecotServer, mail_user: MailUser
) -> None:
    assert dovecot.master_password is not None
    creds = Credentials(dovecot.impersonation_login(mail_user), password=dovecot.master_password)
    _deliver(dovecot, mail_user, 1)
    with ImapConnection.open(servers("imap").endpoint(Security.IMPLICIT_TLS), creds) as imap:
        assert imap.select_folder("INBOX", readonly=True).exists == 1


def test_plain_imap_refused_before_connecting(
    servers: Callable[[str], Server], credentials: Credentials
) -> None:
    endpoint = servers("imap").endpoint(Security.PLAIN, allow_plaintext=False)
    with pytest.raises(SyncError) as caught:
        ImapConnection.open(endpoint, credentials)
    assert caught.value.code is ErrorCode.TLS_REQUIRED


# -- POP3 ---------------------------------------------------------------------------------


def test_pop3_stat_and_capabilities(
    servers: Callable[[str], Server],
    dovecot: DovecotServer,
    mail_user: MailUser,
    credentials: Credentials,
) -> None:
    _deliver(dovecot, mail_user, 2)
    endpoint = servers("pop3").endpoint(Security.STARTTLS)
    with Pop3Connection.connect(endpoint) as pop3:
        assert pop3.tls_version is not None
        assert {"UIDL", "USER", "AUTH=PLAIN"} <= pop3.capabilities()
        assert pop3.sasl_mechanisms() == frozenset({"PLAIN", "LOGIN"})
    with Pop3Connection.open(endpoint, credentials) as pop3:
        count, size = pop3.stat()
        assert count == 2
        assert size > 0


def test_pop3_failure_inside_with_does_not_commit_deletions(
    servers: Callable[[str], Server],
    dovecot: DovecotServer,
    mail_user: MailUser,
    credentials: Credentials,
) -> None:
    _deliver(dovecot, mail_user, 2)
    endpoint = servers("pop3").endpoint(Security.IMPLICIT_TLS)

    def fail_after_dele() -> None:
        with Pop3Connection.open(endpoint, credentials) as pop3:
            pop3.client.dele(1)
            raise RuntimeError("engine failed after DELE")

    with pytest.raises(RuntimeError):
        fail_after_dele()
    with Pop3Connection.open(endpoint, credentials) as pop3:
        assert pop3.stat()[0] == 2  # no QUIT, so no UPDATE state (RFC 1939 §6)


def test_pop3_wrong_password(servers: Callable[[str], Server], mail_user: MailUser) -> None:
    wrong = Credentials(mail_user.login, password="not-the-password-456")
    with pytest.raises(SyncError) as caught:
        Pop3Connection.open(servers("pop3").endpoint(Security.IMPLICIT_TLS), wrong)
    assert caught.value.code is ErrorCode.AUTH_FAILED
    assert "[AUTH]" in caught.value.detail


# -- SMTP ---------------------------------------------------------------------------------


@pytest.mark.parametrize("security", [Security.IMPLICIT_TLS, Security.STARTTLS])
def test_smtp_open_and_features(
    servers: Callable[[str], Server], credentials: Credentials, security: Security
) -> None:
    with SmtpConnection.open(servers("smtp").endpoint(security), credentials) as smtp:
        assert smtp.tls_version is not None
        features = smtp.features()
        assert "size" in features
        assert {"PLAIN", "LOGIN"} <= smtp.auth_mechanisms()
        assert "AUTH=PLAIN" in smtp.capabilities()
        assert "STARTTLS" not in smtp.capabilities()  # not offered again inside TLS


def test_smtp_without_credentials(servers: Callable[[str], Server]) -> None:
    with SmtpConnection.open(servers("smtp").endpoint(Security.STARTTLS), None) as smtp:
        assert smtp.features()


def test_smtp_wrong_password(servers: Callable[[str], Server], mail_user: MailUser) -> None:
    wrong = Credentials(mail_user.login, password="not-the-password-789")
    with pytest.raises(SyncError) as caught:
        SmtpConnection.open(servers("smtp").endpoint(Security.STARTTLS), wrong)
    assert caught.value.code is ErrorCode.AUTH_FAILED
    assert "535" in caught.value.detail
    assert "not-the-password-789" not in caught.value.detail

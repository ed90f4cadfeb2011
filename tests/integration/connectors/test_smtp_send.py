"""SmtpConnection.send against the real relay (aiosmtpd in front of Dovecot's LMTP).

Local recipients (example.test) are delivered into Dovecot before the relay's final 250,
so arrival is checked at once over IMAP; other domains land in the relay's spool.
Faults are scripted per transaction with ``smtp_server.set_faults`` (tests/servers/smtp.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from crmsync.connectors.base import SendResult
from crmsync.connectors.endpoints import Credentials, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.smtp import SmtpConnection
from crmsync.core.errors import ErrorCode, SyncError
from tests.integration.connectors.conftest import Server
from tests.servers import DovecotServer, MailUser, SmtpFault, SmtpServer, SmtpStage

pytestmark = pytest.mark.integration


def message(to: str, *, body: bytes = b"Hello.\r\n") -> tuple[str, bytes]:
    mid = f"<send-{secrets.token_hex(6)}@crmsync.test>"
    head = f"Message-ID: {mid}\r\nFrom: crm@example.test\r\nTo: {to}\r\nSubject: hi\r\n\r\n"
    return mid, head.encode() + body


@pytest.fixture
def smtp(
    servers: Callable[[str], Server], smtp_server: SmtpServer, credentials: Credentials
) -> Iterator[SmtpConnection]:
    with SmtpConnection.open(servers("smtp").endpoint(Security.STARTTLS), credentials) as conn:
        yield conn


@pytest.fixture
def inbox(
    servers: Callable[[str], Server], credentials: Credentials
) -> Callable[[str], list[bytes]]:
    """``inbox(message_id)`` → the raw copies of that message in the user's INBOX."""

    def find(message_id: str) -> list[bytes]:
        endpoint = servers("imap").endpoint(Security.IMPLICIT_TLS)
        with ImapConnection.open(endpoint, credentials) as imap:
            imap.select_folder("INBOX", readonly=True)
            uids = imap.search_message_id(message_id)
            return [m.raw or b"" for m in imap.fetch_raw(uids, max_size=None)]

    return find


def test_send_delivers(
    smtp: SmtpConnection, mail_user: MailUser, inbox: Callable[[str], list[bytes]]
) -> None:
    mid, raw = message(mail_user.address)
    assert smtp.max_message_size is not None
    result = smtp.send("crm@example.test", [mail_user.address], raw)
    assert result == SendResult(accepted=[mail_user.address], refused={})
    (copy,) = inbox(mid)
    assert copy.endswith(raw)


def test_transient_refusal_then_success(
    smtp: SmtpConnection,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    inbox: Callable[[str], list[bytes]],
) -> None:
    smtp_server.set_faults([SmtpFault(at=SmtpStage.RCPT, code=451, text="4.7.1 try later"), None])
    mid, raw = message(mail_user.address)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert caught.value.code is ErrorCode.SERVER_UNAVAILABLE
    assert caught.value.transient
    assert "451 4.7.1 try later" in caught.value.detail
    assert inbox(mid) == []
    # Same session (it was RSET), second transaction: no fault this time.
    assert smtp.send("crm@example.test", [mail_user.address], raw).accepted == [mail_user.address]
    assert len(inbox(mid)) == 1
    assert smtp_server.pending_faults() == 0


def test_permanent_refusal_carries_the_server_text(
    smtp: SmtpConnection, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    smtp_server.set_faults([SmtpFault(at=SmtpStage.RCPT, code=550, text="5.7.1 not you")])
    _, raw = message(mail_user.address)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert caught.value.code is ErrorCode.RECIPIENT_REJECTED
    assert not caught.value.transient
    assert "550 5.7.1 not you" in caught.value.detail
    assert mail_user.password not in caught.value.detail


def test_unknown_recipient_is_refused_by_the_relay(smtp: SmtpConnection) -> None:
    nobody = f"nobody-{secrets.token_hex(3)}@example.test"
    _, raw = message(nobody)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [nobody], raw)
    assert caught.value.code is ErrorCode.RECIPIENT_REJECTED
    assert "User unknown" in caught.value.detail


def test_partial_refusal_is_a_result(
    smtp: SmtpConnection, mail_user: MailUser, inbox: Callable[[str], list[bytes]]
) -> None:
    nobody = f"nobody-{secrets.token_hex(3)}@example.test"
    mid, raw = message(f"{mail_user.address}, {nobody}")
    result = smtp.send("crm@example.test", [nobody, mail_user.address], raw)
    assert result.accepted == [mail_user.address]
    assert list(result.refused) == [nobody]
    reply, text = result.refused[nobody]
    assert reply == 550
    assert text.startswith("5.1.1")
    assert len(inbox(mid)) == 1


def test_all_refused_prefers_the_transient_refusal(
    smtp: SmtpConnection, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    nobody = f"nobody-{secrets.token_hex(3)}@example.test"
    fault = SmtpFault(SmtpStage.RCPT, 452, "4.5.3 too many", rcpt=mail_user.address)
    smtp_server.set_faults([fault])
    _, raw = message(mail_user.address)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [nobody, mail_user.address], raw)
    assert caught.value.code is ErrorCode.THROTTLED  # worth a retry: one refusal was 4xx
    assert nobody in caught.value.detail
    assert "User unknown" in caught.value.detail
    assert "452 4.5.3 too many" in caught.value.detail


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (SmtpFault(SmtpStage.DATA, 552, "5.3.4 Message too big for system"), "MESSAGE_TOO_LARGE"),
        (SmtpFault(SmtpStage.DATA, 552, "5.2.2 Mailbox full"), "QUOTA"),
        (SmtpFault(SmtpStage.DATA, 451, "4.3.0 Local delivery failed"), "SERVER_UNAVAILABLE"),
        (SmtpFault(SmtpStage.MAIL, 452, "4.3.1 Insufficient system storage"), "SERVER_UNAVAILABLE"),
        (SmtpFault(SmtpStage.MAIL, 553, "5.7.1 Sender not owned by user"), "MESSAGE_REJECTED"),
    ],
)
def test_mail_and_data_refusals(
    smtp: SmtpConnection,
    smtp_server: SmtpServer,
    mail_user: MailUser,
    inbox: Callable[[str], list[bytes]],
    fault: SmtpFault,
    code: str,
) -> None:
    smtp_server.set_faults([fault])
    mid, raw = message(mail_user.address)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert caught.value.code is ErrorCode(code)
    assert f"{fault.at.value} refused: {fault.code} {fault.text}" in caught.value.detail
    assert inbox(mid) == []
    assert smtp.send("crm@example.test", [mail_user.address], raw).accepted  # session reusable
    assert len(inbox(mid)) == 1


def test_421_closes_the_session(
    smtp: SmtpConnection, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    smtp_server.set_faults([SmtpFault(SmtpStage.MAIL, 421, "4.3.2 shutting down")])
    _, raw = message(mail_user.address)
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert caught.value.code is ErrorCode.SERVER_UNAVAILABLE
    with pytest.raises(SyncError) as again:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert again.value.code is ErrorCode.CONNECTION_LOST


def test_batch_on_one_session_and_bare_lf(
    smtp: SmtpConnection, mail_user: MailUser, inbox: Callable[[str], list[bytes]]
) -> None:
    sent = [message(mail_user.address, body=f"message {n}\n..dot\n".encode()) for n in range(3)]
    for _, raw in sent:
        lf_only = raw.replace(b"\r\n", b"\n")
        assert smtp.send("crm@example.test", [mail_user.address], lf_only).accepted
    for mid, raw in sent:
        (copy,) = inbox(mid)
        assert copy.endswith(raw.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n"))


def test_external_recipient_is_relayed_with_exact_bytes(
    smtp: SmtpConnection, smtp_server: SmtpServer
) -> None:
    outsider = f"someone-{secrets.token_hex(3)}@external.test"
    mid, raw = message(outsider, body="Grüße\r\n.leading dot\r\n".encode())
    assert smtp.send("crm@example.test", [outsider], raw).accepted == [outsider]
    spooled = [m for m in smtp_server.external_messages() if outsider in m.rcpt_tos]
    assert len(spooled) == 1
    assert spooled[0].mail_from == "crm@example.test"
    assert spooled[0].raw.endswith(raw)  # the relay only prepended its Received header
    assert mid.encode() in spooled[0].raw


def test_too_large_for_the_server_is_refused_before_sending(
    smtp: SmtpConnection, smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    limit = smtp.max_message_size
    assert limit is not None
    _, raw = message(mail_user.address, body=b"x" * (limit + 1))
    smtp_server.set_faults([SmtpFault(SmtpStage.MAIL, 550, "5.0.0 should not be reached")])
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [mail_user.address], raw)
    assert caught.value.code is ErrorCode.MESSAGE_TOO_LARGE
    assert str(limit) in caught.value.detail
    assert smtp_server.pending_faults() == 1  # no transaction was started


def test_no_recipients(smtp: SmtpConnection) -> None:
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test", [], b"Subject: x\r\n\r\ny\r\n")
    assert caught.value.code is ErrorCode.CONFIGURATION


def test_send_over_implicit_tls_with_null_sender(
    servers: Callable[[str], Server],
    smtp_server: SmtpServer,
    credentials: Credentials,
    mail_user: MailUser,
    dovecot: DovecotServer,
    inbox: Callable[[str], list[bytes]],
) -> None:
    endpoint = servers("smtp").endpoint(Security.IMPLICIT_TLS)
    mid, raw = message(mail_user.address)
    with SmtpConnection.open(endpoint, credentials) as smtp:
        assert smtp.send("", [mail_user.address], raw).accepted == [mail_user.address]
    (copy,) = inbox(mid)
    assert b"Return-Path: <>" in copy


def test_addresses_that_cannot_be_sent_are_refused_locally(
    smtp: SmtpConnection, mail_user: MailUser, inbox: Callable[[str], list[bytes]]
) -> None:
    injected = "x@example.test>\r\nRCPT TO:<postmaster@example.test"
    mid, raw = message(mail_user.address)
    result = smtp.send("crm@example.test", [injected, mail_user.address], raw)
    assert result.accepted == [mail_user.address]
    assert result.refused[injected][0] == 501
    assert len(inbox(mid)) == 1
    with pytest.raises(SyncError) as caught:
        smtp.send("crm@example.test\r\nRSET", [mail_user.address], raw)
    assert caught.value.code is ErrorCode.CONFIGURATION

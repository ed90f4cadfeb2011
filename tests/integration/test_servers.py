"""The test servers themselves: real Dovecot, SMTP relay, Radicale and PostgreSQL behave.

These tests pin down what later integration tests rely on: mail sent over SMTP arrives in
IMAP and POP3 unchanged, wrong passwords are refused, TLS verifies against the generated CA
only, SMTP faults can be programmed, external mail is spooled, Radicale authenticates,
databases come and go, and nothing is left running.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import json
import os
import poplib
import secrets
import shutil
import signal
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

import httpx
import pytest
import sqlalchemy
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers import (
    DavUser,
    DovecotServer,
    MailUser,
    RadicaleServer,
    SmtpFault,
    SmtpServer,
    SmtpStage,
    fresh_database,
)
from tests.servers.postgres import database_exists
from tests.servers.process import REPO_ROOT, port_open, wait_until

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


def _message(sender: str, to: str, body: str = "Hello from the test.\n") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = f"test {secrets.token_hex(3)}"
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain="client.example.test")
    msg.set_content(body)
    return msg


def _send(smtp_server: SmtpServer, user: MailUser | None, msg: EmailMessage) -> None:
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:
        if user is not None:
            client.login(user.login, user.password)
        client.send_message(msg)


def _imap_inbox(dovecot: DovecotServer, user: MailUser) -> list[EmailMessage]:
    with IMAPClient(HOST, dovecot.imap_port, ssl=False, timeout=10) as client:
        client.login(user.login, user.password)
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(client.search(["ALL"]), [b"BODY.PEEK[]"])
        return [_parse(data[b"BODY[]"]) for _, data in sorted(fetched.items())]


def _parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _body(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    # An 8bit body travels with CRLF line ends (RFC 5321) and is decoded with them.
    return str(part.get_content()).replace("\r\n", "\n")


def test_smtp_message_arrives_in_imap_and_pop3(
    smtp_server: SmtpServer, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    recipient = dovecot.add_user(f"rcpt-{secrets.token_hex(4)}", "rcpt-password")
    sent = _message(mail_user.address, recipient.address, body="Ünïcode body, line 1\nline 2\n")
    _send(smtp_server, mail_user, sent)

    (received,) = _imap_inbox(dovecot, recipient)
    assert received["Message-ID"] == sent["Message-ID"]
    assert _body(received) == _body(sent)
    received_by = received.get_all("Received", [])  # Dovecot's LMTP one, then the relay's
    assert any("crmsync test relay" in str(line) for line in received_by)

    pop = poplib.POP3(HOST, dovecot.pop3_port, timeout=10)
    try:
        pop.user(recipient.login)
        pop.pass_(recipient.password)
        assert pop.stat()[0] == 1
        _, lines, _ = pop.retr(1)
    finally:
        pop.quit()
    popped = _parse(b"".join(line + b"\r\n" for line in lines))
    assert popped["Message-ID"] == sent["Message-ID"]
    assert _body(popped) == _body(sent)


def test_wrong_password_is_refused_by_smtp_imap_and_pop3(
    smtp_server: SmtpServer, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.login(mail_user.login, "wrong")
        assert refused.value.smtp_code == 535
    with (
        IMAPClient(HOST, dovecot.imap_port, ssl=False, timeout=10) as client,
        pytest.raises(LoginError),
    ):
        client.login(mail_user.login, "wrong")
    pop = poplib.POP3(HOST, dovecot.pop3_port, timeout=10)
    try:
        pop.user(mail_user.login)
        with pytest.raises(poplib.error_proto):
            pop.pass_("wrong")
    finally:
        pop.close()


def test_master_user_opens_another_users_mailbox(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    dovecot.deliver(mail_user, _message("x@external.test", mail_user.address).as_bytes())
    assert dovecot.master_password is not None
    with IMAPClient(HOST, dovecot.imap_port, ssl=False, timeout=10) as client:
        client.login(dovecot.impersonation_login(mail_user), dovecot.master_password)
        assert client.select_folder("INBOX", readonly=True)[b"EXISTS"] == 1


def test_imap_and_pop3_tls_verify_against_the_generated_ca_only(
    dovecot: DovecotServer, mail_user: MailUser
) -> None:
    assert dovecot.tls_material is not None
    assert dovecot.imaps_port
    assert dovecot.pop3s_port
    trusted = dovecot.tls_material.client_context

    with IMAPClient(HOST, dovecot.imaps_port, ssl=True, ssl_context=trusted(), timeout=10) as c:
        c.login(mail_user.login, mail_user.password)
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(HOST, dovecot.imaps_port, ssl=True, ssl_context=ssl.create_default_context())
    with IMAPClient(HOST, dovecot.imap_port, ssl=False, timeout=10) as c:
        assert b"STARTTLS" in c.capabilities()
        c.starttls(trusted())
        c.login(mail_user.login, mail_user.password)
    with IMAPClient(HOST, dovecot.imap_port, ssl=False, timeout=10) as c:  # noqa: SIM117
        with pytest.raises(ssl.SSLCertVerificationError):
            c.starttls(ssl.create_default_context())

    poplib.POP3_SSL(HOST, dovecot.pop3s_port, context=trusted(), timeout=10).quit()
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL(HOST, dovecot.pop3s_port, context=ssl.create_default_context())
    pop = poplib.POP3(HOST, dovecot.pop3_port, timeout=10)
    pop.stls(trusted())
    pop.user(mail_user.login)
    pop.pass_(mail_user.password)
    pop.quit()
    pop = poplib.POP3(HOST, dovecot.pop3_port, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        pop.stls(ssl.create_default_context())
    with contextlib.suppress(OSError):  # the failed handshake already closed the socket
        pop.close()


def test_smtp_starttls_and_implicit_tls(smtp_server: SmtpServer, mail_user: MailUser) -> None:
    assert smtp_server.tls_material is not None
    assert smtp_server.smtps_port
    trusted = smtp_server.tls_material.client_context
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:
        client.starttls(context=trusted())
        client.login(mail_user.login, mail_user.password)
        client.send_message(_message(mail_user.address, mail_user.address))
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:  # noqa: SIM117
        with pytest.raises(ssl.SSLCertVerificationError):
            client.starttls(context=ssl.create_default_context())
    with smtplib.SMTP_SSL(HOST, smtp_server.smtps_port, context=trusted(), timeout=10) as client:
        client.login(mail_user.login, mail_user.password)
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(HOST, smtp_server.smtps_port, context=ssl.create_default_context())


def test_programmed_fault_answers_451_then_250(
    smtp_server: SmtpServer, dovecot: DovecotServer, mail_user: MailUser
) -> None:
    smtp_server.set_faults([SmtpFault(SmtpStage.RCPT, 451, "4.7.1 try later")])
    msg = _message(mail_user.address, mail_user.address)
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:
        client.login(mail_user.login, mail_user.password)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.send_message(msg)
        assert refused.value.recipients[mail_user.address][0] == 451
        assert client.send_message(msg) == {}
    assert smtp_server.pending_faults() == 0
    assert [m["Message-ID"] for m in _imap_inbox(dovecot, mail_user)] == [msg["Message-ID"]]


def test_programmed_fault_can_skip_a_transaction_then_reject_data(
    smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    smtp_server.set_faults([None, SmtpFault(SmtpStage.DATA, 550, "5.7.1 message rejected")])
    with smtplib.SMTP(HOST, smtp_server.port, timeout=10) as client:
        client.login(mail_user.login, mail_user.password)
        client.send_message(_message(mail_user.address, mail_user.address))
        with pytest.raises(smtplib.SMTPDataError) as rejected:
            client.send_message(_message(mail_user.address, mail_user.address))
        assert rejected.value.smtp_code == 550


def test_external_mail_is_spooled_and_relaying_needs_auth(
    smtp_server: SmtpServer, mail_user: MailUser
) -> None:
    msg = _message(mail_user.address, "partner@external.test")
    _send(smtp_server, mail_user, msg)
    (spooled,) = [m for m in smtp_server.external_messages() if msg["Message-ID"].encode() in m.raw]
    assert spooled.rcpt_tos == ["partner@external.test"]
    assert spooled.mail_from == mail_user.address
    assert spooled.authenticated_as == mail_user.login
    assert spooled.path.suffix == ".eml"

    with pytest.raises(smtplib.SMTPRecipientsRefused) as denied:
        _send(smtp_server, None, _message(mail_user.address, "partner@external.test"))
    assert denied.value.recipients["partner@external.test"][0] == 554
    with pytest.raises(smtplib.SMTPRecipientsRefused) as unknown:
        _send(smtp_server, None, _message("x@external.test", "nobody-here@example.test"))
    assert unknown.value.recipients["nobody-here@example.test"][0] == 550


PROPFIND = b"""<?xml version="1.0" encoding="utf-8"?>
<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>"""


def test_radicale_answers_authenticated_propfind(
    radicale: RadicaleServer, dav_user: DavUser
) -> None:
    url = f"{radicale.url}{dav_user.login}/"
    headers = {"Depth": "0", "Content-Type": "application/xml"}
    ok = httpx.request(
        "PROPFIND",
        url,
        auth=(dav_user.login, dav_user.password),
        headers=headers,
        content=PROPFIND,
        timeout=10,
    )
    assert ok.status_code == 207
    assert f"/{dav_user.login}/" in ok.text
    refused = httpx.request(
        "PROPFIND",
        url,
        auth=(dav_user.login, "wrong"),
        headers=headers,
        content=PROPFIND,
        timeout=10,
    )
    assert refused.status_code == 401


def test_fresh_database_exists_inside_and_is_gone_after() -> None:
    with fresh_database() as url:
        name = sqlalchemy.make_url(url).database
        assert name is not None
        assert name.startswith("crmsync_test_")
        engine = sqlalchemy.create_engine(url)
        leaked = engine.connect()  # left open on purpose: the drop must terminate it
        assert leaked.execute(sqlalchemy.text("SELECT current_database()")).scalar() == name
    assert not database_exists(name)
    leaked.invalidate()
    engine.dispose()


def test_postgres_url_fixture_connects(postgres_url: str) -> None:
    engine = sqlalchemy.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    engine.dispose()


def _group_alive(pgid: int) -> bool:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def test_plain_dovecot_restarts_keeping_mail_and_stops_without_leftovers() -> None:
    server = DovecotServer()
    server.stop()  # stopping before start is harmless
    with server:
        assert server.imaps_port is None
        assert server.ca_cert is None
        user = server.add_user("solo", "pw")
        server.deliver(user, _message("x@external.test", user.address).as_bytes())
        with IMAPClient(HOST, server.imap_port, ssl=False, timeout=10) as client:
            assert b"STARTTLS" not in client.capabilities()
        port, pgid, directory = server.imap_port, server.pid, server.directory
        assert pgid is not None
        server.restart()
        assert server.imap_port == port
        assert len(_imap_inbox(server, user)) == 1
        pgid = server.pid
        assert pgid is not None
    assert not port_open(port)
    assert not _group_alive(pgid)
    assert not directory.exists()
    server.stop()  # and twice


def test_demo_entry_point_prints_ports_and_stops_on_sigterm() -> None:
    # Not tmp_path: pytest's base temp dir is 0700, and Dovecot's unprivileged processes
    # must be able to reach the instance directory.
    tmp_path = Path(tempfile.mkdtemp(prefix="crmsync-demo-test-"))
    tmp_path.chmod(0o755)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers", "--dir", str(tmp_path), "--password", "demo"],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            (tmp_path / "servers.json").exists,
            timeout=60,
            what="servers.json",
            abort=lambda: None if proc.poll() is None else f"exited with {proc.returncode}",
        )
        time.sleep(0.2)  # stdout is written right after the file
        info = json.loads((tmp_path / "servers.json").read_text())
        assert [u["address"] for u in info["users"]] == [
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
        ]
        ports = [info["dovecot"]["imap"], info["smtp"]["smtp"], info["radicale"]["port"]]
        assert all(port_open(p) for p in ports)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        shutil.rmtree(tmp_path, ignore_errors=True)
    assert proc.returncode == 0, stderr.decode()
    assert json.loads(stdout) == info
    assert not any(port_open(p) for p in ports)


def test_one_message_to_two_local_recipients_reaches_both(
    dovecot: DovecotServer, smtp_server: SmtpServer
) -> None:
    first = dovecot.add_user(f"first-{secrets.token_hex(3)}", "first-password")
    second = dovecot.add_user(f"second-{secrets.token_hex(3)}", "second-password")
    msg = _message(first.address, f"{first.address}, {second.address}")
    _send(smtp_server, first, msg)
    for user in (first, second):
        deadline = time.monotonic() + 10
        while not _imap_inbox(dovecot, user) and time.monotonic() < deadline:
            time.sleep(0.1)
        (arrived,) = _imap_inbox(dovecot, user)
        assert arrived["Message-ID"] == msg["Message-ID"]

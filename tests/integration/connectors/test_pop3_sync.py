"""Pop3Connection's maildrop operations against the real Dovecot: UIDL, LIST, RETR, DELE.

The POP3 and IMAP views of a Dovecot mailbox are the same stored messages, so the bytes
RETR returns are checked against IMAP's ``BODY[]`` as well as against what was delivered.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from crmsync.connectors.endpoints import Credentials, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.pop3 import Pop3Connection
from crmsync.core.errors import ErrorCode, SyncError
from tests.integration.connectors.conftest import Server
from tests.servers import DovecotServer, MailUser

pytestmark = pytest.mark.integration

Opener = Callable[..., Pop3Connection]


def message(subject: str, body: bytes = b"body\r\n") -> bytes:
    head = f"Message-ID: <{secrets.token_hex(6)}@crmsync.test>\r\nSubject: {subject}\r\n\r\n"
    return head.encode() + body


@pytest.fixture
def open_pop3(servers: Callable[[str], Server], credentials: Credentials) -> Iterator[Opener]:
    """``open_pop3(security)``; any connection still open is closed *without* QUIT."""
    opened: list[Pop3Connection] = []

    def opener(security: Security = Security.IMPLICIT_TLS) -> Pop3Connection:
        connection = Pop3Connection.open(servers("pop3").endpoint(security), credentials)
        opened.append(connection)
        return connection

    yield opener
    for connection in opened:
        connection.close()


def test_uidl_is_stable_across_sessions_and_renumbering(
    dovecot: DovecotServer, mail_user: MailUser, open_pop3: Opener
) -> None:
    for n in range(3):
        dovecot.deliver(mail_user, message(f"m{n}"))
    first = open_pop3()
    assert first.supports_uidl
    listing = first.uidl()
    assert [number for number, _ in listing] == [1, 2, 3]
    assert len({uidl for _, uidl in listing}) == 3
    first.delete(1)
    first.quit()
    second = open_pop3(Security.STARTTLS)
    assert second.uidl() == [(1, listing[1][1]), (2, listing[2][1])]  # renumbered, same UIDLs


def test_retrieve_exact_bytes(
    dovecot: DovecotServer,
    mail_user: MailUser,
    open_pop3: Opener,
    servers: Callable[[str], Server],
    credentials: Credentials,
) -> None:
    body = (
        b"..two dots on the wire, one in the message\r\n"
        b".\r\n"  # a lone dot line inside the message
        + b"L" * 10_000  # longer than poplib's 2048-octet line limit
        + b"\r\n"
        + "8-bit: Grüße\r\n".encode()
    )
    delivered = message("exact", body)
    dovecot.deliver(mail_user, delivered)
    pop3 = open_pop3()
    raw = pop3.retrieve(1, max_size=None)
    assert raw is not None
    assert raw.endswith(delivered)
    assert pop3.list_sizes() == {1: len(raw)}
    with ImapConnection.open(servers("imap").endpoint(Security.IMPLICIT_TLS), credentials) as imap:
        imap.select_folder("INBOX", readonly=True)
        (fetched,) = list(imap.fetch_raw([1], max_size=None))
    assert fetched.raw == raw  # POP3 and IMAP hand out the same stored bytes
    assert pop3.retrieve(1, max_size=len(raw)) == raw  # a cap equal to the size is fine


def test_retrieve_over_the_cap_is_not_downloaded(
    dovecot: DovecotServer, mail_user: MailUser, open_pop3: Opener
) -> None:
    dovecot.deliver(mail_user, message("big", b"x" * 40_000 + b"\r\n"))
    dovecot.deliver(mail_user, message("small"))
    pop3 = open_pop3()
    sizes = pop3.list_sizes()
    assert sizes[1] > 40_000
    assert pop3.retrieve(1, max_size=10_000) is None
    small = pop3.retrieve(2, max_size=10_000)  # the session is still in step
    assert small is not None
    assert b"Subject: small" in small
    assert len(small) == sizes[2]


def test_delete_takes_effect_only_at_quit(
    dovecot: DovecotServer, mail_user: MailUser, open_pop3: Opener
) -> None:
    for n in range(2):
        dovecot.deliver(mail_user, message(f"m{n}"))
    pop3 = open_pop3()
    listing = pop3.uidl()
    pop3.delete(1)
    with pytest.raises(SyncError) as caught:
        pop3.retrieve(1, max_size=None)  # marked as deleted in this session
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR
    assert "-ERR" in caught.value.detail
    pop3.close()  # connection dropped without QUIT: RFC 1939 §6, no UPDATE state

    again = open_pop3()
    assert again.uidl() == listing
    again.delete(1)
    again.quit()  # QUIT: the server removes the message now

    last = open_pop3()
    assert last.uidl() == [(1, listing[1][1])]
    assert last.stat()[0] == 1


def test_retrieve_unknown_message(mail_user: MailUser, open_pop3: Opener) -> None:
    pop3 = open_pop3()
    with pytest.raises(SyncError) as caught:
        pop3.retrieve(7, max_size=None)
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR
    with pytest.raises(SyncError):
        pop3.retrieve(7, max_size=1000)  # LIST 7 fails the same way
    assert pop3.uidl() == []


def test_uidl_not_supported(open_pop3: Opener, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server whose CAPA lacks UIDL (Dovecot always offers it: CAPA is trimmed here)."""
    pop3 = open_pop3()
    capa = pop3._capa()
    assert capa is not None
    trimmed = {name: value for name, value in capa.items() if name.upper() != "UIDL"}
    monkeypatch.setattr(pop3, "_capa", lambda: trimmed)
    assert not pop3.supports_uidl
    with pytest.raises(SyncError) as caught:
        pop3.uidl()
    assert caught.value.code is ErrorCode.NOT_SUPPORTED


def test_header_reads_the_header_section_without_the_body(
    dovecot: DovecotServer, mail_user: MailUser, open_pop3: Opener
) -> None:
    sent = message("headers only", body=b"a body of some length\r\n" * 500)
    dovecot.deliver(mail_user, sent)
    pop = open_pop3()
    ((number, _),) = pop.uidl()
    header = pop.header(number, max_size=64 * 1024)
    assert header is not None
    assert header.endswith(b"\r\n\r\n")
    assert b"a body of some length" not in header
    assert sent.split(b"\r\n\r\n")[0] in header  # as delivered, after Dovecot's trace lines
    assert pop.header(number, max_size=10) is None  # over the cap: read, dropped, in step
    assert pop.retrieve(number, max_size=None) is not None

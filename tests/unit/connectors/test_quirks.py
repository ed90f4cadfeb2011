"""The server quirks table, and the order in which a missing UIDNEXT is asked for again.

The session is driven by a scripted stand-in for imapclient's client (no socket): it
answers SELECT data, STATUS and ``UID FETCH *`` as told and records what was sent, so the
order of the fallbacks shows. The same behaviour against the real Dovecot is in
tests/integration/test_server_quirks.py.
"""

from __future__ import annotations

import imaplib
from typing import Any

import pytest

from crmsync.connectors.endpoints import Endpoint, Security
from crmsync.connectors.imap import ImapConnection
from crmsync.connectors.quirks import DOVECOT, GENERIC, MINIMAL, quirks_for
from crmsync.core.errors import ErrorCode, SyncError

DOVECOT_GREETING = b"* OK [CAPABILITY IMAP4rev1 SASL-IR LITERAL+ IDLE] Dovecot ready."


class ScriptedClient:
    """Answers like imapclient's ``IMAPClient`` for the calls a SELECT may lead to."""

    def __init__(
        self,
        select: dict[bytes, Any],
        status: dict[bytes, Any] | Exception,
        highest: int | None,
        welcome: bytes = b"* OK IMAP4rev1 ready",
    ) -> None:
        self.welcome = welcome
        self.normalise_times = True
        self.sent: list[str] = []
        self._select, self._status, self._highest = select, status, highest
        self._imap = self

    def capabilities(self) -> tuple[bytes, ...]:
        return (b"IMAP4REV1", b"CONDSTORE", b"IDLE")

    def select_folder(self, name: str, readonly: bool = False) -> dict[bytes, Any]:
        self.sent.append("SELECT")
        return dict(self._select)

    def folder_status(self, name: str, what: list[str]) -> dict[bytes, Any]:
        self.sent.append(f"STATUS {' '.join(what)}")
        if isinstance(self._status, Exception):
            raise self._status
        return {k: v for k, v in self._status.items() if k.decode() in what}

    def uid(self, command: str, *args: str) -> tuple[str, list[Any]]:  # imaplib's
        self.sent.append(f"UID {command} {' '.join(args)}")
        if self._highest is None:
            return "OK", [None]
        return "OK", [f"7 (UID {self._highest})".encode()]


def _connection(client: ScriptedClient, **options: Any) -> ImapConnection:
    endpoint = Endpoint("127.0.0.1", 143, Security.PLAIN, allow_plaintext=True)
    return ImapConnection(client, endpoint, **options)


FULL = {b"EXISTS": 7, b"UIDVALIDITY": 42, b"UIDNEXT": 90, b"HIGHESTMODSEQ": 5}
NO_UIDNEXT = {b"EXISTS": 7, b"UIDVALIDITY": 42}


def test_a_complete_select_is_used_as_it_is() -> None:
    client = ScriptedClient(FULL, {}, None)
    conn = _connection(client)
    status = conn.select_folder("INBOX")
    assert (status.uidvalidity, status.uidnext, status.exists, status.highestmodseq) == (
        42,
        90,
        7,
        5,
    )
    assert client.sent == ["SELECT"]
    assert conn.uidnext_source == "SELECT"


def test_without_uidnext_status_is_asked_first() -> None:
    client = ScriptedClient(NO_UIDNEXT, {b"UIDNEXT": 91}, 80)
    conn = _connection(client)
    status = conn.select_folder("INBOX")
    assert status.uidnext == 91
    assert status.highestmodseq is None  # optional, and nobody asks for it again
    assert client.sent == ["SELECT", "STATUS UIDNEXT"]
    assert conn.uidnext_source == "STATUS"


@pytest.mark.parametrize(
    "status",
    [{}, imaplib.IMAP4.error("STATUS failed: BAD unknown item")],
    ids=["status-without-uidnext", "status-refused"],
)
def test_then_the_highest_uid_plus_one(status: dict[bytes, Any] | Exception) -> None:
    client = ScriptedClient(NO_UIDNEXT, status, 80)
    conn = _connection(client)
    assert conn.select_folder("INBOX").uidnext == 81
    assert client.sent == ["SELECT", "STATUS UIDNEXT", "UID FETCH * (UID)"]
    assert conn.uidnext_source == "UID FETCH *"


def test_an_empty_folder_starts_from_uid_1_without_a_fetch() -> None:
    client = ScriptedClient({b"EXISTS": 0, b"UIDVALIDITY": 42}, {}, None)
    assert _connection(client).select_folder("INBOX").uidnext == 1
    assert client.sent == ["SELECT", "STATUS UIDNEXT"]


def test_a_server_known_to_lack_it_in_status_goes_straight_to_uid_fetch() -> None:
    client = ScriptedClient(NO_UIDNEXT, {b"UIDNEXT": 91}, 80)
    assert _connection(client, quirks=MINIMAL).select_folder("INBOX").uidnext == 81
    assert client.sent == ["SELECT", "UID FETCH * (UID)"]


def test_a_missing_uidvalidity_comes_from_status_and_none_at_all_is_a_protocol_error() -> None:
    client = ScriptedClient({b"EXISTS": 1, b"UIDNEXT": 9}, {b"UIDVALIDITY": 77}, None)
    assert _connection(client).select_folder("INBOX").uidvalidity == 77
    assert client.sent == ["SELECT", "STATUS UIDVALIDITY"]

    nothing = ScriptedClient({b"EXISTS": 1, b"UIDNEXT": 9}, {}, None)
    with pytest.raises(SyncError) as caught:
        _connection(nothing).select_folder("INBOX")
    assert caught.value.code is ErrorCode.PROTOCOL_ERROR
    assert "UIDVALIDITY" in caught.value.detail


def test_a_dropped_connection_during_status_is_not_mistaken_for_a_refusal() -> None:
    client = ScriptedClient(NO_UIDNEXT, imaplib.IMAP4.abort("socket error: EOF"), 80)
    with pytest.raises(SyncError) as caught:
        _connection(client).select_folder("INBOX")
    assert caught.value.code is ErrorCode.CONNECTION_LOST
    assert client.sent == ["SELECT", "STATUS UIDNEXT"]


# -- the table ---------------------------------------------------------------------------
def test_the_greeting_picks_the_row() -> None:
    assert quirks_for(DOVECOT_GREETING) is DOVECOT
    assert quirks_for("* OK IMAP4rev1 Service Ready") is GENERIC
    assert quirks_for(None) is GENERIC
    assert _connection(ScriptedClient(FULL, {}, None, welcome=DOVECOT_GREETING)).quirks is DOVECOT


def test_a_rows_ignored_capabilities_are_absent_for_the_session() -> None:
    conn = _connection(ScriptedClient(FULL, {}, None), quirks=MINIMAL)
    assert not conn.supports_condstore
    assert not conn.supports_idle
    assert _connection(ScriptedClient(FULL, {}, None)).supports_condstore

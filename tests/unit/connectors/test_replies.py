"""The protocol quirks table: server texts (as byte literals) → catalogue codes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crmsync.connectors.replies import (
    enhanced_status,
    imap_error_code,
    pop3_error_code,
    response_code,
    smtp_error_code,
    text_of,
)
from crmsync.core.errors import ErrorCode

E = ErrorCode


def test_text_of_decodes_bytes_and_imaplib_reprs() -> None:
    assert text_of(b"[LIMIT] too many") == "[LIMIT] too many"
    assert text_of("b'[AUTHENTICATIONFAILED] Authentication failed.'") == (
        "[AUTHENTICATIONFAILED] Authentication failed."
    )
    assert text_of(Exception(b"-ERR [IN-USE] locked")) == "-ERR [IN-USE] locked"
    assert text_of(b"\xff\xfe odd") == "\ufffd\ufffd odd"
    assert text_of("b'unterminated") == "b'unterminated"


def test_response_code() -> None:
    assert response_code("NO [UNAVAILABLE] Try later") == "UNAVAILABLE"
    assert response_code("-ERR [SYS/TEMP] busy") == "SYS/TEMP"
    assert response_code("select failed: [nonexistent] gone") == "NONEXISTENT"
    assert response_code("no code here") is None


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        (b"[UNAVAILABLE] Temporary System Error", E.PROTOCOL_ERROR, E.SERVER_UNAVAILABLE),
        (b"[LIMIT] Too many connections", E.PROTOCOL_ERROR, E.THROTTLED),
        (b"[OVERQUOTA] Quota exceeded", E.PROTOCOL_ERROR, E.QUOTA),
        (b"[AUTHENTICATIONFAILED] Authentication failed.", E.PROTOCOL_ERROR, E.AUTH_FAILED),
        (b"[PRIVACYREQUIRED] Plaintext auth disallowed", E.AUTH_FAILED, E.TLS_REQUIRED),
        (b"[NONEXISTENT] Mailbox doesn't exist", E.PROTOCOL_ERROR, E.FOLDER_MISSING),
        (b"[ALERT] Too many simultaneous connections. (Failure)", E.AUTH_FAILED, E.THROTTLED),
        (b"User is authenticated but not connected.", E.PROTOCOL_ERROR, E.AUTH_FAILED),
        (b"[UNAVAILABLE] login backend down", E.AUTH_FAILED, E.SERVER_UNAVAILABLE),
        (b"Mailbox doesn't exist: Nope", E.FOLDER_MISSING, E.FOLDER_MISSING),
        (b"[SOMETHINGNEW] what", E.PROTOCOL_ERROR, E.PROTOCOL_ERROR),
    ],
)
def test_imap_codes(raw: bytes, default: ErrorCode, expected: ErrorCode) -> None:
    assert imap_error_code(text_of(raw), default) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"-ERR [AUTH] Authentication failed.", E.AUTH_FAILED),
        (b"-ERR [IN-USE] Mailbox is locked by another POP3 session", E.SERVER_UNAVAILABLE),
        (b"-ERR [SYS/TEMP] Internal error occurred", E.SERVER_UNAVAILABLE),
        (b"-ERR [LOGIN-DELAY] wait 15 minutes", E.THROTTLED),
        (b"-ERR Authentication failed.", E.AUTH_FAILED),
    ],
)
def test_pop3_codes_at_pass(raw: bytes, expected: ErrorCode) -> None:
    assert pop3_error_code(text_of(raw), E.AUTH_FAILED) is expected


def test_enhanced_status() -> None:
    assert enhanced_status("5.7.8 Authentication credentials invalid") == "5.7.8"
    assert enhanced_status("  4.7.0 Try again later") == "4.7.0"
    assert enhanced_status("Requested action aborted") is None


@pytest.mark.parametrize(
    ("reply", "raw", "command", "expected"),
    [
        (421, b"4.7.0 Try again later, closing connection.", "MAIL", E.SERVER_UNAVAILABLE),
        (450, b"4.2.0 Mailbox busy", "RCPT", E.SERVER_UNAVAILABLE),
        (451, b"4.3.0 Local delivery failed, try again later", "DATA", E.SERVER_UNAVAILABLE),
        (452, b"4.5.3 Too many recipients", "RCPT", E.THROTTLED),
        (454, b"4.7.0 Temporary authentication failure", "AUTH", E.SERVER_UNAVAILABLE),
        (535, b"5.7.8 Authentication credentials invalid", "AUTH", E.AUTH_FAILED),
        (534, b"5.7.14 Please log in via your web browser", "AUTH", E.AUTH_FAILED),
        (534, b"5.7.9 Authentication mechanism is too weak", "AUTH", E.AUTH_MECHANISM_UNSUPPORTED),
        (504, b"5.5.4 Unrecognized authentication type", "AUTH", E.AUTH_MECHANISM_UNSUPPORTED),
        (504, b"5.5.4 Command parameter not implemented", "MAIL", E.MESSAGE_REJECTED),
        (530, b"5.7.0 Must issue a STARTTLS command first", "MAIL", E.TLS_REQUIRED),
        (538, b"5.7.11 Encryption required", "AUTH", E.TLS_REQUIRED),
        (552, b"5.3.4 Message size exceeds fixed limit", "DATA", E.MESSAGE_TOO_LARGE),
        (552, b"5.2.2 Mailbox full", "RCPT", E.QUOTA),
        (552, b"Requested mail action aborted: exceeded storage allocation", "DATA", E.QUOTA),
        (552, b"Message size exceeds maximum permitted", "DATA", E.MESSAGE_TOO_LARGE),
        (550, b"5.1.1 <x@example.test>: User unknown", "RCPT", E.RECIPIENT_REJECTED),
        (554, b"5.7.1 <x@ext.test>: Relay access denied", "RCPT", E.RECIPIENT_REJECTED),
        (550, b"Sender rejected", "MAIL", E.MESSAGE_REJECTED),
        (554, b"Transaction failed", "DATA", E.MESSAGE_REJECTED),
        (501, b"5.1.3 Bad recipient address syntax", "RCPT", E.RECIPIENT_REJECTED),
        (500, b"5.5.1 Command unrecognized", "HELP", E.PROTOCOL_ERROR),
        (499, b"odd", "", E.SERVER_UNAVAILABLE),
        (600, b"odd", "", E.PROTOCOL_ERROR),
    ],
)
def test_smtp_codes(reply: int, raw: bytes, command: str, expected: ErrorCode) -> None:
    assert smtp_error_code(reply, text_of(raw), command) is expected


@given(st.integers(), st.binary(max_size=200), st.text(max_size=10))
def test_smtp_error_code_is_total(reply: int, raw: bytes, command: str) -> None:
    assert isinstance(smtp_error_code(reply, text_of(raw), command), ErrorCode)


@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_imap_and_pop3_codes_are_total(raw: bytes | str) -> None:
    text = text_of(raw)
    assert isinstance(imap_error_code(text, E.PROTOCOL_ERROR), ErrorCode)
    assert isinstance(pop3_error_code(text, E.AUTH_FAILED), ErrorCode)

"""The network/TLS error table, ``mapped_errors``, and each protocol's exception mapping."""

from __future__ import annotations

import errno
import imaplib
import poplib
import smtplib
import socket
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st
from imapclient.exceptions import CapabilityError, LoginError

from crmsync.connectors import imap, pop3, smtp
from crmsync.connectors.transport import map_error, mapped_errors, redact
from crmsync.core.errors import ErrorCode, SyncError

E = ErrorCode
WHERE = "127.0.0.1:41234"


def _cert_error(message: str) -> ssl.SSLCertVerificationError:
    exc = ssl.SSLCertVerificationError(
        1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message} (_ssl.c:1006)"
    )
    exc.verify_message = message
    return exc


@pytest.mark.parametrize(
    ("exc", "code", "transient"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), E.DNS_FAILED, True),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), E.DNS_FAILED, True),
        (
            ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"),
            E.HOST_UNREACHABLE,
            True,
        ),
        (OSError(errno.EHOSTUNREACH, "No route to host"), E.HOST_UNREACHABLE, True),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), E.HOST_UNREACHABLE, True),
        (socket.timeout("timed out"), E.TIMEOUT, True),  # noqa: UP041 (the alias is the point)
        (TimeoutError(), E.TIMEOUT, True),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), E.TIMEOUT, True),
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            E.CONNECTION_LOST,
            True,
        ),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), E.CONNECTION_LOST, True),
        (EOFError(), E.CONNECTION_LOST, True),
        (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), E.CONNECTION_LOST, True),
        (_cert_error("self-signed certificate"), E.TLS_FAILED, False),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), E.TLS_FAILED, False),
        (OSError(errno.EMFILE, "Too many open files"), E.INTERNAL, True),
        (ValueError("odd"), E.INTERNAL, True),
    ],
)
def test_error_table(exc: BaseException, code: ErrorCode, transient: bool) -> None:
    error = map_error(exc, WHERE)
    assert error.code is code
    assert error.transient is transient
    assert error.detail.endswith(f"({WHERE})")


@pytest.mark.parametrize(
    "message",
    [
        "self-signed certificate in certificate chain",
        "unable to get local issuer certificate",
        "Hostname mismatch, certificate is not valid for 'imap.example.test'.",
        "certificate has expired",
    ],
)
def test_certificate_problems_are_named(message: str) -> None:
    error = map_error(_cert_error(message), WHERE)
    assert error.code is E.TLS_FAILED
    assert error.detail.startswith(f"certificate verify failed: {message}")


def test_details_read_well() -> None:
    assert map_error(_cert_error("self-signed certificate in certificate chain"), WHERE).detail == (
        "certificate verify failed: self-signed certificate in certificate chain "
        "(the root CA is not trusted) (127.0.0.1:41234)"
    )
    gai = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert map_error(gai, "nonexistent.invalid:993").detail == (
        "cannot resolve nonexistent.invalid: name or service not known (nonexistent.invalid:993)"
    )
    wrong = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    assert "wrong version number" in map_error(wrong, WHERE).detail
    assert "_ssl.c" not in map_error(wrong, WHERE).detail


def test_sync_error_passes_through() -> None:
    original = SyncError(E.QUOTA, "full")
    assert map_error(original, WHERE) is original


@given(
    st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63)),
    st.one_of(st.none(), st.text(max_size=50)),
)
def test_map_error_is_total_for_any_errno(number: int | None, text: str | None) -> None:
    exc = OSError(number, text) if number is not None else OSError(text)
    error = map_error(exc, WHERE)
    assert isinstance(error, SyncError)
    assert error.detail.endswith(f"({WHERE})")


@given(st.sampled_from(sorted(errno.errorcode)))
def test_every_known_errno_maps_to_a_catalogued_code(number: int) -> None:
    error = map_error(OSError(number, "x"), WHERE)
    assert error.code in E


def test_mapped_errors_redacts_and_does_not_chain_with_secrets() -> None:
    with pytest.raises(SyncError) as caught, mapped_errors(WHERE, secrets=["pa55word"]):
        raise ConnectionResetError(errno.ECONNRESET, "reset while sending pa55word")
    assert "pa55word" not in caught.value.detail
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_mapped_errors_chains_without_secrets_and_survives_a_bad_translator() -> None:
    def broken(exc: Exception) -> SyncError | None:
        raise RuntimeError("translator bug")

    with pytest.raises(SyncError) as caught, mapped_errors(WHERE, translate=broken):
        raise TimeoutError
    assert caught.value.code is E.TIMEOUT
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_redact_longest_first() -> None:
    assert redact("secret and secret-token", ["secret", "secret-token"]) == "*** and ***"
    assert redact("nothing", ["", "x"]) == "nothing"


# -- each protocol's own exceptions ---------------------------------------------------------


def _with_context(exc: Exception, context: BaseException) -> Exception:
    exc.__context__ = context
    return exc


@pytest.mark.parametrize(
    ("exc", "default", "code"),
    [
        (
            LoginError("b'[AUTHENTICATIONFAILED] Authentication failed.'"),
            E.AUTH_FAILED,
            E.AUTH_FAILED,
        ),
        (
            LoginError("b'[UNAVAILABLE] Temporary System Error'"),
            E.AUTH_FAILED,
            E.SERVER_UNAVAILABLE,
        ),
        (LoginError("b'[LIMIT] Too many logins'"), E.AUTH_FAILED, E.THROTTLED),
        (
            imaplib.IMAP4.error("append failed: [OVERQUOTA] Quota exceeded"),
            E.PROTOCOL_ERROR,
            E.QUOTA,
        ),
        (
            imaplib.IMAP4.error("select failed: Mailbox doesn't exist"),
            E.FOLDER_MISSING,
            E.FOLDER_MISSING,
        ),
        (imaplib.IMAP4.error("fetch failed: odd"), E.PROTOCOL_ERROR, E.PROTOCOL_ERROR),
        (imaplib.IMAP4.abort("socket error: EOF"), E.PROTOCOL_ERROR, E.CONNECTION_LOST),
        (
            imaplib.IMAP4.abort("[UNAVAILABLE] Temporary System Error"),
            E.PROTOCOL_ERROR,
            E.SERVER_UNAVAILABLE,
        ),
        (
            _with_context(imaplib.IMAP4.abort("socket error: timed out"), TimeoutError()),
            E.PROTOCOL_ERROR,
            E.TIMEOUT,
        ),
        (
            CapabilityError("Server does not support STARTTLS capability"),
            E.TLS_REQUIRED,
            E.TLS_REQUIRED,
        ),
        (UnicodeEncodeError("ascii", "pässword", 1, 2, "x"), E.AUTH_FAILED, E.AUTH_FAILED),
    ],
)
def test_imap_exceptions(exc: Exception, default: ErrorCode, code: ErrorCode) -> None:
    error = imap.translate(WHERE, default=default)(exc)
    assert error is not None
    assert error.code is code
    assert "b'" not in error.detail
    assert "ässword" not in error.detail


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (poplib.error_proto(b"-ERR [AUTH] Authentication failed."), E.AUTH_FAILED),
        (poplib.error_proto(b"-ERR [IN-USE] Mailbox is locked"), E.SERVER_UNAVAILABLE),
        (poplib.error_proto(b"-ERR [SYS/TEMP] Try again"), E.SERVER_UNAVAILABLE),
        (poplib.error_proto(b"-ERR Authentication failed."), E.AUTH_FAILED),
        (poplib.error_proto("-ERR EOF"), E.CONNECTION_LOST),
        (_with_context(poplib.error_proto("-ERR"), ConnectionResetError()), E.CONNECTION_LOST),
    ],
)
def test_pop3_exceptions_at_pass(exc: Exception, code: ErrorCode) -> None:
    error = pop3.translate(WHERE, default=E.AUTH_FAILED)(exc)
    assert error is not None
    assert error.code is code


SMTP_DEFAULTS = {"AUTH": E.AUTH_MECHANISM_UNSUPPORTED, "STARTTLS": E.TLS_REQUIRED}
MECH = E.AUTH_MECHANISM_UNSUPPORTED


@pytest.mark.parametrize(
    ("exc", "command", "code"),
    [
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 Credentials invalid"), "AUTH", E.AUTH_FAILED),
        (smtplib.SMTPAuthenticationError(500, b"odd"), "AUTH", E.AUTH_FAILED),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 Try later"), "AUTH", E.SERVER_UNAVAILABLE),
        (smtplib.SMTPNotSupportedError("SMTP AUTH extension not supported"), "AUTH", MECH),
        (smtplib.SMTPException("No suitable authentication method found."), "AUTH", MECH),
        (smtplib.SMTPNotSupportedError("STARTTLS not supported"), "STARTTLS", E.TLS_REQUIRED),
        (smtplib.SMTPConnectError(421, b"4.3.2 Shutting down"), "CONNECT", E.SERVER_UNAVAILABLE),
        (smtplib.SMTPSenderRefused(452, b"4.3.1 No storage", "a@b"), "MAIL", E.SERVER_UNAVAILABLE),
        (smtplib.SMTPDataError(552, b"5.3.4 Message too big"), "DATA", E.MESSAGE_TOO_LARGE),
        (
            smtplib.SMTPRecipientsRefused({"x@ext.test": (550, b"5.1.1 unknown")}),
            "RCPT",
            E.RECIPIENT_REJECTED,
        ),
        (
            smtplib.SMTPServerDisconnected("Connection unexpectedly closed"),
            "EHLO",
            E.CONNECTION_LOST,
        ),
        (
            _with_context(smtplib.SMTPServerDisconnected("closed"), TimeoutError()),
            "EHLO",
            E.TIMEOUT,
        ),
    ],
)
def test_smtp_exceptions(exc: Exception, command: str, code: ErrorCode) -> None:
    default = SMTP_DEFAULTS.get(command, E.PROTOCOL_ERROR)
    error = smtp.translate(WHERE, command=command, default=default)(exc)
    assert error is not None
    assert error.code is code
    assert error.detail.endswith(f"({WHERE})")

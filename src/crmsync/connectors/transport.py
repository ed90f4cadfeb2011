"""Network and TLS failures → catalogue codes, in one place, for every protocol connector.

What it is for: the IMAP, POP3 and SMTP connectors and the probe run their socket and TLS
work inside ``mapped_errors(where)`` (or call ``map_error``), so an unknown host name, a
refused connection or a rejected certificate becomes the same ``SyncError`` whichever
protocol met it. ``where`` is ``host:port`` and ends every detail. Protocol replies
(``NO [UNAVAILABLE]``, ``421``, ``-ERR [IN-USE]``) are mapped in ``replies.py``; a
connector passes its own ``translate`` function for them.

What it must never do: raise from ``map_error`` (it runs in ``except`` blocks and in the
probe, which never raises), let a password or token reach a detail (``redact``), or retry:
whether to retry is the engines' decision, made from ``SyncError.transient``.

Mapping, first match wins (ssl errors are OSErrors, so they come first):

    SyncError                              itself
    ssl.SSLCertVerificationError           TLS_FAILED   "certificate verify failed: <why>"
    ssl.SSLZeroReturnError, SSLEOFError    CONNECTION_LOST
    ssl.SSLError                           TLS_FAILED
    socket.gaierror                        DNS_FAILED
    TimeoutError (= socket.timeout)        TIMEOUT
    OSError by errno (ERRNO_CODES)         HOST_UNREACHABLE / TIMEOUT / CONNECTION_LOST
    EOFError                               CONNECTION_LOST
    any other exception                    INTERNAL
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from crmsync.core.errors import ErrorCode, SyncError

if TYPE_CHECKING:
    from crmsync.connectors.endpoints import Endpoint

_log = logging.getLogger(__name__)

Translate = Callable[[Exception], SyncError | None]

ERRNO_CODES: dict[int, ErrorCode] = {
    errno.ECONNREFUSED: ErrorCode.HOST_UNREACHABLE,
    errno.EHOSTUNREACH: ErrorCode.HOST_UNREACHABLE,
    errno.ENETUNREACH: ErrorCode.HOST_UNREACHABLE,
    errno.EHOSTDOWN: ErrorCode.HOST_UNREACHABLE,
    errno.ENETDOWN: ErrorCode.HOST_UNREACHABLE,
    errno.EADDRNOTAVAIL: ErrorCode.HOST_UNREACHABLE,
    errno.ETIMEDOUT: ErrorCode.TIMEOUT,
    errno.ECONNRESET: ErrorCode.CONNECTION_LOST,
    errno.ECONNABORTED: ErrorCode.CONNECTION_LOST,
    errno.EPIPE: ErrorCode.CONNECTION_LOST,
    errno.ENOTCONN: ErrorCode.CONNECTION_LOST,
    errno.ESHUTDOWN: ErrorCode.CONNECTION_LOST,
    errno.ENETRESET: ErrorCode.CONNECTION_LOST,
}

# OpenSSL reasons that have a likelier explanation than their name.
TLS_HINTS: dict[str, str] = {
    "WRONG_VERSION_NUMBER": "the port may expect a plain or STARTTLS connection",
    "UNSUPPORTED_PROTOCOL": "the server offers only TLS versions this client refuses",
    "TLSV1_ALERT_PROTOCOL_VERSION": "the server refuses this client's TLS versions",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": "no cipher or TLS version in common with the server",
}

# Certificate verification failures (OpenSSL's verify messages) and what they usually mean.
VERIFY_HINTS: dict[str, str] = {
    "unable to get local issuer certificate": "the issuing CA is not trusted",
    "self-signed certificate": "the certificate is self-signed and not trusted",
    "self-signed certificate in certificate chain": "the root CA is not trusted",
    "self signed certificate": "the certificate is self-signed and not trusted",  # OpenSSL 1.1
    "self signed certificate in certificate chain": "the root CA is not trusted",
    "certificate has expired": "renew the server's certificate",
}

_SSL_NOISE = re.compile(r"^\[SSL(?:: [A-Z0-9_]+)?\]\s*|\s*\(_ssl\.c:\d+\)$")


def _ssl_text(exc: ssl.SSLError) -> str:
    text = _SSL_NOISE.sub("", str(exc.args[1]) if len(exc.args) > 1 else str(exc))
    return text.strip() or getattr(exc, "reason", None) or type(exc).__name__


def _os_text(exc: OSError) -> str:
    if exc.strerror:
        return exc.strerror[:1].lower() + exc.strerror[1:]
    if exc.errno is not None:
        return errno.errorcode.get(exc.errno, f"errno {exc.errno}")
    return str(exc) or type(exc).__name__


def _classify(exc: BaseException, where: str) -> tuple[ErrorCode, str]:
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = getattr(exc, "verify_message", None) or _ssl_text(exc)
        hint = VERIFY_HINTS.get(why)
        return ErrorCode.TLS_FAILED, f"certificate verify failed: {why}" + (
            f" ({hint})" if hint else ""
        )
    if isinstance(exc, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        return ErrorCode.CONNECTION_LOST, f"connection closed during TLS: {_ssl_text(exc)}"
    if isinstance(exc, ssl.SSLError):
        text = _ssl_text(exc)
        hint = TLS_HINTS.get(getattr(exc, "reason", None) or "")
        return ErrorCode.TLS_FAILED, f"TLS failed: {text}" + (f" ({hint})" if hint else "")
    if isinstance(exc, socket.gaierror):
        host = where.rpartition(":")[0].strip("[]")
        return ErrorCode.DNS_FAILED, f"cannot resolve {host}: {_os_text(exc)}"
    if isinstance(exc, TimeoutError):
        return ErrorCode.TIMEOUT, "no answer in time (timed out)"
    if isinstance(exc, ConnectionRefusedError):
        return ErrorCode.HOST_UNREACHABLE, "connection refused (nothing listens on that port)"
    if isinstance(exc, ConnectionError | BrokenPipeError):
        return ErrorCode.CONNECTION_LOST, f"connection lost: {_os_text(exc)}"
    if isinstance(exc, OSError):
        code = ERRNO_CODES.get(exc.errno or 0, ErrorCode.INTERNAL)
        return code, f"network error: {_os_text(exc)}"
    if isinstance(exc, EOFError):
        return ErrorCode.CONNECTION_LOST, "connection closed by the server (EOF)"
    return ErrorCode.INTERNAL, f"unexpected {type(exc).__name__}: {exc}"


def map_error(exc: BaseException, where: str) -> SyncError:
    """The ``SyncError`` for ``exc`` met while talking to ``where``; never raises.

    >>> map_error(ConnectionRefusedError(111, "Connection refused"), "127.0.0.1:1").code
    <ErrorCode.HOST_UNREACHABLE: 'HOST_UNREACHABLE'>
    """
    if isinstance(exc, SyncError):
        return exc
    try:
        code, text = _classify(exc, where)
    except Exception:  # a hostile __str__ must not break error handling
        code, text = ErrorCode.INTERNAL, f"unexpected {type(exc).__name__}"
    return SyncError(code, f"{text} ({where})")


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced by ``***``."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextmanager
def mapped_errors(
    where: str, *, translate: Translate | None = None, secrets: Iterable[str] = ()
) -> Iterator[None]:
    """Run the block; re-raise any exception as one ``SyncError`` (mapped once, here).

    ``translate`` maps protocol exceptions first (returning None to fall through to the
    network table). With ``secrets`` (a login), details are redacted and the original
    exception is not chained, so a traceback cannot carry a secret either.
    """
    hidden = tuple(secrets)
    try:
        yield
    except Exception as exc:
        error = exc if isinstance(exc, SyncError) else None
        if error is None and translate is not None:
            try:
                error = translate(exc)
            except Exception:  # a translator bug must not hide the original failure
                error = None
        if error is None:
            error = map_error(exc, where)
        if not hidden:
            if error is exc:
                raise
            raise error from exc
        raise SyncError(error.code, redact(error.detail, hidden)) from None


class LineProtocolSession:
    """``quit``/``close`` that never raise, and ``with`` use, for POP3 and SMTP sessions.

    Subclasses set ``_client`` (a poplib or smtplib client) and ``endpoint``.
    """

    endpoint: Endpoint

    def _line_client(self) -> Any:
        # Each subclass types its own ``_client``; here only quit() and close() matter.
        return getattr(self, "_client")  # noqa: B009

    def quit(self) -> None:
        """QUIT and close; never raises."""
        try:
            self._line_client().quit()
        except Exception:
            self.close()

    def close(self) -> None:
        """Close without QUIT; never raises."""
        try:
            self._line_client().close()
        except Exception:
            _log.debug("%s: connection already closed", self.endpoint.where)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.quit()

"""SMTP submission over stdlib smtplib: connect, EHLO, AUTH, QUIT (sending comes later).

What it is for: the one way crmsync opens an SMTP session (RFC 5321) to a submission
server. ``SmtpConnection.open`` connects with the endpoint's TLS mode (implicit TLS per
RFC 8314, STARTTLS per RFC 3207, or plain when allowed), says EHLO, and authenticates
(RFC 4954) with the password (smtplib picks PLAIN/LOGIN) or with XOAUTH2 when a token is
given. ``send`` will be added by the outgoing-mail work on top of ``.client``; its
refusals map through ``translate(where, command="RCPT")`` and ``replies.smtp_error_code``.

What it must never do: import crmsync.crm, let an smtplib/socket/ssl exception escape
(mapped here, once, to ``SyncError``), put a password or token into a detail, turn on
smtplib's debug output (it prints AUTH lines), or talk plain text unless
``Endpoint.allow_plaintext``.

Reply mapping (``replies.py``): 421/450/451/454 → SERVER_UNAVAILABLE, 452 → THROTTLED,
535 → AUTH_FAILED, 534/504-to-AUTH → AUTH_MECHANISM_UNSUPPORTED, 552 → QUOTA or
MESSAGE_TOO_LARGE (by enhanced code), other 5xx → PROTOCOL_ERROR.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from types import TracebackType
from typing import Self

from crmsync.connectors.endpoints import Credentials, Endpoint, Security, xoauth2_string
from crmsync.connectors.replies import smtp_error_code, text_of
from crmsync.connectors.transport import Translate, map_error, mapped_errors
from crmsync.sync.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

SMTP_OK = 250


def translate(where: str, *, command: str, default: ErrorCode) -> Translate:
    """Map smtplib exceptions met during ``command``; ``default`` for bare SMTPExceptions."""

    def mapped(exc: Exception) -> SyncError | None:
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            if isinstance(exc.__context__, OSError):
                return map_error(exc.__context__, where)
            return SyncError(ErrorCode.CONNECTION_LOST, f"{text_of(exc)} ({where})")
        if isinstance(exc, smtplib.SMTPRecipientsRefused) and exc.recipients:
            address, (reply, message) = next(iter(exc.recipients.items()))
            return _reply_error(where, "RCPT", reply, message, f" for {address}")
        if isinstance(exc, smtplib.SMTPResponseException):
            error = _reply_error(where, command, exc.smtp_code, exc.smtp_error)
            auth = isinstance(exc, smtplib.SMTPAuthenticationError)
            if auth and error.code is ErrorCode.PROTOCOL_ERROR:
                return SyncError(ErrorCode.AUTH_FAILED, error.detail)
            return error
        if isinstance(exc, smtplib.SMTPException):
            return SyncError(default, f"{text_of(exc)} ({where})")
        if isinstance(exc, UnicodeError):
            return SyncError(
                ErrorCode.AUTH_FAILED,
                f"the user name or password has characters SMTP AUTH cannot carry ({where})",
            )
        return None

    return mapped


def _reply_error(
    where: str, command: str, reply: int, message: object, suffix: str = ""
) -> SyncError:
    text = text_of(message)
    code = smtp_error_code(reply, text, command)
    return SyncError(code, f"{command} refused{suffix}: {reply} {text} ({where})")


class SmtpConnection:
    """One SMTP session. Use ``open``/``connect``; close with ``quit`` or ``with``."""

    def __init__(self, client: smtplib.SMTP, endpoint: Endpoint) -> None:
        self._client = client
        self.endpoint = endpoint

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def connect(cls, endpoint: Endpoint, *, local_hostname: str | None = None) -> SmtpConnection:
        """Connect, read the greeting and secure the session (EHLO not yet repeated)."""
        endpoint.require_allowed()
        where = endpoint.where
        with mapped_errors(
            where, translate=translate(where, command="CONNECT", default=ErrorCode.PROTOCOL_ERROR)
        ):
            client: smtplib.SMTP
            if endpoint.security is Security.IMPLICIT_TLS:
                client = smtplib.SMTP_SSL(
                    endpoint.host,
                    endpoint.port,
                    local_hostname=local_hostname,
                    timeout=endpoint.timeout,
                    context=endpoint.ssl_context(),
                )
            else:
                client = smtplib.SMTP(
                    endpoint.host, endpoint.port, local_hostname, timeout=endpoint.timeout
                )
        connection = cls(client, endpoint)
        if endpoint.security is Security.STARTTLS:
            try:
                connection._starttls()
            except SyncError:
                connection.close()
                raise
        logger.debug("SMTP %s connected (%s)", where, connection.tls_version or "plain")
        return connection

    def _starttls(self) -> None:
        where = self.endpoint.where
        with mapped_errors(
            where, translate=translate(where, command="STARTTLS", default=ErrorCode.TLS_REQUIRED)
        ):
            self._client.ehlo_or_helo_if_needed()
            self._client.starttls(context=self.endpoint.ssl_context())

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        credentials: Credentials | None,
        *,
        local_hostname: str | None = None,
    ) -> SmtpConnection:
        """Connect, secure, EHLO and (with credentials) AUTH; nothing stays open on failure."""
        connection = cls.connect(endpoint, local_hostname=local_hostname)
        try:
            connection.ehlo()
            if credentials is not None:
                connection.login(credentials)
        except SyncError:
            connection.close()
            raise
        return connection

    def ehlo(self) -> dict[str, str]:
        """EHLO (HELO for servers without ESMTP); returns ``features()``."""
        where = self.endpoint.where
        with mapped_errors(
            where, translate=translate(where, command="EHLO", default=ErrorCode.PROTOCOL_ERROR)
        ):
            reply, message = self._client.ehlo()
            if reply != SMTP_OK:
                reply, message = self._client.helo()
            if reply != SMTP_OK:
                raise _reply_error(where, "EHLO", reply, message)
        return self.features()

    def login(self, credentials: Credentials) -> None:
        """AUTH with the password (PLAIN/LOGIN as offered) or XOAUTH2 with the token."""
        where = self.endpoint.where
        credentials.require_secret(where)
        offered = self.auth_mechanisms()
        wanted = "XOAUTH2" if credentials.oauth_access_token else "PLAIN or LOGIN"
        if not offered or (credentials.oauth_access_token and "XOAUTH2" not in offered):
            hint = "" if self.tls_version else "; many servers offer AUTH only over TLS"
            raise SyncError(
                ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
                f"the server does not offer AUTH {wanted}; it offers "
                f"{', '.join(sorted(offered)) or 'no AUTH'}{hint} ({where})",
            )
        mapping = translate(where, command="AUTH", default=ErrorCode.AUTH_MECHANISM_UNSUPPORTED)
        with mapped_errors(where, translate=mapping, secrets=credentials.secrets):
            token = credentials.oauth_access_token
            if token:
                initial = xoauth2_string(credentials.username, token)

                def respond(challenge: bytes | None = None, /) -> str:
                    # First call: the initial response. After a 334 error challenge
                    # (base64 JSON), an empty line makes the server send its 5xx.
                    return initial if challenge is None else ""

                self._client.auth("XOAUTH2", respond)
            else:
                self._client.login(credentials.username, credentials.password or "")
        logger.debug("SMTP %s authenticated as %s", where, credentials.username)

    # -- queries ------------------------------------------------------------------------
    @property
    def client(self) -> smtplib.SMTP:
        """The raw ``smtplib.SMTP`` for the sending code (wrap calls in ``mapped_errors``)."""
        return self._client

    @property
    def tls_version(self) -> str | None:
        sock = self._client.sock
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def features(self) -> dict[str, str]:
        """EHLO keywords (lower-case) to their parameters: ``{"size": "33554432", ...}``."""
        return {k: v.strip() for k, v in self._client.esmtp_features.items()}

    def auth_mechanisms(self) -> frozenset[str]:
        return frozenset(self.features().get("auth", "").upper().split())

    def capabilities(self) -> frozenset[str]:
        """EHLO keywords upper-case plus ``AUTH=<mech>``: ``{"STARTTLS", "AUTH=PLAIN", ...}``."""
        names = {k.upper() for k in self.features()}
        return frozenset(names | {f"AUTH={m}" for m in self.auth_mechanisms()})

    # -- closing ------------------------------------------------------------------------
    def quit(self) -> None:
        """QUIT and close; never raises."""
        try:
            self._client.quit()
        except Exception:
            self.close()

    def close(self) -> None:
        """Close without QUIT; never raises."""
        try:
            self._client.close()
        except Exception:
            logger.debug("SMTP %s: connection already closed", self.endpoint.where)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.quit()

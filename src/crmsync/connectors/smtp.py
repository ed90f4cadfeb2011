"""SMTP submission over stdlib smtplib: connect, EHLO, AUTH, send, QUIT.

What it is for: the one way crmsync opens an SMTP session (RFC 5321) to a submission
server and sends through it. ``SmtpConnection.open`` connects with the endpoint's TLS mode
(implicit TLS per RFC 8314, STARTTLS per RFC 3207, or plain when allowed), says EHLO, and
authenticates (RFC 4954) with the password (smtplib picks PLAIN/LOGIN) or with XOAUTH2
when a token is given. ``send`` (``base.MessageSender``) runs one MAIL FROM / RCPT TO /
DATA transaction on the open session; the outgoing engine reuses the session for a batch.

How ``send`` decides (RFC 5321 §4.2.1: 4xx = try again later, 5xx = do not repeat as is):
- every recipient refused → ``SyncError`` from the most hopeful refusal (a 4xx if there is
  one, so the engine retries), all refusals in the detail;
- some refused, others accepted → the message is sent; ``SendResult.refused`` lists them;
- MAIL or DATA refused → ``SyncError`` with the server's reply in the detail;
- after a failure, RSET, so the next ``send`` on this session starts clean; after a 421
  the server is closing: the session is closed too.
A TIMEOUT or CONNECTION_LOST while waiting for the reply to the message data may mean it
was delivered: retrying can duplicate it, which SMTP prefers to losing it (RFC 5321 §6.1).
Before any command: a message over the server's SIZE (RFC 1870) is MESSAGE_TOO_LARGE;
bare LF line endings become CRLF (RFC 5321 §2.3.8); ``SIZE=``, ``BODY=8BITMIME``
(RFC 6152) and ``SMTPUTF8`` (RFC 6531) are sent when offered and needed; a non-ASCII
recipient without SMTPUTF8 (``553 5.6.7``) or one with a line break (``501 5.1.3``) is
refused here, in ``SendResult.refused``, without being sent.

What it must never do: import crmsync.crm, let an smtplib/socket/ssl exception escape
(mapped here, once, to ``SyncError``), put a password or token into a detail, turn on
smtplib's debug output (it prints AUTH lines), or talk plain text unless
``Endpoint.allow_plaintext``.

Reply mapping (``replies.py``): 421/450/451/454 → SERVER_UNAVAILABLE, 452 → THROTTLED,
535 → AUTH_FAILED, 534/504-to-AUTH → AUTH_MECHANISM_UNSUPPORTED, 552 → QUOTA or
MESSAGE_TOO_LARGE (by enhanced code), other 5xx at RCPT → RECIPIENT_REJECTED, at MAIL or
DATA → MESSAGE_REJECTED (both permanent), elsewhere → PROTOCOL_ERROR.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
from typing import TYPE_CHECKING

from crmsync.connectors.base import SendResult
from crmsync.connectors.endpoints import Credentials, Endpoint, Security, xoauth2_string
from crmsync.connectors.replies import smtp_error_code, text_of
from crmsync.connectors.transport import (
    LineProtocolSession,
    Translate,
    map_error,
    mapped_errors,
)
from crmsync.core.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

SMTP_OK = 250
ACCEPTED = (250, 251)  # 251: "user not local; will forward" (RFC 5321 §4.2.2)
CLOSING = 421
# Recipients refused here, never sent (RFC 6531 §3.5 and RFC 3463 codes, for the record).
NEEDS_SMTPUTF8 = (553, "5.6.7 non-ASCII address and the server does not offer SMTPUTF8")
LINE_BREAK = (501, "5.1.3 the address contains a line break")
_BARE_LF = re.compile(rb"(?<!\r)\n")


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


def _all_refused(where: str, refused: dict[str, tuple[int, str]]) -> SyncError:
    """The error for a transaction nobody was accepted for: a 4xx refusal if any (the
    engine retries), else the first; every refusal is in the detail."""
    transient = [item for item in refused.items() if 400 <= item[1][0] < 500]
    _, (reply, text) = (transient or list(refused.items()))[0]
    code = smtp_error_code(reply, text, "RCPT")
    every = "; ".join(f"{a}: {r} {t}" for a, (r, t) in refused.items())
    return SyncError(code, f"every recipient was refused: {every} ({where})")


class SmtpConnection(LineProtocolSession):
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
        """Connect, secure, EHLO and AUTH — unless there are no credentials or the endpoint
        says not to authenticate (``Endpoint.authenticate``); nothing stays open on failure."""
        connection = cls.connect(endpoint, local_hostname=local_hostname)
        try:
            connection.ehlo()
            if credentials is not None and endpoint.authenticate:
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
            if not offered:
                # A relay that trusts its clients' addresses offers no AUTH; crmsync goes
                # without only when told to, so say how.
                hint += (
                    "; if this relay accepts mail without authentication, choose "
                    '"no authentication" for the outgoing side of the email server profile'
                )
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

    # -- sending (base.MessageSender) -------------------------------------------------
    @property
    def max_message_size(self) -> int | None:
        """The EHLO SIZE limit in octets (``SIZE 33554432``); None when absent or 0."""
        value = self.features().get("size", "")
        return int(value) if value.isdigit() and int(value) > 0 else None

    def send(self, envelope_from: str, recipients: list[str], raw: bytes) -> SendResult:
        """MAIL FROM ``envelope_from``, RCPT TO each recipient, DATA ``raw``.

        ``SendResult(accepted=["a@example.test"], refused={"b@example.test": (550,
        "5.1.1 <b@example.test>: Recipient address rejected: User unknown")})``.
        Raises as the module docstring says; ``envelope_from=""`` is the null sender.
        """
        where = self.endpoint.where
        if not recipients:
            raise SyncError(ErrorCode.CONFIGURATION, f"a message needs a recipient ({where})")
        if any(c in envelope_from for c in "\r\n"):
            raise SyncError(ErrorCode.CONFIGURATION, f"the sender has a line break ({where})")
        data = _BARE_LF.sub(b"\r\n", raw)
        limit = self.max_message_size
        if limit is not None and len(data) > limit:
            raise SyncError(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"the message has {len(data)} octets; the server takes at most {limit} ({where})",
            )
        options = self._mail_options(envelope_from, recipients, data)
        try:
            return self._transaction(envelope_from, recipients, data, options)
        except SyncError:
            self._reset()
            raise

    def _mail_options(self, sender: str, recipients: list[str], data: bytes) -> list[str]:
        features = self.features()
        options = [f"SIZE={len(data)}"] if "size" in features else []
        if "8bitmime" in features and not data.isascii():
            options.append("BODY=8BITMIME")
        if not all(address.isascii() for address in [sender, *recipients]):
            if "smtputf8" in features:
                options.append("SMTPUTF8")
            elif not sender.isascii():
                raise SyncError(
                    ErrorCode.CONFIGURATION,
                    "the sender address is not ASCII and the server does not offer "
                    f"SMTPUTF8 ({self.endpoint.where})",
                )
        return options

    def _command(self, command: str) -> contextlib.AbstractContextManager[None]:
        where = self.endpoint.where
        mapping = translate(where, command=command, default=ErrorCode.PROTOCOL_ERROR)
        return mapped_errors(where, translate=mapping)

    def _check(self, command: str, reply: int, message: object) -> None:
        if reply == CLOSING:
            self.close()
        if reply not in ACCEPTED:
            raise _reply_error(self.endpoint.where, command, reply, message)

    def _transaction(
        self, sender: str, recipients: list[str], data: bytes, options: list[str]
    ) -> SendResult:
        accepted: list[str] = []
        refused: dict[str, tuple[int, str]] = {}
        with self._command("MAIL"):
            self._client.ehlo_or_helo_if_needed()
            reply, message = self._client.mail(sender, options)
        self._check("MAIL", reply, message)
        utf8 = "SMTPUTF8" in options
        for recipient in recipients:
            if any(c in recipient for c in "\r\n"):
                refused[recipient] = LINE_BREAK
                continue
            if not (utf8 or recipient.isascii()):
                refused[recipient] = NEEDS_SMTPUTF8
                continue
            with self._command("RCPT"):
                reply, message = self._client.rcpt(recipient)
            if reply == CLOSING:
                self._check("RCPT", reply, message)
            if reply in ACCEPTED:
                accepted.append(recipient)
            else:
                refused[recipient] = (reply, text_of(message))
        if not accepted:
            raise _all_refused(self.endpoint.where, refused)
        with self._command("DATA"):
            reply, message = self._client.data(data)
        self._check("DATA", reply, message)
        if refused:
            logger.debug(
                "SMTP %s: %d of %d recipients refused",
                self.endpoint.where,
                len(refused),
                len(recipients),
            )
        return SendResult(accepted=accepted, refused=refused)

    def _reset(self) -> None:
        """RSET after a failed transaction; a dead session is left for the next call to find."""
        with contextlib.suppress(Exception):
            if self._client.sock is not None:
                self._client.rset()


if TYPE_CHECKING:
    from crmsync.connectors.base import MessageSender

    def _implements(connection: SmtpConnection) -> MessageSender:
        return connection

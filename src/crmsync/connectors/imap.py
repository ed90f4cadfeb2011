"""IMAP4rev1 access over imapclient: connect, log in, read capabilities, select a folder.

What it is for: the one way crmsync opens an IMAP session. ``ImapConnection.open`` connects
with the endpoint's TLS mode (implicit TLS, STARTTLS with the endpoint's context, or plain
when allowed), logs in with a password (LOGIN) or an OAuth2 token (AUTHENTICATE XOAUTH2),
and hands later engines the raw ``IMAPClient`` through ``.client``.

What it must never do: import crmsync.crm, let an imaplib/socket/ssl exception escape
(every failure becomes ``SyncError`` here, once, via ``transport.mapped_errors`` and the
IMAP table in ``replies.py``), put a password or token into a detail or a log line
(imapclient's own logger redacts LOGIN/AUTHENTICATE; details are redacted again here),
or talk plain text to a server unless ``Endpoint.allow_plaintext``.

Session states (RFC 3501 §3), as this class moves through them:

    connect() ──► NOT AUTHENTICATED ──login()──► AUTHENTICATED ──select_folder()──► SELECTED
        │ implicit TLS: TLS before the greeting            │ ENABLE CONDSTORE when offered
        │ STARTTLS: greeting, STARTTLS, handshake          │ (RFC 7162), so SELECT reports
        ▼                                                  ▼ HIGHESTMODSEQ
      SyncError (DNS, TCP, TLS, greeting)           logout() ──► closed (never raises)
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from imapclient import IMAPClient
from imapclient.exceptions import CapabilityError, LoginError

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.replies import imap_error_code, text_of
from crmsync.connectors.transport import Translate, map_error, mapped_errors
from crmsync.sync.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

SYNC_CAPABILITIES = ("IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS")


@dataclass(frozen=True)
class FolderStatus:
    """What SELECT/EXAMINE reports; ``highestmodseq`` is None without CONDSTORE/NOMODSEQ.

    FolderStatus(uidvalidity=1795599498, uidnext=4, exists=3, highestmodseq=7)
    """

    uidvalidity: int
    uidnext: int
    exists: int
    highestmodseq: int | None


def translate(where: str, *, default: ErrorCode) -> Translate:
    """Map imapclient/imaplib exceptions; ``default`` for a plain NO/BAD in this step."""

    def mapped(exc: Exception) -> SyncError | None:
        if isinstance(exc, imaplib.IMAP4.abort):
            if isinstance(exc.__context__, OSError):
                return map_error(exc.__context__, where)
            text = text_of(exc)
            code = imap_error_code(text, ErrorCode.CONNECTION_LOST)
            return SyncError(code, f"connection closed by the server: {text} ({where})")
        if isinstance(exc, CapabilityError):
            return SyncError(default, f"{text_of(exc)} ({where})")
        if isinstance(exc, LoginError):
            text = text_of(exc)
            code = imap_error_code(text, ErrorCode.AUTH_FAILED)
            return SyncError(code, f"login refused: {text} ({where})")
        if isinstance(exc, imaplib.IMAP4.error):
            text = text_of(exc)
            return SyncError(imap_error_code(text, default), f"server said: {text} ({where})")
        if isinstance(exc, UnicodeError):
            return SyncError(
                ErrorCode.AUTH_FAILED,
                f"the user name or password has characters IMAP LOGIN cannot carry ({where})",
            )
        return None

    return mapped


class ImapConnection:
    """One IMAP session. Use ``open``/``connect``; close with ``logout`` or ``with``."""

    def __init__(self, client: Any, endpoint: Endpoint) -> None:
        self._client = client
        self.endpoint = endpoint

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def connect(cls, endpoint: Endpoint) -> ImapConnection:
        """Connect and secure the session (not yet logged in)."""
        endpoint.require_allowed()
        where = endpoint.where
        context: ssl.SSLContext | None = endpoint.ssl_context() if endpoint.uses_tls else None
        with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
            client = IMAPClient(
                endpoint.host,
                endpoint.port,
                ssl=endpoint.security is Security.IMPLICIT_TLS,
                ssl_context=context,
                timeout=endpoint.timeout,
            )
        connection = cls(client, endpoint)
        if endpoint.security is Security.STARTTLS:
            starttls = translate(where, default=ErrorCode.TLS_REQUIRED)
            try:
                with mapped_errors(where, translate=starttls):
                    client.starttls(context)
            except SyncError:
                connection.logout()
                raise
        logger.debug("IMAP %s connected (%s)", where, connection.tls_version or "plain")
        return connection

    @classmethod
    def open(cls, endpoint: Endpoint, credentials: Credentials) -> ImapConnection:
        """Connect, secure and log in; on any failure nothing stays open."""
        connection = cls.connect(endpoint)
        try:
            connection.login(credentials)
        except SyncError:
            connection.logout()
            raise
        return connection

    def login(self, credentials: Credentials) -> None:
        """LOGIN with the password, or AUTHENTICATE XOAUTH2 with the access token."""
        where = self.endpoint.where
        credentials.require_secret(where)
        mapping = translate(where, default=ErrorCode.AUTH_FAILED)
        with mapped_errors(where, translate=mapping, secrets=credentials.secrets):
            if credentials.oauth_access_token:
                self._require_mechanism("XOAUTH2")
                self._client.oauth2_login(credentials.username, credentials.oauth_access_token)
            else:
                self._client.login(credentials.username, credentials.password)
        logger.debug("IMAP %s logged in as %s", where, credentials.username)
        with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
            if {"ENABLE", "CONDSTORE"} <= self.capabilities():
                self._client.enable("CONDSTORE")

    def _require_mechanism(self, mechanism: str) -> None:
        offered = sorted(c[5:] for c in self.capabilities() if c.startswith("AUTH="))
        if mechanism not in offered:
            raise SyncError(
                ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
                f"the server does not offer AUTH={mechanism}; it offers "
                f"{', '.join(offered) or 'no SASL mechanism'} ({self.endpoint.where})",
            )

    # -- queries ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        """The raw ``imapclient.IMAPClient`` for engines (wrap calls in ``mapped_errors``)."""
        return self._client

    @property
    def tls_version(self) -> str | None:
        """``"TLSv1.3"`` etc., or None on a plain connection."""
        sock = self._client.socket()
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def capabilities(self) -> frozenset[str]:
        """Upper-case capability names, e.g. ``frozenset({"IMAP4REV1", "IDLE", "MOVE"})``."""
        where = self.endpoint.where
        with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
            raw = self._client.capabilities()
        return frozenset(text_of(c).upper() for c in raw)

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus:
        """SELECT (or EXAMINE when ``readonly``) ``name``; a NO means FOLDER_MISSING."""
        where = self.endpoint.where
        with mapped_errors(where, translate=translate(where, default=ErrorCode.FOLDER_MISSING)):
            response = self._client.select_folder(name, readonly=readonly)
        values = {text_of(k).upper(): v for k, v in response.items()}
        try:
            return FolderStatus(
                uidvalidity=int(values["UIDVALIDITY"]),
                uidnext=int(values["UIDNEXT"]),
                exists=int(values["EXISTS"]),
                highestmodseq=_int_or_none(values.get("HIGHESTMODSEQ")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SyncError(
                ErrorCode.PROTOCOL_ERROR,
                f"SELECT {name} answered without a usable {exc} ({where})",
            ) from exc

    # -- closing ------------------------------------------------------------------------
    def logout(self) -> None:
        """LOGOUT and close; never raises (the connection may already be gone)."""
        try:
            self._client.logout()
        except Exception:
            try:
                self._client.shutdown()
            except Exception:
                logger.debug("IMAP %s: connection already closed", self.endpoint.where)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.logout()


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int):
        return value
    if isinstance(value, bytes | str) and value.strip().isdigit():
        return int(value)
    return None

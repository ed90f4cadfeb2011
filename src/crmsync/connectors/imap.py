"""IMAP4rev1 access over imapclient: one ``ImapConnection`` per session, for every engine.

What it is for: the one way crmsync opens and uses an IMAP session. ``open`` connects with
the endpoint's TLS mode (implicit TLS, STARTTLS with the endpoint's context, or plain when
allowed), logs in with a password (LOGIN) or an OAuth2 token (AUTHENTICATE XOAUTH2), and
ENABLEs CONDSTORE/QRESYNC. The class is assembled from one part per concern, each in its
own module:

    imap_session.py   error mapping, capabilities (``supports_*``), raw UID commands
    imap_fetch.py     uids_after, all_uids, fetch_meta, fetch_raw, search_message_id
    imap_changes.py   changed_since, vanished_since, select_qresync (RFC 7162)
    imap_write.py     append, ensure_folder, find_sent_folder, move, delete
    imap_idle.py      idle_wait (RFC 2177)
    imap_parse.py     the pure parsing behind them (tested with byte literals)

It implements ``base.MailFolderSource`` and ``base.MailFolderWriter``.

What it must never do: import crmsync.crm, let an imaplib/socket/ssl exception escape
(every failure becomes ``SyncError`` here, once, via ``transport.mapped_errors`` and the
IMAP table in ``replies.py``), put a password or token into a detail or a log line
(imapclient's own logger redacts LOGIN/AUTHENTICATE; details are redacted again here),
or talk plain text to a server unless ``Endpoint.allow_plaintext``.

Session states (RFC 3501 §3), as this class moves through them:

    connect() ──► NOT AUTHENTICATED ──login()──► AUTHENTICATED ──select_folder()──► SELECTED
        │ implicit TLS: TLS before the greeting      │ ENABLE CONDSTORE QRESYNC   │ or
        │ STARTTLS: greeting, STARTTLS, handshake    │ when offered (RFC 7162),   │ select_qresync()
        ▼                                            ▼ so SELECT reports MODSEQs  ▼
      SyncError (DNS, TCP, TLS, greeting)     logout() ──► closed (never raises)

``ignore_capabilities`` hides capabilities a server advertises but implements badly (a
quirk, kept as data by the caller): they are neither ENABLEd nor used. The server's row
of the quirks table (quirks.py, found by its greeting) adds its own, and says which
fallbacks to use when SELECT leaves out optional codes such as ``[UIDNEXT n]``.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

from imapclient import IMAPClient

from crmsync.connectors.base import FolderStatus
from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.imap_changes import ImapChanges
from crmsync.connectors.imap_fetch import ImapReading
from crmsync.connectors.imap_idle import ImapIdle
from crmsync.connectors.imap_session import translate
from crmsync.connectors.imap_write import ImapWriting
from crmsync.connectors.quirks import ImapQuirks
from crmsync.connectors.replies import text_of
from crmsync.connectors.transport import mapped_errors
from crmsync.core.errors import ErrorCode, SyncError

if TYPE_CHECKING:
    from crmsync.connectors.base import MailFolderSource, MailFolderWriter

__all__ = ["SYNC_CAPABILITIES", "FolderStatus", "ImapConnection", "translate"]

logger = logging.getLogger(__name__)

SYNC_CAPABILITIES = ("IDLE", "CONDSTORE", "QRESYNC", "MOVE", "UIDPLUS")
ENABLE_EXTENSIONS = ("CONDSTORE", "QRESYNC")


class ImapConnection(ImapReading, ImapChanges, ImapWriting, ImapIdle):
    """One IMAP session. Use ``open``/``connect``; close with ``logout`` or ``with``."""

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        endpoint: Endpoint,
        *,
        ignore_capabilities: Iterable[str] = (),
        quirks: ImapQuirks | None = None,
    ) -> ImapConnection:
        """Connect and secure the session (not yet logged in); ``quirks`` overrides the
        row of ``quirks.py`` found by the server's greeting."""
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
        _quiet_imaplib(client)
        connection = cls(client, endpoint, ignore_capabilities=ignore_capabilities, quirks=quirks)
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
    def open(
        cls,
        endpoint: Endpoint,
        credentials: Credentials,
        *,
        ignore_capabilities: Iterable[str] = (),
        quirks: ImapQuirks | None = None,
    ) -> ImapConnection:
        """Connect, secure and log in; on any failure nothing stays open."""
        connection = cls.connect(endpoint, ignore_capabilities=ignore_capabilities, quirks=quirks)
        try:
            connection.login(credentials)
        except SyncError:
            connection.logout()
            raise
        return connection

    def login(self, credentials: Credentials) -> None:
        """LOGIN with the password, or AUTHENTICATE XOAUTH2 with the access token; then
        ENABLE CONDSTORE and QRESYNC where offered (``supports_qresync`` needs the latter)."""
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
        capabilities = self.capabilities()
        wanted = [name for name in ENABLE_EXTENSIONS if name in capabilities]
        if "ENABLE" in capabilities and wanted:
            with self._guard():
                enabled = self._client.enable(*wanted)
            self._enabled = frozenset(text_of(name).upper() for name in enabled)

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
    def tls_version(self) -> str | None:
        """``"TLSv1.3"`` etc., or None on a plain connection."""
        sock = self._client.socket()
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def select_folder(self, name: str, *, readonly: bool = False) -> FolderStatus:
        """SELECT (or EXAMINE when ``readonly``) ``name``; a NO means FOLDER_MISSING.

        Optional codes the server left out are asked for again (``folder_status_of``).

        ``FolderStatus(uidvalidity=1795599498, uidnext=4, exists=3, highestmodseq=7)``
        """
        with self._guard(ErrorCode.FOLDER_MISSING):
            response = self._client.select_folder(name, readonly=readonly)
        return self.folder_status_of(name, {text_of(k).upper(): v for k, v in response.items()})

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


if TYPE_CHECKING:

    def _implements(connection: ImapConnection) -> tuple[MailFolderSource, MailFolderWriter]:
        return connection, connection


def _quiet_imaplib(client: IMAPClient) -> None:
    """Stop imaplib formatting a debug line for every response it reads.

    IMAPClient sets imaplib's ``debug`` to 5 and routes its messages to the
    ``imapclient.imaplib`` logger, so imaplib builds ``repr()`` strings of every literal
    and of every whole FETCH answer even when that logger drops them: 1.2 s of CPU per
    130 MB fetched, against 0.1 s without (bench/ingest.py). The protocol trace — which
    holds message contents — is still there for whoever turns that logger's DEBUG on.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0

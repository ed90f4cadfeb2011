"""POP3 access over stdlib poplib: log in, list by UIDL, retrieve, delete, QUIT.

What it is for: the one way crmsync opens and uses a POP3 session (RFC 1939).
``Pop3Connection.open`` connects with the endpoint's TLS mode (POP3S, STLS per RFC 2595,
or plain when allowed), logs in with USER/PASS, or with ``AUTH XOAUTH2`` (RFC 5034
framing) when a token is given. It implements ``base.MessageDrop``: ``uidl``,
``list_sizes``, ``retrieve`` and ``delete``.

Facts relied on:
- Message numbers (1..n) hold for one session; the UIDL string (RFC 1939 §7, optional
  command, listed by CAPA per RFC 2449) identifies a message across sessions.
- DELE only marks a message: the server removes it when the session ends with QUIT (the
  UPDATE state, RFC 1939 §6). A connection closed any other way keeps every message;
  ``__exit__`` after an exception closes without QUIT on purpose.
- A multi-line answer ends with a line holding a single ``.``; a line of the message that
  starts with ``.`` is sent with one more ``.`` (dot-stuffing, RFC 1939 §3).
  ``retrieve`` reads RETR itself (``read_multiline``): ``poplib.retr`` drops the line
  endings and refuses lines longer than 2048 octets, which real messages have.

What it must never do: import crmsync.crm, let a poplib/socket/ssl exception escape (all
are mapped here, once, to ``SyncError``), put a password or token into a detail, or talk
plain text unless ``Endpoint.allow_plaintext``. poplib's debug output stays off.

Failures at PASS: ``-ERR`` is AUTH_FAILED unless an RFC 3206 response code says more:
``[IN-USE]`` and ``[SYS/TEMP]`` are SERVER_UNAVAILABLE, ``[LOGIN-DELAY]`` THROTTLED
(table in ``replies.py``).
"""

from __future__ import annotations

import base64
import logging
import poplib
import ssl
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, cast

from crmsync.connectors.endpoints import Credentials, Endpoint, Security, xoauth2_string
from crmsync.connectors.replies import pop3_error_code, text_of
from crmsync.connectors.transport import (
    LineProtocolSession,
    Translate,
    map_error,
    mapped_errors,
)
from crmsync.core.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024  # octets per readline() while reading a multi-line answer


def read_multiline(readline: Callable[[int], bytes], limit: int | None = None) -> bytes | None:
    """The body of a multi-line answer, after its ``+OK`` line: line endings kept as sent,
    dot-stuffing undone, the terminating ``.`` line dropped.

    ``b"a\\r\\n..b\\r\\n.\\r\\n"`` → ``b"a\\r\\n.b\\r\\n"``. Past ``limit`` octets the
    rest is read and dropped, and None is returned (the session stays in step). Raises
    EOFError when the connection ends first.
    """
    kept = bytearray()
    at_line_start = True
    over = False
    while True:
        chunk = readline(READ_CHUNK)
        if not chunk:
            raise EOFError("connection closed inside a multi-line answer")
        if at_line_start:
            if chunk in (b".\r\n", b".\n"):
                break
            if chunk.startswith(b"."):
                chunk = chunk[1:]
        at_line_start = chunk.endswith(b"\n")
        if not over:
            kept += chunk
            over = limit is not None and len(kept) > limit
    return None if over else bytes(kept)


def parse_listing(lines: Sequence[bytes]) -> list[tuple[int, str]]:
    """UIDL or LIST lines → ``[(number, value), ...]``: ``[b"1 0a1b"]`` → ``[(1, "0a1b")]``.

    Raises ValueError for a line that is not "number SP value".
    """
    found: list[tuple[int, str]] = []
    for line in lines:
        number, _, value = line.decode("ascii").strip().partition(" ")
        if not number.isdigit() or not value.strip():
            raise ValueError(f"not a listing line: {line!r}")
        found.append((int(number), value.strip()))
    return found


def translate(where: str, *, default: ErrorCode) -> Translate:
    """Map poplib exceptions; ``default`` for an ``-ERR`` in this step."""

    def mapped(exc: Exception) -> SyncError | None:
        if isinstance(exc, poplib.error_proto):
            if isinstance(exc.__context__, OSError):
                return map_error(exc.__context__, where)
            text = text_of(exc)
            if text in ("-ERR EOF", "EOF"):
                return SyncError(ErrorCode.CONNECTION_LOST, f"connection closed ({where})")
            return SyncError(pop3_error_code(text, default), f"server said: {text} ({where})")
        if isinstance(exc, UnicodeError):
            return SyncError(
                ErrorCode.AUTH_FAILED,
                f"the user name or password has characters POP3 cannot carry ({where})",
            )
        return None

    return mapped


class Pop3Connection(LineProtocolSession):
    """One POP3 session. Use ``open``/``connect``; close with ``quit`` or ``with``."""

    def __init__(self, client: poplib.POP3, endpoint: Endpoint) -> None:
        self._client = client
        self.endpoint = endpoint

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def connect(cls, endpoint: Endpoint) -> Pop3Connection:
        """Connect and secure the session (AUTHORIZATION state, not logged in)."""
        endpoint.require_allowed()
        where = endpoint.where
        with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
            client: poplib.POP3
            if endpoint.security is Security.IMPLICIT_TLS:
                client = poplib.POP3_SSL(
                    endpoint.host,
                    endpoint.port,
                    timeout=endpoint.timeout,
                    context=endpoint.ssl_context(),
                )
            else:
                client = poplib.POP3(endpoint.host, endpoint.port, timeout=endpoint.timeout)
        connection = cls(client, endpoint)
        if endpoint.security is Security.STARTTLS:
            try:
                connection._starttls()
            except SyncError:
                connection.close()
                raise
        logger.debug("POP3 %s connected (%s)", where, connection.tls_version or "plain")
        return connection

    def _starttls(self) -> None:
        where = self.endpoint.where
        if "STLS" not in self.capabilities():
            raise SyncError(ErrorCode.TLS_REQUIRED, f"the server does not offer STLS ({where})")
        with mapped_errors(where, translate=translate(where, default=ErrorCode.TLS_REQUIRED)):
            self._client.stls(self.endpoint.ssl_context())

    @classmethod
    def open(cls, endpoint: Endpoint, credentials: Credentials) -> Pop3Connection:
        """Connect, secure and log in; on any failure nothing stays open."""
        connection = cls.connect(endpoint)
        try:
            connection.login(credentials)
        except SyncError:
            connection.close()
            raise
        return connection

    def login(self, credentials: Credentials) -> None:
        """USER/PASS with the password, or ``AUTH XOAUTH2`` with the access token."""
        where = self.endpoint.where
        credentials.require_secret(where)
        token = credentials.oauth_access_token
        if token:
            self._require_mechanism("XOAUTH2")
        mapping = translate(where, default=ErrorCode.AUTH_FAILED)
        with mapped_errors(where, translate=mapping, secrets=credentials.secrets):
            if token:
                self._xoauth2(xoauth2_string(credentials.username, token))
            else:
                self._client.user(credentials.username)
                self._client.pass_(credentials.password or "")
        logger.debug("POP3 %s logged in as %s", where, credentials.username)

    def _xoauth2(self, initial: str) -> None:
        # poplib has no AUTH; _shortcmd sends one line and raises error_proto on -ERR.
        shortcmd: Callable[[str], bytes] = self._client._shortcmd  # type: ignore[attr-defined]
        shortcmd("AUTH XOAUTH2")
        answer = shortcmd(base64.b64encode(initial.encode()).decode("ascii"))
        if answer.startswith(b"+"):  # an error challenge: answer empty to get the -ERR
            shortcmd("")

    def _require_mechanism(self, mechanism: str) -> None:
        offered = self.sasl_mechanisms()
        if offered is not None and mechanism not in offered:
            raise SyncError(
                ErrorCode.AUTH_MECHANISM_UNSUPPORTED,
                f"the server does not offer SASL {mechanism}; it offers "
                f"{', '.join(sorted(offered)) or 'none'} ({self.endpoint.where})",
            )

    # -- queries ------------------------------------------------------------------------
    @property
    def client(self) -> poplib.POP3:
        """The raw ``poplib.POP3`` for engines (wrap calls in ``mapped_errors``)."""
        return self._client

    @property
    def tls_version(self) -> str | None:
        sock = self._client.sock
        return sock.version() if isinstance(sock, ssl.SSLSocket) else None

    def _capa(self) -> dict[str, list[str]] | None:
        where = self.endpoint.where
        try:
            with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
                return self._client.capa()
        except SyncError as error:
            if error.code is ErrorCode.PROTOCOL_ERROR:
                return None  # -ERR: CAPA itself is not supported (RFC 2449 predates it)
            raise

    def capabilities(self) -> frozenset[str]:
        """CAPA names upper-case, plus ``AUTH=<mech>`` per SASL mechanism; empty without CAPA.

        frozenset({"TOP", "UIDL", "USER", "STLS", "SASL", "AUTH=PLAIN", "RESP-CODES", ...})
        """
        capa = self._capa() or {}
        names = {name.upper() for name in capa}
        names.update(f"AUTH={m.upper()}" for m in capa.get("SASL", []))
        return frozenset(names)

    def sasl_mechanisms(self) -> frozenset[str] | None:
        """The SASL mechanisms CAPA lists, or None when the server has no CAPA."""
        capa = self._capa()
        return None if capa is None else frozenset(m.upper() for m in capa.get("SASL", []))

    def stat(self) -> tuple[int, int]:
        """(message count, mailbox size in octets) from STAT."""
        where = self.endpoint.where
        with mapped_errors(where, translate=translate(where, default=ErrorCode.PROTOCOL_ERROR)):
            return self._client.stat()

    # -- the maildrop (base.MessageDrop) ------------------------------------------------
    def _translate(self, default: ErrorCode = ErrorCode.PROTOCOL_ERROR) -> Translate:
        return translate(self.endpoint.where, default=default)

    @property
    def supports_uidl(self) -> bool:
        """UIDL listed by CAPA; also True for a server without CAPA (UIDL is then tried)."""
        capa = self._capa()
        return capa is None or "UIDL" in {name.upper() for name in capa}

    def uidl(self) -> list[tuple[int, str]]:
        """``[(1, "000000016b06b12f"), (2, ...)]``; NOT_SUPPORTED without UIDL."""
        where = self.endpoint.where
        capa = self._capa()
        if capa is not None and "UIDL" not in {name.upper() for name in capa}:
            raise SyncError(ErrorCode.NOT_SUPPORTED, f"the server does not offer UIDL ({where})")
        # Without CAPA, a -ERR to UIDL is the server saying it has no UIDL.
        default = ErrorCode.NOT_SUPPORTED if capa is None else ErrorCode.PROTOCOL_ERROR
        with mapped_errors(where, translate=self._translate(default)):
            _, lines, _ = self._client.uidl()
            return parse_listing(lines)

    def list_sizes(self) -> dict[int, int]:
        """``{message number: size in octets}`` from LIST: ``{1: 314, 2: 5120}``."""
        with mapped_errors(self.endpoint.where, translate=self._translate()):
            _, lines, _ = self._client.list()
            return {number: int(size.split()[0]) for number, size in parse_listing(lines)}

    def retrieve(self, number: int, *, max_size: int | None) -> bytes | None:
        """RETR ``number``: its bytes exactly as the server holds them, or None when its
        LIST size (or, should the server have understated it, its real size) is over
        ``max_size``."""
        where = self.endpoint.where
        with mapped_errors(where, translate=self._translate()):
            if max_size is not None:
                # With an argument, poplib's list() returns the one +OK line (bytes).
                line = cast(bytes, self._client.list(number))
                answer = line.decode("ascii", "replace").split()
                if len(answer) < 3 or not answer[2].isdigit():
                    raise SyncError(ErrorCode.PROTOCOL_ERROR, f"odd LIST answer ({where})")
                if int(answer[2]) > max_size:
                    return None
            self._client._putcmd(f"RETR {number:d}")  # type: ignore[attr-defined]
            self._client._getresp()  # type: ignore[attr-defined]
            return read_multiline(self._client.file.readline, max_size)

    def header(self, number: int, *, max_size: int) -> bytes | None:
        """The header section of message ``number`` (``TOP n 0``, RFC 1939 §7), or the
        whole message from RETR where the server has no TOP; None when over ``max_size``.

        For matching messages by Message-ID without downloading them.
        """
        capa = self._capa()
        if capa is not None and "TOP" not in {name.upper() for name in capa}:
            return self.retrieve(number, max_size=None)
        with mapped_errors(self.endpoint.where, translate=self._translate()):
            self._client._putcmd(f"TOP {number:d} 0")  # type: ignore[attr-defined]
            try:
                self._client._getresp()  # type: ignore[attr-defined]
            except poplib.error_proto:
                if capa is not None:
                    raise
                # No CAPA, and a -ERR: this server has no TOP.
                return self.retrieve(number, max_size=None)
            return read_multiline(self._client.file.readline, max_size)

    def delete(self, number: int) -> None:
        """DELE ``number``: marked only; the server removes it at QUIT (RFC 1939 §6)."""
        with mapped_errors(self.endpoint.where, translate=self._translate()):
            self._client.dele(number)

    # -- closing: quit() commits deletions (RFC 1939 §6), close() does not ----------------
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After a failure, leave without QUIT so the server rolls back any DELE.
        if exc_type is None:
            self.quit()
        else:
            self.close()


if TYPE_CHECKING:
    from crmsync.connectors.base import MessageDrop

    def _implements(connection: Pop3Connection) -> MessageDrop:
        return connection

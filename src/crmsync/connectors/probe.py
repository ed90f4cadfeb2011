"""Test & Enable: a real, step-by-step check of an IMAP, POP3 or SMTP server. Never raises.

What it is for: an administrator presses "Test & Enable" and sees which step failed and
why, in words: ``probe_imap``/``probe_pop3``/``probe_smtp`` return a ``ProbeResult`` whose
steps run in order and stop at the first failure (later steps are not listed); an
``on_step`` callback hears of each step as soon as it has finished:

    IMAP   dns → tcp → tls → auth → inbox   (EXAMINE INBOX: count, sync capabilities)
    POP3   dns → tcp → tls → auth → inbox   (STAT)
    SMTP   dns → tcp → tls → ehlo → auth    (no message is sent; auth "skipped" without
                                             credentials, or when the profile chose
                                             "no authentication" for outgoing)

``dns`` is getaddrinfo, ``tcp`` a bare connect (then closed), ``tls`` opens the protocol
connection and really does the handshake — after the greeting and STARTTLS/STLS for
STARTTLS endpoints — so certificate problems are named there. On a plain endpoint that
allows it, ``tls`` reads "skipped: plain connection allowed" and the protocol connection
is opened by the next step. A plain endpoint that does not allow it fails at ``tls`` with
TLS_REQUIRED before any connection is made.

What it must never do: raise (every failure is a failed step with a catalogue code), send
a message, change a mailbox (INBOX is opened read-only), or let a password or token into
a step's detail (details are redacted with the credentials' secrets).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.connectors.imap import SYNC_CAPABILITIES, ImapConnection
from crmsync.connectors.imap_session import FROM_SELECT
from crmsync.connectors.pop3 import Pop3Connection
from crmsync.connectors.smtp import SmtpConnection
from crmsync.connectors.transport import map_error, redact
from crmsync.core.errors import ErrorCode, SyncError

logger = logging.getLogger(__name__)

PLAIN_SKIPPED = "skipped: plain connection allowed"


@dataclass(frozen=True)
class ProbeStep:
    name: str
    ok: bool
    seconds: float
    detail: str
    code: ErrorCode | None = None


@dataclass(frozen=True)
class ProbeResult:
    steps: list[ProbeStep]
    capabilities: frozenset[str] = field(default_factory=frozenset)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    @property
    def error(self) -> SyncError | None:
        """The first failure as a ``SyncError`` (code and detail of the failed step)."""
        for step in self.steps:
            if not step.ok:
                return SyncError(step.code or ErrorCode.INTERNAL, step.detail)
        return None


C = TypeVar("C", ImapConnection, Pop3Connection, SmtpConnection)


class _Lazy(Generic[C]):
    """The protocol connection, opened by whichever step needs it first."""

    def __init__(self, connect: Callable[[], C], close: Callable[[C], None]) -> None:
        self._connect: Callable[[], C] = connect
        self._close: Callable[[C], None] = close
        self.value: C | None = None

    def get(self) -> C:
        if self.value is None:
            self.value = self._connect()
        return self.value

    def close(self) -> None:
        if self.value is not None:
            self._close(self.value)
            self.value = None


# Told of each step as soon as it has finished, so a caller can show a check as it runs.
OnStep = Callable[[ProbeStep], None]


class _Probe:
    def __init__(
        self,
        protocol: str,
        endpoint: Endpoint,
        secrets: tuple[str, ...],
        on_step: OnStep | None = None,
    ) -> None:
        self.protocol = protocol
        self.endpoint = endpoint
        self.secrets = secrets
        self.on_step = on_step
        self.steps: list[ProbeStep] = []
        self.capabilities: frozenset[str] = frozenset()

    def step(self, name: str, action: Callable[[], str]) -> bool:
        started = time.perf_counter()
        try:
            detail, code, ok = action(), None, True
        except Exception as exc:
            error = map_error(exc, self.endpoint.where)
            detail, code, ok = error.detail, error.code, False
        seconds = time.perf_counter() - started
        detail = redact(detail, self.secrets)
        finished = ProbeStep(name, ok, seconds, detail, code)
        self.steps.append(finished)
        if self.on_step is not None:
            self.on_step(finished)
        logger.debug(
            "probe %s %s: %s %s in %.3fs: %s",
            self.protocol,
            self.endpoint.where,
            name,
            "ok" if ok else code,
            seconds,
            detail,
        )
        return ok

    def reach(self) -> bool:
        """Plain-text policy (no connection), then ``dns`` and ``tcp``."""
        if self.endpoint.security is Security.PLAIN and not self.endpoint.allow_plaintext:
            return self.step("tls", self._plain_policy)
        return self.step("dns", self._dns) and self.step("tcp", self._tcp)

    def secure(self, connection: _Lazy[C]) -> bool:
        """``tls``: open the protocol connection (handshake included), or say it is skipped."""
        if self.endpoint.security is Security.PLAIN:
            return self.step("tls", lambda: PLAIN_SKIPPED)
        return self.step("tls", lambda: self._tls_detail(connection.get().tls_version))

    def result(self) -> ProbeResult:
        return ProbeResult(list(self.steps), self.capabilities)

    def _plain_policy(self) -> str:
        self.endpoint.require_allowed()  # raises TLS_REQUIRED: no socket is ever opened
        return PLAIN_SKIPPED

    def _dns(self) -> str:
        infos = socket.getaddrinfo(self.endpoint.host, self.endpoint.port, type=socket.SOCK_STREAM)
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        return f"{self.endpoint.host} resolves to {', '.join(addresses)}"

    def _tcp(self) -> str:
        address = (self.endpoint.host, self.endpoint.port)
        with socket.create_connection(address, timeout=self.endpoint.timeout) as sock:
            peer = sock.getpeername()
        return f"connected to {peer[0]} port {peer[1]}"

    def _tls_detail(self, version: str | None) -> str:
        how = "implicit TLS" if self.endpoint.security is Security.IMPLICIT_TLS else "STARTTLS"
        if not self.endpoint.verify_certificates:
            trust = "certificate NOT verified (verification is turned off for this profile)"
        else:
            trust = f"certificate verified for {self.endpoint.host}"
        return f"{how}, {version or 'TLS'}, {trust}"


def _login_detail(credentials: Credentials, mechanism: str) -> str:
    how = "XOAUTH2" if credentials.uses_oauth else mechanism
    return f"logged in as {credentials.username} with {how}"


def probe_imap(
    endpoint: Endpoint, credentials: Credentials, on_step: OnStep | None = None
) -> ProbeResult:
    """Check an IMAP server: dns, tcp, tls, auth, inbox. Never raises."""
    probe = _Probe("imap", endpoint, credentials.secrets, on_step)
    connection = _Lazy(lambda: ImapConnection.connect(endpoint), ImapConnection.logout)

    def auth() -> str:
        connection.get().login(credentials)
        return _login_detail(credentials, "LOGIN")

    def inbox() -> str:
        imap = connection.get()
        status = imap.select_folder("INBOX", readonly=True)
        probe.capabilities = imap.capabilities()
        found = [c for c in SYNC_CAPABILITIES if c in probe.capabilities]
        lacking = [c for c in SYNC_CAPABILITIES if c not in probe.capabilities]
        # A server that leaves UIDNEXT out of SELECT works, one command slower per poll:
        # say so, so that nobody wonders why.
        asked = (
            f"; no UIDNEXT in the SELECT answer, so it was asked by {imap.uidnext_source}"
            if imap.uidnext_source != FROM_SELECT
            else ""
        )
        return (
            f"INBOX holds {status.exists} messages (UIDVALIDITY {status.uidvalidity}); "
            f"capabilities: {' '.join(found) or 'none of ' + ' '.join(SYNC_CAPABILITIES)}"
            + (f"; lacking: {' '.join(lacking)}" if lacking and found else "")
            + asked
        )

    try:
        _ = (
            probe.reach()
            and probe.secure(connection)
            and probe.step("auth", auth)
            and probe.step("inbox", inbox)
        )
    finally:
        connection.close()
    return probe.result()


def probe_pop3(
    endpoint: Endpoint, credentials: Credentials, on_step: OnStep | None = None
) -> ProbeResult:
    """Check a POP3 server: dns, tcp, tls, auth, inbox (STAT). Never raises."""
    probe = _Probe("pop3", endpoint, credentials.secrets, on_step)
    connection = _Lazy(lambda: Pop3Connection.connect(endpoint), Pop3Connection.quit)

    def auth() -> str:
        connection.get().login(credentials)
        return _login_detail(credentials, "USER/PASS")

    def inbox() -> str:
        pop3 = connection.get()
        count, size = pop3.stat()
        probe.capabilities = pop3.capabilities()
        names = " ".join(sorted(probe.capabilities)) or "none (no CAPA)"
        return f"maildrop holds {count} messages ({size} octets); capabilities: {names}"

    try:
        _ = (
            probe.reach()
            and probe.secure(connection)
            and probe.step("auth", auth)
            and probe.step("inbox", inbox)
        )
    finally:
        connection.close()
    return probe.result()


def probe_smtp(
    endpoint: Endpoint, credentials: Credentials | None, on_step: OnStep | None = None
) -> ProbeResult:
    """Check an SMTP server: dns, tcp, tls, ehlo, auth; sends no message. Never raises."""
    probe = _Probe("smtp", endpoint, credentials.secrets if credentials else (), on_step)
    connection = _Lazy(lambda: SmtpConnection.connect(endpoint), SmtpConnection.quit)

    def ehlo() -> str:
        smtp = connection.get()
        features = smtp.ehlo()
        probe.capabilities = smtp.capabilities()
        offered = ", ".join(f"{k.upper()} {v}".strip() for k, v in sorted(features.items()))
        return f"EHLO accepted; the server offers {offered or 'no extensions'}"

    def auth() -> str:
        if not endpoint.authenticate:
            return "skipped: no authentication, as configured for this profile"
        if credentials is None:
            return "skipped: no credentials (the server is used without authentication)"
        smtp = connection.get()
        smtp.login(credentials)
        offered = smtp.auth_mechanisms()
        # smtplib's preference order (SMTP.login): the first one the server offers is used.
        used = next((m for m in ("CRAM-MD5", "PLAIN", "LOGIN") if m in offered), "AUTH")
        return _login_detail(credentials, used)

    try:
        _ = (
            probe.reach()
            and probe.secure(connection)
            and probe.step("ehlo", ehlo)
            and probe.step("auth", auth)
        )
    finally:
        connection.close()
    return probe.result()

"""Where a mail server is and how to reach it safely: ``Endpoint`` and ``Credentials``.

What it is for: every protocol connector (IMAP, POP3, SMTP) and the probe take an
``Endpoint`` (host, port, TLS mode, trust settings, timeout) and ``Credentials`` (a user
name with a password or an OAuth2 access token). ``Endpoint.ssl_context()`` is the one
place a TLS context is built; ``xoauth2_string`` is the one place the XOAUTH2 SASL
initial response is spelled.

What it must never do: show a password or token in ``repr``/``str``, open a plain
(unencrypted) connection unless ``allow_plaintext`` says so (``require_allowed`` raises
``TLS_REQUIRED`` before any socket exists), or turn off certificate verification unless
``verify_certificates`` is False.

Security modes (RFC 8314 recommends implicit TLS for submission and access):

    IMPLICIT_TLS  TLS from the first byte (IMAPS 993, POP3S 995, SMTPS/submissions 465)
    STARTTLS      plain greeting, then STARTTLS/STLS upgrades (IMAP 143, POP3 110,
                  submission 587; RFC 3501 §6.2.1, RFC 2595, RFC 3207)
    PLAIN         never encrypted; only with allow_plaintext (test rigs, a local relay)
"""

from __future__ import annotations

import enum
import ssl
from dataclasses import dataclass

from crmsync.core.errors import ErrorCode, SyncError

MAX_PORT = 65535


class Security(enum.StrEnum):
    IMPLICIT_TLS = "implicit_tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


@dataclass(frozen=True)
class Endpoint:
    """A server address with its TLS mode; ``ca_pem`` is PEM text of extra trusted CAs;
    ``authenticate`` False means the connector logs in to nobody (SMTP without AUTH)."""

    host: str
    port: int
    security: Security
    verify_certificates: bool = True
    ca_pem: str | None = None
    allow_plaintext: bool = False
    timeout: float = 30.0
    # False: log in to nobody — an SMTP relay that accepts mail from trusted addresses
    # without AUTH. Set only from an administrator's explicit choice on the profile.
    authenticate: bool = True

    def __post_init__(self) -> None:
        if not self.host or any(c.isspace() for c in self.host):
            raise SyncError(ErrorCode.CONFIGURATION, f"invalid host name {self.host!r}")
        if not 0 < self.port <= MAX_PORT:
            raise SyncError(ErrorCode.CONFIGURATION, f"invalid port {self.port} for {self.host}")
        if not self.timeout > 0:
            raise SyncError(ErrorCode.CONFIGURATION, f"invalid timeout {self.timeout}")

    @property
    def where(self) -> str:
        """``host:port`` (``[v6]:port`` for IPv6 literals), as it ends every error detail."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def uses_tls(self) -> bool:
        return self.security is not Security.PLAIN

    def require_allowed(self) -> None:
        """Raise ``TLS_REQUIRED`` for a plain endpoint without ``allow_plaintext``."""
        if self.security is Security.PLAIN and not self.allow_plaintext:
            raise SyncError(
                ErrorCode.TLS_REQUIRED,
                f"plain (unencrypted) connections are not allowed for this profile ({self.where})",
            )

    def ssl_context(self) -> ssl.SSLContext:
        """A client context: the default trust store plus ``ca_pem``, hostname checked.

        Verification is off only when ``verify_certificates`` is False.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_pem:
            try:
                context.load_verify_locations(cadata=self.ca_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise SyncError(
                    ErrorCode.CONFIGURATION,
                    f"the profile's CA certificate is not valid PEM: {exc} ({self.where})",
                ) from exc
        if not self.verify_certificates:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, repr=False)
class Credentials:
    """A login: ``password`` or ``oauth_access_token`` (the token wins when both are set)."""

    username: str
    password: str | None = None
    oauth_access_token: str | None = None

    def __repr__(self) -> str:
        password = "<set>" if self.password else None
        token = "<set>" if self.oauth_access_token else None
        return (
            f"Credentials(username={self.username!r}, password={password}, "
            f"oauth_access_token={token})"
        )

    __str__ = __repr__

    @property
    def uses_oauth(self) -> bool:
        return bool(self.oauth_access_token)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The values that must never appear in a detail or a log line."""
        return tuple(s for s in (self.password, self.oauth_access_token) if s)

    def require_secret(self, where: str) -> None:
        """Raise ``CREDENTIALS_MISSING`` when neither a password nor a token is set."""
        if not self.username or not self.secrets:
            raise SyncError(
                ErrorCode.CREDENTIALS_MISSING,
                f"no user name and password or access token for this mailbox ({where})",
            )


def xoauth2_string(username: str, access_token: str) -> str:
    """The XOAUTH2 SASL initial response, before base64 (Google's and Microsoft's format).

    ``"user=" username ^A "auth=Bearer " token ^A ^A`` where ^A is ``\\x01``.
    """
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01"

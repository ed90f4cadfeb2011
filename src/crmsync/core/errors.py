"""The one catalogue of sync error codes, shared by every connector and engine.

Each code is classified *transient* (retry later with backoff: the server may be back)
or *permanent* (retrying cannot help until a person acts), and carries remediation text
for that person. Connectors map protocol failures to a code once, at their edge, and
raise ``SyncError``; engines decide from ``error.transient`` alone; api/ and the CLI show
``remediation``.

Retry policy: a transient error is retried with exponential backoff and full jitter,
``base * 2**attempt`` capped at ``cap``, up to ``max_attempts``; after that it is treated
as permanent. A permanent error disables only the failing channel of that mailbox.

Must never put a password, token or message body into ``detail``: details are logged,
stored and shown.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass


class Severity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class ErrorCode(enum.StrEnum):
    DNS_FAILED = "DNS_FAILED"
    HOST_UNREACHABLE = "HOST_UNREACHABLE"
    TIMEOUT = "TIMEOUT"
    CONNECTION_LOST = "CONNECTION_LOST"
    TLS_FAILED = "TLS_FAILED"
    TLS_REQUIRED = "TLS_REQUIRED"
    AUTH_FAILED = "AUTH_FAILED"
    AUTH_MECHANISM_UNSUPPORTED = "AUTH_MECHANISM_UNSUPPORTED"
    OAUTH_REFRESH_FAILED = "OAUTH_REFRESH_FAILED"
    CREDENTIALS_MISSING = "CREDENTIALS_MISSING"
    APPROVAL_REQUIRED = "APPROVAL_REQUIRED"
    FOLDER_MISSING = "FOLDER_MISSING"
    THROTTLED = "THROTTLED"
    SERVER_UNAVAILABLE = "SERVER_UNAVAILABLE"
    QUOTA = "QUOTA"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    MALFORMED_MESSAGE = "MALFORMED_MESSAGE"
    RECIPIENT_REJECTED = "RECIPIENT_REJECTED"
    MESSAGE_REJECTED = "MESSAGE_REJECTED"
    DELIVERY_UNCERTAIN = "DELIVERY_UNCERTAIN"
    PROTOCOL_ERROR = "PROTOCOL_ERROR"
    UIDVALIDITY_RESYNC_LIMIT = "UIDVALIDITY_RESYNC_LIMIT"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    CONFIGURATION = "CONFIGURATION"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True)
class CatalogueEntry:
    transient: bool
    severity: Severity
    title: str
    remediation: str


CATALOGUE: dict[ErrorCode, CatalogueEntry] = {
    ErrorCode.DNS_FAILED: CatalogueEntry(
        True,
        Severity.ERROR,
        "The server's host name could not be resolved",
        "Check the host name in the email server profile, and that this server can "
        "resolve it (DNS).",
    ),
    ErrorCode.HOST_UNREACHABLE: CatalogueEntry(
        True,
        Severity.ERROR,
        "The server could not be reached",
        "Check the host and port in the email server profile, that the mail server is "
        "running, and that no firewall blocks the connection.",
    ),
    ErrorCode.TIMEOUT: CatalogueEntry(
        True,
        Severity.WARNING,
        "The server did not answer in time",
        "The mail server is slow or overloaded; crmsync retries. If it persists, raise "
        "the profile's connection timeout or check the server.",
    ),
    ErrorCode.CONNECTION_LOST: CatalogueEntry(
        True,
        Severity.WARNING,
        "The connection was dropped",
        "crmsync retries. If it persists, check the mail server's logs and limits on "
        "concurrent connections.",
    ),
    ErrorCode.TLS_FAILED: CatalogueEntry(
        False,
        Severity.ERROR,
        "The secure connection could not be established",
        "The server's certificate was not accepted (see the detail). Install a "
        "certificate from a trusted authority on the server, or set the profile's CA "
        "bundle to the authority that signed it.",
    ),
    ErrorCode.TLS_REQUIRED: CatalogueEntry(
        False,
        Severity.ERROR,
        "The server does not offer a secure connection",
        "Use implicit TLS or STARTTLS on a port that offers it. Plain connections are "
        "allowed only when an administrator enables them for the profile.",
    ),
    ErrorCode.AUTH_FAILED: CatalogueEntry(
        False,
        Severity.ERROR,
        "The server refused the credentials",
        "Check the user name and password (or re-authorise OAuth) for this mailbox or "
        "its profile, then run Test & Enable again.",
    ),
    ErrorCode.AUTH_MECHANISM_UNSUPPORTED: CatalogueEntry(
        False,
        Severity.ERROR,
        "The server does not support the chosen authentication",
        "Choose an authentication method the server offers (see the detail for what it "
        "advertises).",
    ),
    ErrorCode.OAUTH_REFRESH_FAILED: CatalogueEntry(
        False,
        Severity.ERROR,
        "The OAuth refresh token was refused",
        "Sign in again to grant crmsync access to this mailbox; the stored refresh token "
        "was revoked or has expired.",
    ),
    ErrorCode.CREDENTIALS_MISSING: CatalogueEntry(
        False,
        Severity.ERROR,
        "No credentials are set",
        "Enter the mailbox's credentials, or set credentials with rights over every "
        "mailbox on its email server profile.",
    ),
    ErrorCode.APPROVAL_REQUIRED: CatalogueEntry(
        False,
        Severity.WARNING,
        "The mailbox must be approved first",
        "The email server profile's own credentials open any mailbox on the server, so "
        "crmsync uses them only for approved mailboxes. An administrator checks the "
        "mailbox's email address and approves it, then runs Test & Enable.",
    ),
    ErrorCode.FOLDER_MISSING: CatalogueEntry(
        False,
        Severity.WARNING,
        "A folder does not exist on the server",
        "Create the folder on the server or change the folder configured in crmsync.",
    ),
    ErrorCode.THROTTLED: CatalogueEntry(
        True,
        Severity.WARNING,
        "The server asked crmsync to slow down",
        "crmsync backs off and retries. Lower the profile's maximum concurrent "
        "connections if this happens often.",
    ),
    ErrorCode.SERVER_UNAVAILABLE: CatalogueEntry(
        True,
        Severity.WARNING,
        "The server is temporarily unavailable",
        "crmsync retries. Check the mail server if it persists.",
    ),
    ErrorCode.QUOTA: CatalogueEntry(
        False,
        Severity.ERROR,
        "The mailbox is over its quota",
        "Free space in the mailbox or raise its quota on the mail server.",
    ),
    ErrorCode.MESSAGE_TOO_LARGE: CatalogueEntry(
        False,
        Severity.WARNING,
        "A message is larger than allowed",
        "The message was kept and flagged; raise the size limit to process it.",
    ),
    ErrorCode.MALFORMED_MESSAGE: CatalogueEntry(
        False,
        Severity.WARNING,
        "A message could not be read",
        "The raw message was kept and flagged; nothing else is affected.",
    ),
    ErrorCode.RECIPIENT_REJECTED: CatalogueEntry(
        False,
        Severity.WARNING,
        "The server refused a recipient",
        "Check the recipient's address (see the server's answer in the detail).",
    ),
    ErrorCode.MESSAGE_REJECTED: CatalogueEntry(
        False,
        Severity.WARNING,
        "The server refused the message",
        "The server answered with a permanent (5xx) refusal to the sender or the message "
        "(see its answer in the detail): check the sender address, the content and the "
        "server's sending policy, then send the email again.",
    ),
    ErrorCode.DELIVERY_UNCERTAIN: CatalogueEntry(
        False,
        Severity.WARNING,
        "crmsync cannot tell whether an email was sent",
        "crmsync stopped while it was handing this email to the mail server, and found no "
        "copy in the Sent folder. So that no email is ever sent twice it was not sent "
        "again: check with the recipient or in the mail server's log, and send it again if "
        "it did not arrive.",
    ),
    ErrorCode.PROTOCOL_ERROR: CatalogueEntry(
        True,
        Severity.ERROR,
        "The server answered in an unexpected way",
        "crmsync retries. If it persists, report the detail with the server's name and version.",
    ),
    ErrorCode.UIDVALIDITY_RESYNC_LIMIT: CatalogueEntry(
        False,
        Severity.ERROR,
        "The server keeps renumbering a folder",
        "The folder's UIDVALIDITY changed again and again: every change makes crmsync list "
        "the whole folder anew, so it stopped syncing this mailbox. Check the mail "
        "server (an index rebuilt on every restart, a folder deleted and created again, "
        "a cluster whose nodes disagree), then run Test & Enable to resume.",
    ),
    ErrorCode.NOT_SUPPORTED: CatalogueEntry(
        False,
        Severity.ERROR,
        "This is not supported for this server type",
        "Choose a method the server type supports (see the detail).",
    ),
    ErrorCode.CONFIGURATION: CatalogueEntry(
        False,
        Severity.ERROR,
        "The configuration is incomplete or inconsistent",
        "Correct the email server profile or mailbox as the detail says.",
    ),
    ErrorCode.INTERNAL: CatalogueEntry(
        True,
        Severity.ERROR,
        "crmsync hit an unexpected error",
        "crmsync retries. If it persists, report it with the server log around the time "
        "of the error.",
    ),
}


class SyncError(Exception):
    """A failure with a catalogue code; ``detail`` is for people and never holds secrets."""

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        super().__init__(f"{code.value}: {detail}" if detail else code.value)
        self.code = code
        self.detail = detail

    @property
    def entry(self) -> CatalogueEntry:
        return CATALOGUE[self.code]

    @property
    def transient(self) -> bool:
        return self.entry.transient

    @property
    def remediation(self) -> str:
        return self.entry.remediation


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): full jitter."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2**attempt))
        return (rng or random).uniform(0, ceiling)

    def gives_up(self, error: SyncError, attempts_so_far: int) -> bool:
        """Whether this failure is to be treated as permanent now."""
        return not error.transient or attempts_so_far >= self.max_attempts

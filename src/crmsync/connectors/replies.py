"""Server replies → catalogue codes: the protocol quirks table, as data.

What it is for: IMAP tagged ``NO``/``BAD``/``BYE`` texts, POP3 ``-ERR`` lines and SMTP
replies are turned into an ``ErrorCode`` here, by table lookup, so connectors contain no
scattered ``if "quota" in text``. A new provider quirk is one new row. Pure functions:
tested with byte literals, no I/O.

What it must never do: do I/O, raise on odd input, or return text that could hold a
secret (servers do not echo passwords; connectors redact anyway).

Protocol facts relied on:
- IMAP response codes in brackets, ``NO [UNAVAILABLE] ...`` (RFC 3501 §7.1, RFC 5530).
- POP3 extended response codes, ``-ERR [IN-USE] ...`` (RFC 2449 §8, RFC 3206).
- SMTP reply codes (RFC 5321 §4.2.3) refined by enhanced status codes ``5.7.8``
  (RFC 3463, RFC 5248), which win when present: ``534 5.7.14`` is Gmail asking for a web
  login, not a weak mechanism.
"""

from __future__ import annotations

import ast
import contextlib
import re

from crmsync.core.errors import ErrorCode

E = ErrorCode

IMAP_RESPONSE_CODES: dict[str, ErrorCode] = {
    "UNAVAILABLE": E.SERVER_UNAVAILABLE,
    "INUSE": E.SERVER_UNAVAILABLE,
    "LIMIT": E.THROTTLED,
    "THROTTLED": E.THROTTLED,  # Yahoo, AOL
    "OVERQUOTA": E.QUOTA,
    "AUTHENTICATIONFAILED": E.AUTH_FAILED,
    "AUTHORIZATIONFAILED": E.AUTH_FAILED,
    "EXPIRED": E.AUTH_FAILED,
    "CONTACTADMIN": E.AUTH_FAILED,
    "PRIVACYREQUIRED": E.TLS_REQUIRED,
    "NONEXISTENT": E.FOLDER_MISSING,
    "TRYCREATE": E.FOLDER_MISSING,
    "SERVERBUG": E.PROTOCOL_ERROR,
}

# Lower-case phrases for servers that put the reason in prose, not in a response code.
IMAP_TEXT_HINTS: tuple[tuple[str, ErrorCode], ...] = (
    ("too many simultaneous connections", E.THROTTLED),  # Gmail [ALERT]
    ("exceeded command or bandwidth limits", E.THROTTLED),  # Gmail [ALERT]
    ("authenticated but not connected", E.AUTH_FAILED),  # Exchange Online: IMAP disabled
    ("application-specific password required", E.AUTH_FAILED),  # Gmail
)

POP3_RESPONSE_CODES: dict[str, ErrorCode] = {
    "IN-USE": E.SERVER_UNAVAILABLE,
    "SYS/TEMP": E.SERVER_UNAVAILABLE,
    "LOGIN-DELAY": E.THROTTLED,
    "AUTH": E.AUTH_FAILED,
}

SMTP_ENHANCED_CODES: dict[str, ErrorCode] = {
    "4.3.1": E.SERVER_UNAVAILABLE,  # insufficient system storage
    "4.4.5": E.THROTTLED,  # system congestion
    "4.7.28": E.THROTTLED,  # Gmail: rate limited
    "5.1.1": E.RECIPIENT_REJECTED,
    "5.1.10": E.RECIPIENT_REJECTED,  # Exchange Online: recipient not found
    "5.2.2": E.QUOTA,
    "5.2.3": E.MESSAGE_TOO_LARGE,
    "5.3.4": E.MESSAGE_TOO_LARGE,
    "5.7.8": E.AUTH_FAILED,
    "5.7.9": E.AUTH_MECHANISM_UNSUPPORTED,
    "5.7.11": E.TLS_REQUIRED,
    "5.7.14": E.AUTH_FAILED,  # Gmail: web login / app password required
    "5.7.139": E.AUTH_FAILED,  # Exchange Online: SMTP AUTH disabled for the tenant
}

# (command, reply code) pairs whose meaning depends on the command.
SMTP_COMMAND_CODES: dict[tuple[str, int], ErrorCode] = {
    ("AUTH", 504): E.AUTH_MECHANISM_UNSUPPORTED,
    ("RCPT", 550): E.RECIPIENT_REJECTED,
    ("RCPT", 551): E.RECIPIENT_REJECTED,
    ("RCPT", 553): E.RECIPIENT_REJECTED,
    ("RCPT", 554): E.RECIPIENT_REJECTED,  # relay access denied
}

SMTP_TEXT_HINTS: tuple[tuple[str, ErrorCode], ...] = (
    ("must issue a starttls", E.TLS_REQUIRED),
    ("message size exceeds", E.MESSAGE_TOO_LARGE),
    ("message too large", E.MESSAGE_TOO_LARGE),
    ("message too big", E.MESSAGE_TOO_LARGE),
)

# Other 5xx replies, by the command they answer: the message or a recipient is refused
# for good, so the outgoing engine fails the email at once instead of retrying.
SMTP_PERMANENT_BY_COMMAND: dict[str, ErrorCode] = {
    "MAIL": E.MESSAGE_REJECTED,
    "DATA": E.MESSAGE_REJECTED,
    "RCPT": E.RECIPIENT_REJECTED,
}

SMTP_REPLY_CODES: dict[int, ErrorCode] = {
    421: E.SERVER_UNAVAILABLE,
    450: E.SERVER_UNAVAILABLE,
    451: E.SERVER_UNAVAILABLE,
    452: E.THROTTLED,  # insufficient storage, or too many recipients (RFC 5321 §4.5.3.1.10)
    454: E.SERVER_UNAVAILABLE,  # temporary authentication failure / TLS not available
    530: E.AUTH_FAILED,  # authentication required (RFC 4954)
    534: E.AUTH_MECHANISM_UNSUPPORTED,
    535: E.AUTH_FAILED,
    538: E.TLS_REQUIRED,
    552: E.QUOTA,
}

_RESPONSE_CODE = re.compile(r"\[([A-Za-z0-9/-]+)[\] ]")
_ENHANCED = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")
_BYTES_REPR = re.compile(r"""^b(['"]).*\1$""", re.DOTALL)


def text_of(value: object) -> str:
    """A server's text as ``str``: decodes bytes and the ``"b'...'"`` reprs imaplib makes.

    >>> text_of(b"[AUTHENTICATIONFAILED] Authentication failed.")
    '[AUTHENTICATIONFAILED] Authentication failed.'
    >>> text_of("b'-ERR [IN-USE] locked'")
    '-ERR [IN-USE] locked'
    """
    if isinstance(value, BaseException):
        value = value.args[0] if len(value.args) == 1 else str(value)
    if isinstance(value, str) and _BYTES_REPR.match(value):
        with contextlib.suppress(ValueError, SyntaxError):
            value = ast.literal_eval(value)
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    return " ".join(str(value).split())


def response_code(text: str) -> str | None:
    """The first bracketed response code, upper-case: ``"NO [LIMIT] x"`` → ``"LIMIT"``."""
    match = _RESPONSE_CODE.search(text)
    return match.group(1).upper() if match else None


def _by_hint(text: str, hints: tuple[tuple[str, ErrorCode], ...]) -> ErrorCode | None:
    lowered = text.lower()
    return next((code for phrase, code in hints if phrase in lowered), None)


def imap_error_code(text: str, default: ErrorCode) -> ErrorCode:
    """Code for an IMAP ``NO``/``BAD``/``BYE`` text; ``default`` when nothing matches."""
    code = IMAP_RESPONSE_CODES.get(response_code(text) or "")
    return code or _by_hint(text, IMAP_TEXT_HINTS) or default


def pop3_error_code(text: str, default: ErrorCode) -> ErrorCode:
    """Code for a POP3 ``-ERR`` line; ``default`` when it carries no known response code."""
    return POP3_RESPONSE_CODES.get(response_code(text) or "", default)


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 enhanced status code at the start of a reply text, e.g. ``"5.7.8"``."""
    match = _ENHANCED.match(text)
    return match.group(1) if match else None


def smtp_error_code(reply: int, text: str, command: str = "") -> ErrorCode:
    """Code for an SMTP reply to ``command`` (``"AUTH"``, ``"RCPT"``, ...).

    Enhanced status code, then (command, reply), then text hints, then the reply code,
    then the class: other 4xx → SERVER_UNAVAILABLE; other 5xx to MAIL or DATA →
    MESSAGE_REJECTED, to RCPT → RECIPIENT_REJECTED; anything else → PROTOCOL_ERROR.
    """
    found = (
        SMTP_ENHANCED_CODES.get(enhanced_status(text) or "")
        or SMTP_COMMAND_CODES.get((command.upper(), reply))
        or _by_hint(text, SMTP_TEXT_HINTS)
        or SMTP_REPLY_CODES.get(reply)
    )
    if found is not None:
        return found
    if 400 <= reply < 500:
        return E.SERVER_UNAVAILABLE
    if 500 <= reply < 600:
        # A permanent refusal (RFC 5321 §4.2.1): sending the same again cannot help.
        return SMTP_PERMANENT_BY_COMMAND.get(command.upper(), E.PROTOCOL_ERROR)
    return E.PROTOCOL_ERROR

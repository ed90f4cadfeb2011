"""The catalogue of alerts that are not a channel's sync error: code, severity and the
sentences a person reads.

A channel that fails raises an alert named by its ``ErrorCode`` (``core.errors`` holds
those sentences). Everything else that warns a person — a bounce, an email that may not
have been sent, a folder the server renumbered — is named here, once, so the wording is
consistent wherever it is raised and a reader can see every alert crmsync can show in one
place. ``detail`` (what happened this time) is written by the code that raises it.

Must never hold a sentence with a credential or message body in it: these are shown to
every administrator.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from crmsync.core.types import AlertSeverity


class AlertCode(enum.StrEnum):
    EMAIL_BOUNCED = "EMAIL_BOUNCED"
    DELIVERY_UNCERTAIN = "DELIVERY_UNCERTAIN"
    OUTGOING_WAITING = "OUTGOING_WAITING"
    RECIPIENT_REJECTED = "RECIPIENT_REJECTED"
    SENT_COPY_FAILED = "SENT_COPY_FAILED"
    SENT_LOOKUP_FAILED = "SENT_LOOKUP_FAILED"
    APPROVAL_PENDING = "APPROVAL_PENDING"
    UIDVALIDITY_CHANGED = "UIDVALIDITY_CHANGED"
    PROFILE_MAJORITY_FAILING = "PROFILE_MAJORITY_FAILING"


@dataclass(frozen=True)
class AlertText:
    severity: AlertSeverity
    # May name fields in braces (``{folder}``), filled by ``title_of``.
    title: str
    # Empty where the remediation depends on the underlying error and is given with it.
    remediation: str = ""


ALERTS: dict[AlertCode, AlertText] = {
    AlertCode.EMAIL_BOUNCED: AlertText(
        AlertSeverity.WARNING,
        "An email could not be delivered",
        "Check the recipient's address on the record (the detail has the receiving "
        "server's answer), correct it and send the email again.",
    ),
    AlertCode.DELIVERY_UNCERTAIN: AlertText(
        AlertSeverity.WARNING,
        "An email may not have been sent",
        "Check with the recipient; if it did not arrive, send the email again (it is "
        "marked failed, so Send is available).",
    ),
    AlertCode.OUTGOING_WAITING: AlertText(
        AlertSeverity.WARNING,
        "Email is waiting to be sent",
        "An administrator approves the mailbox, sets its outgoing method to server-side "
        "synchronization and runs Test & Enable; queued email is sent as soon as the "
        "mailbox can send.",
    ),
    AlertCode.RECIPIENT_REJECTED: AlertText(
        AlertSeverity.WARNING,
        "An email was sent, but not to every recipient",
        "Check those recipients' addresses; the others received the email.",
    ),
    AlertCode.SENT_COPY_FAILED: AlertText(
        AlertSeverity.WARNING, "Sent email could not be copied to the Sent folder"
    ),
    AlertCode.SENT_LOOKUP_FAILED: AlertText(
        AlertSeverity.WARNING, "Email waits until the Sent folder can be searched"
    ),
    AlertCode.APPROVAL_PENDING: AlertText(
        AlertSeverity.INFORMATION,
        "Test passed; the mailbox awaits approval",
        "An administrator approves the mailbox; email is processed only for approved "
        "mailboxes in this organisation.",
    ),
    AlertCode.UIDVALIDITY_CHANGED: AlertText(
        AlertSeverity.INFORMATION,
        "The server renumbered folder {folder}",
        "Nothing to do: known messages were matched by Message-ID and will not be tracked "
        "twice. If this happens often, check the mail server.",
    ),
    AlertCode.PROFILE_MAJORITY_FAILING: AlertText(
        AlertSeverity.ERROR,
        "Most mailboxes of profile {profile_name!r} are failing",
        "Check the mail server and the profile's settings: when most mailboxes fail "
        "together, the server or the profile is the likely cause.",
    ),
}


def title_of(code: AlertCode, **fields: object) -> str:
    """The alert's title with its fields filled: ``title_of(UIDVALIDITY_CHANGED,
    folder="INBOX")`` → ``'The server renumbered folder INBOX'``."""
    return ALERTS[code].title.format(**fields)

"""Settings stored as JSON: an organisation's (on its row) and a mailbox owner's
tracking preferences (on the user or queue row).

New settings get a default here and need no migration; unknown keys are kept so a
downgrade never loses what a newer version wrote. ``read_stored`` and ``first_error`` are
how crmsync.crm.organisation and crmsync.crm.preferences read and check them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crmsync.core.tokens import TokenFormat
from crmsync.core.types import TrackingScope

# The largest size limit an organisation may set: 10 GiB, far beyond any mail server's.
MAX_BYTES = 10 * 1024**3


class OrganisationSettings(BaseModel):
    """What an organisation's administrators decide for every mailbox; read by the sync
    engines on every pass, changed through crmsync.crm.organisation (which also says what
    a new value must be)."""

    model_config = ConfigDict(extra="allow")

    email_domain: str = Field(
        default="crmsync.invalid",
        description="The domain of the Message-IDs of email sent from the CRM "
        "(<crm.3f2a…@acme.example>), stored in its ASCII (IDNA) form; replies name it in "
        "In-Reply-To, so it should be a domain the organisation owns.",
    )
    use_tracking_token: bool = Field(
        default=True,
        description="Whether email sent from the CRM ends its subject with a tracking "
        "token (CRM:0001234), which correlates a reply whose mail client dropped the "
        "In-Reply-To and References headers.",
    )
    tracking_token_prefix: str = Field(
        default="CRM:",
        max_length=20,
        description="What a tracking token starts with: no spaces, not ending in a digit. "
        "Tokens of an earlier prefix are no longer recognised in replies.",
    )
    tracking_token_digits: int = Field(
        default=7, ge=3, le=12, description="How many digits a tracking token has."
    )
    process_email_only_for_approved: bool = Field(
        default=True,
        description="Sync only mailboxes an administrator has approved.",
    )
    blocked_attachment_extensions: list[str] = Field(
        default_factory=lambda: [
            "ade",
            "adp",
            "app",
            "bat",
            "chm",
            "cmd",
            "com",
            "cpl",
            "exe",
            "hta",
            "inf",
            "ins",
            "isp",
            "jar",
            "js",
            "jse",
            "lnk",
            "msc",
            "msi",
            "msp",
            "mst",
            "pif",
            "ps1",
            "reg",
            "scr",
            "sct",
            "shb",
            "shs",
            "vb",
            "vbe",
            "vbs",
            "ws",
            "wsc",
            "wsf",
            "wsh",
        ],
        description="File extensions of attachments never stored (exe, js, …), in lower "
        "case without the dot; the email is tracked without them, and says so.",
    )
    max_attachment_bytes: int = Field(
        default=25 * 1024 * 1024,
        ge=0,
        le=MAX_BYTES,
        description="Attachments larger than this many bytes are not stored.",
    )
    max_message_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        le=MAX_BYTES,
        description="Messages larger than this many bytes are not fetched nor tracked.",
    )
    blocked_senders: list[str] = Field(
        default_factory=list,
        description="Addresses or domains whose email is never tracked; a domain blocks "
        "its subdomains too.",
    )
    use_conversation_index: bool = Field(
        default=True,
        description="Correlate replies by Outlook's Thread-Index header too.",
    )
    smart_matching: bool = Field(
        default=False,
        description="Correlate a reply with no usable headers or token by its subject and "
        "participants.",
    )
    smart_matching_min_participants: int = Field(
        default=2,
        ge=1,
        le=10,
        description="How many participants smart matching needs in common.",
    )
    alert_retention_days: int = Field(
        default=30,
        ge=1,
        le=3650,
        description="How many days alerts and resolved item failures are kept; older ones "
        "are purged every hour by the running engine.",
    )

    @property
    def token_format(self) -> TokenFormat:
        """The tracking token's format these settings give (crmsync.core.tokens)."""
        return TokenFormat(self.tracking_token_prefix, self.tracking_token_digits)


class UnknownSenderRecord(StrEnum):
    NONE = "none"
    CONTACT = "contact"
    LEAD = "lead"


class TrackingPreferences(BaseModel):
    """A mailbox owner's (user's or queue's) choices about their incoming email.

    Read and written through crmsync.crm.preferences; stored as JSON on the user or queue
    row (``model_dump(mode="json")``), keys this version does not know kept.
    """

    model_config = ConfigDict(extra="allow")

    track_scope: TrackingScope = Field(
        default=TrackingScope.REPLIES_TO_CRM,
        description="Which incoming email to track: all; replies_to_crm (replies to "
        "email tracked in the CRM); from_crm_records (from leads, contacts and accounts); "
        "from_email_enabled (from any CRM record with an address, users and queues too); "
        "none. Replies to CRM email are tracked under every choice but none.",
    )
    create_for_unknown_sender: UnknownSenderRecord = Field(
        default=UnknownSenderRecord.NONE,
        description="Create a contact or lead for a sender no record has the address of.",
    )
    leave_ambiguous_unresolved: bool = Field(
        default=False,
        description="When a recipient's address belongs to several records, leave it "
        "unresolved rather than linking every one.",
    )


Stored = TypeVar("Stored", bound=BaseModel)


def read_stored(model: type[Stored], stored: Mapping[str, Any] | None) -> Stored:
    """``stored`` read as ``model``; a value no version could have written (edited into
    the database by hand) is read as its default, so a page can show and mend it."""
    data = dict(stored or {})
    while True:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            bad = {error["loc"][0] for error in exc.errors() if error.get("loc")}
            if not bad & data.keys():
                raise
            for name in bad:
                data.pop(str(name), None)


def first_error(exc: ValidationError, whole: str) -> tuple[str, str]:
    """The field of ``exc``'s first error and a sentence naming it:
    ``('track_scope', "track_scope: Input should be 'all', …")``; ``whole`` names the
    field when the error is about the whole object."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first.get("loc", ())) or whole
    return field, f"{field}: {first.get('msg', 'invalid')}"

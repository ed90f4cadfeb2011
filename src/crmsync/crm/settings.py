"""An organisation's settings, stored as JSON on the organisation row.

New settings get a default here and need no migration; unknown keys are kept so a
downgrade never loses what a newer version wrote.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class OrganisationSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    email_domain: str = Field(
        default="crmsync.invalid", description="Domain for Message-IDs of CRM email."
    )
    use_tracking_token: bool = True
    tracking_token_prefix: str = Field(default="CRM:", max_length=20)
    tracking_token_digits: int = Field(default=7, ge=3, le=12)
    process_email_only_for_approved: bool = True
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
        ]
    )
    max_attachment_bytes: int = Field(default=25 * 1024 * 1024, ge=0)
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    blocked_senders: list[str] = Field(
        default_factory=list, description="Addresses or domains whose email is never tracked."
    )
    use_conversation_index: bool = True
    smart_matching: bool = False
    smart_matching_min_participants: int = Field(default=2, ge=1, le=10)
    alert_retention_days: int = Field(default=30, ge=1, le=3650)


class TrackScope(StrEnum):
    """Which incoming email to track (the owner's choice; crmsync.tracking.filters decides).

    Stored as its value, so preferences written as plain strings read back unchanged.
    """

    ALL = "all"
    REPLIES_TO_CRM = "replies_to_crm"
    FROM_CRM_RECORDS = "from_crm_records"  # leads, contacts, accounts
    FROM_EMAIL_ENABLED = "from_email_enabled"  # any email-enabled record: also users, queues
    NONE = "none"


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

    track_scope: TrackScope = Field(
        default=TrackScope.REPLIES_TO_CRM,
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

"""An organisation's settings, stored as JSON on the organisation row.

New settings get a default here and need no migration; unknown keys are kept so a
downgrade never loses what a newer version wrote.
"""

from __future__ import annotations

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

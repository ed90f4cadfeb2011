"""The organisation's settings as the API shows and takes them (crm/organisation.py).

The update's patterns and bounds are the ones crm/organisation.py checks, so a client
that follows the document is refused only for what no pattern can say: a domain the
IDNA rules refuse (``-bad.example``, ``xn--zz.example``) is a 422 INVALID_SETTING naming
the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from crmsync.api.schemas.common import AS_WHOLE_NUMBER, omittable
from crmsync.crm import organisation as rules
from crmsync.crm.settings import MAX_BYTES, OrganisationSettings
from crmsync.tracking.token import example_token

_FIELDS = OrganisationSettings.model_fields


def _about(name: str) -> str:
    return _FIELDS[name].description or ""


class OrganisationSettingsPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    email_domain: str = Field(description=_about("email_domain"))
    use_tracking_token: bool = Field(description=_about("use_tracking_token"))
    tracking_token_prefix: str = Field(description=_about("tracking_token_prefix"))
    tracking_token_digits: int = Field(description=_about("tracking_token_digits"))
    tracking_token_example: str = Field(
        description="A token in the current format, as it ends a subject: CRM:0001234."
    )
    process_email_only_for_approved: bool = Field(
        description=_about("process_email_only_for_approved")
    )
    blocked_senders: list[str] = Field(description=_about("blocked_senders"))
    blocked_attachment_extensions: list[str] = Field(
        description=_about("blocked_attachment_extensions")
    )
    max_attachment_bytes: int = Field(description=_about("max_attachment_bytes"))
    max_message_bytes: int = Field(description=_about("max_message_bytes"))
    use_conversation_index: bool = Field(description=_about("use_conversation_index"))
    smart_matching: bool = Field(description=_about("smart_matching"))
    smart_matching_min_participants: int = Field(
        description=_about("smart_matching_min_participants")
    )
    alert_retention_days: int = Field(description=_about("alert_retention_days"))

    @classmethod
    def of(cls, settings: OrganisationSettings) -> OrganisationSettingsPublic:
        fields = {name: getattr(settings, name) for name in cls.model_fields if name in _FIELDS}
        return cls(
            **fields,
            tracking_token_example=example_token(settings.token_format),
        )


BlockedSender = Annotated[
    str,
    Field(
        min_length=1,
        max_length=rules.MAX_BLOCKED_SENDER_LENGTH,
        pattern=rules.BLOCKED_SENDER_PATTERN,
    ),
]
Extension = Annotated[str, Field(pattern=rules.EXTENSION_PATTERN)]


class OrganisationSettingsUpdate(BaseModel):
    """The settings to change; those left out keep their value. Lists replace the list."""

    model_config = ConfigDict(extra="forbid")

    email_domain: str = omittable(
        min_length=1,
        max_length=rules.MAX_DOMAIN_LENGTH + 1,  # a final dot, dropped
        pattern=rules.DOMAIN_PATTERN,
        description=_about("email_domain") + " Unicode names (bücher.example) are accepted.",
    )
    # Strict: JSON's 0 or "true" is not a yes or no (pydantic's lax mode would take them).
    use_tracking_token: StrictBool = omittable(description=_about("use_tracking_token"))
    tracking_token_prefix: str = omittable(
        min_length=1,
        max_length=rules.MAX_PREFIX_LENGTH,
        pattern=rules.PREFIX_PATTERN,
        description=_about("tracking_token_prefix"),
    )
    tracking_token_digits: Annotated[int, Field(ge=3, le=12), AS_WHOLE_NUMBER] = omittable(
        description=_about("tracking_token_digits")
    )
    process_email_only_for_approved: StrictBool = omittable(
        description=_about("process_email_only_for_approved")
    )
    blocked_senders: list[BlockedSender] = omittable(
        max_length=rules.MAX_BLOCKED_SENDERS,
        description=_about("blocked_senders")
        + " Stored normalised (lower case, IDNA), duplicates dropped; '@example.com' and "
        "'*.example.com' mean the domain example.com.",
    )
    blocked_attachment_extensions: list[Extension] = omittable(
        max_length=rules.MAX_EXTENSIONS,
        description=_about("blocked_attachment_extensions")
        + " '.EXE' is stored as 'exe'; duplicates dropped.",
    )
    max_attachment_bytes: Annotated[int, Field(ge=0, le=MAX_BYTES), AS_WHOLE_NUMBER] = omittable(
        description=_about("max_attachment_bytes")
    )
    max_message_bytes: Annotated[int, Field(ge=1024, le=MAX_BYTES), AS_WHOLE_NUMBER] = omittable(
        description=_about("max_message_bytes")
    )
    use_conversation_index: StrictBool = omittable(description=_about("use_conversation_index"))
    smart_matching: StrictBool = omittable(description=_about("smart_matching"))
    smart_matching_min_participants: Annotated[int, Field(ge=1, le=10), AS_WHOLE_NUMBER] = (
        omittable(description=_about("smart_matching_min_participants"))
    )
    alert_retention_days: Annotated[int, Field(ge=1, le=3650), AS_WHOLE_NUMBER] = omittable(
        description=_about("alert_retention_days")
    )

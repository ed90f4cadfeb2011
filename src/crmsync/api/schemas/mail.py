"""Email server profile, mailbox, Test & Enable, alert and item-failure shapes.

Secrets are write-only: requests may carry them (``SecretStr``, so they never appear in
reprs or logs); responses only say whether one is set.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr

from crmsync.api.schemas.common import (
    AS_WHOLE_NUMBER,
    EmailAddress,
    Moment,
    WholeNumber,
    omittable,
)
from crmsync.core.types import (
    AlertSeverity,
    Approval,
    AuthMethod,
    Channel,
    ChannelStatus,
    ConnectionSecurity,
    CredentialScope,
    IncomingMethod,
    OutgoingAuth,
    ServerType,
    SyncMethod,
)

Host = Field(default=None, min_length=1, max_length=255, pattern=r"^[^\s/]+$")
PortNumber = Annotated[int, Field(ge=1, le=65535), AS_WHOLE_NUMBER]


class ProfileSettings(BaseModel):
    """Everything about a profile but its name and type; unset fields take presets."""

    model_config = ConfigDict(extra="forbid")

    is_default: bool = omittable()
    incoming_host: str | None = Host
    incoming_port: PortNumber | None = None
    incoming_security: ConnectionSecurity = omittable()
    outgoing_host: str | None = Host
    outgoing_port: PortNumber | None = None
    outgoing_security: ConnectionSecurity = omittable()
    exchange_url: str | None = Field(default=None, max_length=500)
    allow_plaintext: bool = omittable()
    verify_certificates: bool = omittable()
    ca_pem: str | None = Field(default=None, max_length=200_000)
    auth_method: AuthMethod = omittable()
    credential_scope: CredentialScope = omittable()
    outgoing_auth: OutgoingAuth = omittable(
        description="How crmsync authenticates to the SMTP server: with the incoming "
        "side's credentials, or not at all (none) for an on-premises relay that accepts "
        "mail from trusted addresses. Never chosen by crmsync itself.",
    )
    username: str | None = Field(default=None, max_length=320)
    password: SecretStr | None = Field(default=None, max_length=1000)
    impersonation_format: str = omittable(max_length=100)
    oauth_client_id: str | None = Field(default=None, max_length=300)
    oauth_client_secret: SecretStr | None = Field(default=None, max_length=1000)
    oauth_token_url: str | None = Field(default=None, max_length=500)
    oauth_authorize_url: str | None = Field(default=None, max_length=500)
    oauth_scopes: str | None = Field(default=None, max_length=1000)
    oauth_tenant: str | None = Field(default=None, max_length=200)
    process_email_after: Moment | None = None
    min_polling_seconds: WholeNumber = omittable(ge=5, le=86_400)
    max_concurrent_connections: WholeNumber = omittable(ge=1, le=1000)
    connection_timeout_seconds: WholeNumber = omittable(ge=1, le=600)
    move_failed_to_folder: str | None = Field(default=None, max_length=300)
    alert_on_majority_failure: bool = omittable()
    save_sent_copy: bool = omittable(
        description="Append a copy of each email sent to the Sent folder; off for servers "
        "that file submitted mail there themselves (Gmail and Outlook.com presets).",
    )

    def values(self, *, exclude_unset: bool) -> dict[str, Any]:
        data = self.model_dump(exclude_unset=exclude_unset)
        for secret in ("password", "oauth_client_secret"):
            value = getattr(self, secret)
            if secret in data:
                data[secret] = value.get_secret_value() if value is not None else None
        return data


class ProfileCreate(ProfileSettings):
    name: str = Field(min_length=1, max_length=200)
    server_type: ServerType


class ProfileUpdate(ProfileSettings):
    name: str = omittable(min_length=1, max_length=200)


class ProfilePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    server_type: ServerType
    is_default: bool
    incoming_host: str | None
    incoming_port: int | None
    incoming_security: ConnectionSecurity
    outgoing_host: str | None
    outgoing_port: int | None
    outgoing_security: ConnectionSecurity
    exchange_url: str | None
    allow_plaintext: bool
    verify_certificates: bool
    has_ca_pem: bool
    auth_method: AuthMethod
    credential_scope: CredentialScope
    outgoing_auth: OutgoingAuth
    username: str | None
    has_password: bool
    impersonation_format: str
    oauth_client_id: str | None
    has_oauth_client_secret: bool
    oauth_token_url: str | None
    oauth_authorize_url: str | None
    oauth_scopes: str | None
    oauth_tenant: str | None
    process_email_after: AwareDatetime | None
    min_polling_seconds: int
    max_concurrent_connections: int
    connection_timeout_seconds: int
    move_failed_to_folder: str | None
    alert_on_majority_failure: bool
    save_sent_copy: bool
    owner_id: uuid.UUID

    @classmethod
    def of(cls, profile: Any) -> ProfilePublic:
        return cls.model_validate(
            {
                **{name: getattr(profile, name, None) for name in cls.model_fields},
                "has_ca_pem": bool(profile.ca_pem),
                "has_password": bool(profile.password_ciphertext),
                "has_oauth_client_secret": bool(profile.oauth_client_secret_ciphertext),
            }
        )


class MailboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile_id: uuid.UUID | None = None
    email_address: EmailAddress | None = None
    incoming_method: IncomingMethod = omittable()
    outgoing_method: SyncMethod = omittable()
    act_method: SyncMethod = omittable()
    delete_after_processing: bool = omittable()
    username: str | None = Field(default=None, max_length=320)
    password: SecretStr | None = Field(default=None, max_length=1000)
    oauth_refresh_token: SecretStr | None = Field(default=None, max_length=10_000)

    def values(self) -> dict[str, Any]:
        data = self.model_dump(exclude_unset=True)
        for secret in ("password", "oauth_refresh_token"):
            value = getattr(self, secret)
            if secret in data:
                data[secret] = value.get_secret_value() if value is not None else None
        return data


class ChannelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    channel: Channel
    enabled: bool
    status: ChannelStatus
    last_attempt_at: AwareDatetime | None
    last_success_at: AwareDatetime | None
    items_processed: int
    consecutive_failures: int
    next_attempt_at: AwareDatetime | None
    last_error_code: str | None
    last_error_detail: str | None


class MailboxPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    user_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    owner_id: uuid.UUID
    profile_id: uuid.UUID | None
    email_address: str | None
    incoming_method: IncomingMethod
    outgoing_method: SyncMethod
    act_method: SyncMethod
    approval: Approval
    delete_after_processing: bool
    username: str | None
    has_own_credentials: bool
    channels: list[ChannelPublic]


class CheckStep(BaseModel):
    channel: Channel
    name: str
    ok: bool
    seconds: float
    detail: str
    code: str | None


class MailboxTestPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mailbox_id: uuid.UUID
    started_at: AwareDatetime
    finished_at: AwareDatetime | None
    ok: bool
    steps: list[CheckStep]


class AlertPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mailbox_id: uuid.UUID | None
    profile_id: uuid.UUID | None
    channel: Channel | None
    severity: AlertSeverity
    code: str
    title: str
    detail: str
    remediation: str
    occurrences: int
    created_at: AwareDatetime
    last_seen_at: AwareDatetime


class ItemFailurePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel: Channel
    item_ref: str
    code: str
    detail: str
    raw_sha256: str | None
    attempts: int
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime
    resolved_at: AwareDatetime | None


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: EmailAddress | None = None
    business_unit_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None


class QueuePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str | None
    business_unit_id: uuid.UUID
    owner_id: uuid.UUID

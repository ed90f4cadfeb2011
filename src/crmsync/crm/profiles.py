"""Email server profiles: presets, validation and storage of their settings.

Presets fill what a provider fixes (hosts, ports, security, OAuth endpoints) so an
administrator only adds what is theirs (client id, credentials). Validation refuses a
profile that could never connect — a missing host, a plain connection nobody allowed,
OAuth without a token endpoint, sending without AUTH where there is no SMTP server —
with a rule code naming the field. Sending without AUTH is never a preset: only an
administrator's explicit ``outgoing_auth = none`` sets it.

Must never store a secret in clear: passwords and client secrets go through SecretBox.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from crmsync.core.types import (
    AuthMethod,
    ConnectionSecurity,
    CredentialScope,
    OutgoingAuth,
    Privilege,
    RecordType,
    ServerType,
)
from crmsync.crm import access
from crmsync.crm.access import Principal
from crmsync.crm.errors import RuleViolation
from crmsync.crm.models.mail import EmailServerProfile
from crmsync.crm.secrets import SecretBox

# Server quirks are data: what each provider fixes.
PRESETS: dict[ServerType, dict[str, Any]] = {
    ServerType.GMAIL: {
        "incoming_host": "imap.gmail.com",
        "incoming_port": 993,
        "incoming_security": ConnectionSecurity.IMPLICIT_TLS,
        "outgoing_host": "smtp.gmail.com",
        "outgoing_port": 587,
        "outgoing_security": ConnectionSecurity.STARTTLS,
        "auth_method": AuthMethod.OAUTH2,
        "oauth_authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "oauth_token_url": "https://oauth2.googleapis.com/token",
        "oauth_scopes": "https://mail.google.com/",
        # Gmail files what its SMTP server accepts in Sent by itself; a copy would be a
        # second one.
        "save_sent_copy": False,
    },
    ServerType.OUTLOOK_COM: {
        "incoming_host": "outlook.office365.com",
        "incoming_port": 993,
        "incoming_security": ConnectionSecurity.IMPLICIT_TLS,
        "outgoing_host": "smtp-mail.outlook.com",
        "outgoing_port": 587,
        "outgoing_security": ConnectionSecurity.STARTTLS,
        "auth_method": AuthMethod.OAUTH2,
        "oauth_authorize_url": "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        "oauth_token_url": "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        "oauth_scopes": "https://outlook.office.com/IMAP.AccessAsUser.All "
        "https://outlook.office.com/SMTP.Send offline_access",
        "save_sent_copy": False,  # Outlook.com files submitted mail in Sent Items itself
    },
    ServerType.EXCHANGE_ONLINE: {
        "auth_method": AuthMethod.OAUTH2,
        "credential_scope": CredentialScope.PROFILE,
        "oauth_token_url": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "oauth_scopes": "https://graph.microsoft.com/.default",
    },
}
DEFAULT_PORTS = {
    ("imap", ConnectionSecurity.IMPLICIT_TLS): 993,
    ("imap", ConnectionSecurity.STARTTLS): 143,
    ("imap", ConnectionSecurity.PLAIN): 143,
    ("pop3", ConnectionSecurity.IMPLICIT_TLS): 995,
    ("pop3", ConnectionSecurity.STARTTLS): 110,
    ("pop3", ConnectionSecurity.PLAIN): 110,
    ("smtp", ConnectionSecurity.IMPLICIT_TLS): 465,
    ("smtp", ConnectionSecurity.STARTTLS): 587,
    ("smtp", ConnectionSecurity.PLAIN): 25,
}
SECRET_FIELDS = {
    "password": "password_ciphertext",
    "oauth_client_secret": "oauth_client_secret_ciphertext",
}


def _fail(field: str, detail: str) -> RuleViolation:
    return RuleViolation("PROFILE_INVALID", detail, field=field)


def validate(profile: EmailServerProfile) -> None:
    protocol = profile.server_type.incoming_protocol
    if protocol.is_internet_mail:
        for field in ("incoming_host", "outgoing_host"):
            if not getattr(profile, field):
                raise _fail(field, f"{field} is required for {profile.server_type.value}")
        for field in ("incoming_security", "outgoing_security"):
            if getattr(profile, field) is ConnectionSecurity.PLAIN and not profile.allow_plaintext:
                raise _fail(
                    field, "Plain connections need allow_plaintext (e.g. on a loopback server)"
                )
    if profile.outgoing_auth == OutgoingAuth.NONE and not protocol.is_internet_mail:
        raise _fail(
            "outgoing_auth",
            "Sending without authentication is possible only through an SMTP server "
            f"(IMAP/SMTP or POP3/SMTP profiles), not {profile.server_type.value}",
        )
    if profile.server_type is ServerType.EXCHANGE_SERVER and not profile.exchange_url:
        raise _fail("exchange_url", "exchange_url (the EWS endpoint) is required")
    if profile.auth_method is AuthMethod.OAUTH2:
        for field in ("oauth_client_id", "oauth_token_url"):
            if not getattr(profile, field):
                raise _fail(field, f"{field} is required for OAuth2")
    if profile.credential_scope is CredentialScope.PROFILE:
        if not profile.username:
            raise _fail("username", "Profile-wide credentials need a username")
        if profile.auth_method is AuthMethod.PASSWORD and not profile.password_ciphertext:
            raise _fail("password", "Profile-wide credentials need a password")
    if "{mailbox}" not in profile.impersonation_format:
        raise _fail("impersonation_format", "impersonation_format must contain {mailbox}")


def _apply(profile: EmailServerProfile, values: dict[str, Any], box: SecretBox) -> None:
    for name, value in values.items():
        if name in SECRET_FIELDS:
            setattr(profile, SECRET_FIELDS[name], box.encrypt_optional(value))
        else:
            setattr(profile, name, value)
    protocol = profile.server_type.incoming_protocol
    if protocol.is_internet_mail:
        if profile.incoming_port is None:
            profile.incoming_port = DEFAULT_PORTS[(protocol, profile.incoming_security)]
        if profile.outgoing_port is None:
            profile.outgoing_port = DEFAULT_PORTS[("smtp", profile.outgoing_security)]


def _single_default(session: Session, profile: EmailServerProfile) -> None:
    if profile.is_default:
        session.execute(
            update(EmailServerProfile)
            .where(
                EmailServerProfile.organisation_id == profile.organisation_id,
                EmailServerProfile.id != profile.id,
            )
            .values(is_default=False)
        )


def create_profile(
    session: Session, principal: Principal, values: dict[str, Any], box: SecretBox
) -> EmailServerProfile:
    access.require_type_privilege(principal, RecordType.EMAIL_SERVER_PROFILE, Privilege.CREATE)
    server_type = ServerType(values["server_type"])
    preset = {k: v for k, v in PRESETS.get(server_type, {}).items() if values.get(k) is None}
    profile = EmailServerProfile(
        organisation_id=principal.organisation_id,
        owner_id=principal.user_id,
        owning_business_unit_id=principal.business_unit_id,
        server_type=server_type,
        name=values["name"],
    )
    defaults = {
        column.key: column.default.arg
        for column in EmailServerProfile.__table__.columns
        if column.default is not None and not callable(column.default.arg)
    }
    for key, value in defaults.items():
        if getattr(profile, key, None) is None:
            setattr(profile, key, value)
    given = {k: v for k, v in values.items() if v is not None and k not in ("name", "server_type")}
    _apply(profile, {**preset, **given}, box)
    validate(profile)
    session.add(profile)
    session.flush()
    _single_default(session, profile)
    return profile


def update_profile(
    session: Session,
    principal: Principal,
    profile: EmailServerProfile,
    values: dict[str, Any],
    box: SecretBox,
) -> EmailServerProfile:
    access.require(session, principal, profile, Privilege.WRITE)
    _apply(profile, values, box)
    validate(profile)
    session.flush()
    _single_default(session, profile)
    return profile

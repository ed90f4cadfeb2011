"""From a mailbox and its profile to connector endpoints and credentials.

Reads stored settings and decrypts credentials; the result is plain data the connectors
take, so no database session is ever held while talking to a server. Refuses with a
catalogue error what could never work: no profile, no credentials, a server type with
no connector in this build. The outgoing endpoint logs in to nobody only when the
profile's ``outgoing_auth`` is ``none`` (the IMAP/POP3 side always authenticates).

Must never log or put into an error the clear-text credentials it builds.
"""

from __future__ import annotations

from dataclasses import dataclass

from crmsync.connectors.endpoints import Credentials, Endpoint, Security
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import (
    Approval,
    AuthMethod,
    ConnectionSecurity,
    CredentialScope,
    OutgoingAuth,
    Protocol,
)
from crmsync.crm.models.mail import EmailServerProfile, Mailbox
from crmsync.crm.secrets import SecretBox, SecretKeyError


@dataclass(frozen=True)
class ConnectionPlan:
    protocol: Protocol
    incoming: Endpoint | None
    outgoing: Endpoint | None
    credentials: Credentials


def _endpoint(
    profile: EmailServerProfile,
    host: str | None,
    port: int | None,
    security: ConnectionSecurity,
    *,
    authenticate: bool = True,
) -> Endpoint | None:
    if not host or not port:
        return None
    return Endpoint(
        host=host,
        port=port,
        security=Security(security.value),
        verify_certificates=profile.verify_certificates,
        ca_pem=profile.ca_pem,
        allow_plaintext=profile.allow_plaintext,
        timeout=float(profile.connection_timeout_seconds),
        authenticate=authenticate,
    )


def _profile_credentials(
    mailbox: Mailbox, profile: EmailServerProfile, box: SecretBox
) -> Credentials:
    """Impersonation: the profile's master login, acting for the mailbox's address.

    Those credentials open every mailbox on the server, so they act only for an approved
    mailbox and only for its email address, which only an administrator sets — never for
    the user name its owner may type.
    """
    if mailbox.approval is not Approval.APPROVED:
        raise SyncError(
            ErrorCode.APPROVAL_REQUIRED,
            f"the mailbox is {mailbox.approval.value}; the profile's credentials act only "
            "for approved mailboxes",
        )
    if not mailbox.email_address:
        raise SyncError(ErrorCode.CREDENTIALS_MISSING, "the mailbox has no email address")
    if not profile.username or not profile.password_ciphertext:
        raise SyncError(ErrorCode.CREDENTIALS_MISSING, "the profile has no credentials set")
    username = profile.impersonation_format.format(
        mailbox=mailbox.email_address, username=profile.username
    )
    password = box.decrypt(profile.password_ciphertext, what="the profile password")
    return Credentials(username=username, password=password)


def _credentials(mailbox: Mailbox, profile: EmailServerProfile, box: SecretBox) -> Credentials:
    try:
        if profile.credential_scope is CredentialScope.PROFILE:
            return _profile_credentials(mailbox, profile, box)
        login = mailbox.username or mailbox.email_address
        if not login:
            raise SyncError(
                ErrorCode.CREDENTIALS_MISSING, "the mailbox has no user name or address"
            )
        if profile.auth_method is AuthMethod.OAUTH2:
            if not mailbox.oauth_access_token_ciphertext:
                raise SyncError(
                    ErrorCode.CREDENTIALS_MISSING, "the mailbox has not been authorised (OAuth)"
                )
            token = box.decrypt(mailbox.oauth_access_token_ciphertext, what="the access token")
            return Credentials(username=login, oauth_access_token=token)
        if not mailbox.password_ciphertext:
            raise SyncError(ErrorCode.CREDENTIALS_MISSING, "the mailbox has no password set")
        password = box.decrypt(mailbox.password_ciphertext, what="the mailbox password")
        return Credentials(username=login, password=password)
    except SecretKeyError as exc:
        raise SyncError(ErrorCode.CONFIGURATION, str(exc)) from exc


def plan_for(mailbox: Mailbox, box: SecretBox) -> ConnectionPlan:
    profile = mailbox.profile
    if profile is None:
        raise SyncError(ErrorCode.CONFIGURATION, "the mailbox has no email server profile")
    protocol = profile.server_type.incoming_protocol
    if not protocol.is_internet_mail:
        raise SyncError(
            ErrorCode.NOT_SUPPORTED,
            f"{profile.server_type.value}: no Exchange connector is available in this build",
        )
    return ConnectionPlan(
        protocol=protocol,
        incoming=_endpoint(
            profile, profile.incoming_host, profile.incoming_port, profile.incoming_security
        ),
        outgoing=_endpoint(
            profile,
            profile.outgoing_host,
            profile.outgoing_port,
            profile.outgoing_security,
            # Only the administrator's explicit choice drops AUTH (crm/profiles.py).
            authenticate=profile.outgoing_auth is not OutgoingAuth.NONE,
        ),
        credentials=_credentials(mailbox, profile, box),
    )

"""Keeping a mailbox's OAuth2 access token fresh from its stored refresh token.

    read (short transaction)   expiry, encrypted refresh token, the profile's client
    refresh (no transaction)   RFC 6749 §6 refresh grant at the profile's token URL
    save (short transaction)   new access token and expiry, a rotated refresh token

Called before every connection that needs the token (Test & Enable, sync); a token
valid for more than the margin is used as it is. A refused refresh token is the
permanent OAUTH_REFRESH_FAILED — the owner must sign in again.

Must never log or put into an error a token or client secret.
"""

from __future__ import annotations

import uuid

from crmsync.connectors.oauth import needs_refresh, refresh_access_token
from crmsync.core.errors import ErrorCode, SyncError
from crmsync.core.types import AuthMethod, CredentialScope
from crmsync.crm.db import utcnow
from crmsync.crm.models.mail import Mailbox
from crmsync.crm.secrets import SecretBox, SecretKeyError
from crmsync.crm.store import Store


def ensure_access_token(store: Store, box: SecretBox, mailbox_id: uuid.UUID) -> None:
    now = utcnow()
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        profile = mailbox.profile if mailbox is not None else None
        if (
            mailbox is None
            or profile is None
            or profile.auth_method is not AuthMethod.OAUTH2
            or profile.credential_scope is not CredentialScope.MAILBOX
        ):
            return
        if mailbox.oauth_access_token_ciphertext and not needs_refresh(
            mailbox.oauth_access_expires_at, now
        ):
            return
        if not mailbox.oauth_refresh_token_ciphertext:
            raise SyncError(
                ErrorCode.CREDENTIALS_MISSING, "the mailbox has not been authorised (OAuth)"
            )
        if not profile.oauth_token_url or not profile.oauth_client_id:
            raise SyncError(ErrorCode.CONFIGURATION, "the profile has no OAuth token URL or client")
        try:
            refresh_token = box.decrypt(
                mailbox.oauth_refresh_token_ciphertext, what="the refresh token"
            )
            client_secret = (
                box.decrypt(profile.oauth_client_secret_ciphertext, what="the client secret")
                if profile.oauth_client_secret_ciphertext
                else None
            )
        except SecretKeyError as exc:
            raise SyncError(ErrorCode.CONFIGURATION, str(exc)) from exc
        token_url = profile.oauth_token_url.replace("{tenant}", profile.oauth_tenant or "common")
        client_id, scopes = profile.oauth_client_id, profile.oauth_scopes
        ca_pem, allow_plaintext = profile.ca_pem, profile.allow_plaintext
        timeout = float(profile.connection_timeout_seconds)
    grant = refresh_access_token(
        token_url,
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        scopes=scopes,
        timeout=timeout,
        ca_pem=ca_pem,
        allow_plaintext=allow_plaintext,
    )
    with store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        if mailbox is None:
            return
        mailbox.oauth_access_token_ciphertext = box.encrypt(grant.access_token)
        mailbox.oauth_access_expires_at = grant.expires_at
        if grant.refresh_token:
            mailbox.oauth_refresh_token_ciphertext = box.encrypt(grant.refresh_token)


def token_problem(store: Store, box: SecretBox, mailbox_id: uuid.UUID) -> SyncError | None:
    """``ensure_access_token``, with its failure handed back instead of raised, so the
    caller can record it as the channel's failure once it knows the mailbox."""
    try:
        ensure_access_token(store, box, mailbox_id)
    except SyncError as exc:
        return exc
    return None

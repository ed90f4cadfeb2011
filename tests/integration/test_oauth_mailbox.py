"""A mailbox on OAuth2: the stored refresh token is renewed by itself, XOAUTH2 logs in.

The token service is tests/servers/oauth (a stand-in for Google's and Microsoft's, which
cannot run here); Dovecot validates the access tokens against it (passdb oauth2).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from crmsync.core.types import Approval, ServerType
from crmsync.crm import directory, mailboxes, profiles
from crmsync.crm.db import utcnow
from crmsync.crm.models import Mailbox
from crmsync.sync.check_enable import check_and_enable
from tests.integration.conftest import Connected
from tests.servers import DovecotServer
from tests.servers.oauth import OAuthClient, OAuthServer


def _oauth_mailbox(
    connected: Connected,
    dovecot_oauth: DovecotServer,
    oauth_server: OAuthServer,
    client: OAuthClient,
) -> tuple[str, uuid.UUID]:
    user = dovecot_oauth.add_user("olga", "unused-password")
    refresh_token = oauth_server.grant_refresh_token(user.login, client_id=client.client_id)
    admin = connected.admin()
    assert dovecot_oauth.ca_cert is not None
    with connected.store.transaction() as session:
        profile = profiles.create_profile(
            session,
            admin,
            {
                "name": "OAuth Dovecot",
                "server_type": ServerType.IMAP_SMTP,
                "incoming_host": "127.0.0.1",
                "incoming_port": dovecot_oauth.imap_port,
                "incoming_security": "starttls",
                "outgoing_host": "127.0.0.1",
                "outgoing_security": "starttls",
                "ca_pem": dovecot_oauth.ca_cert.read_text(),
                "auth_method": "oauth2",
                "oauth_client_id": client.client_id,
                "oauth_client_secret": client.client_secret,
                "oauth_token_url": oauth_server.token_url,
                "allow_plaintext": True,  # the stand-in token service speaks plain HTTP
            },
            connected.box,
        )
        owner = directory.create_user(
            session,
            admin,
            username="olga",
            full_name="Olga",
            business_unit_id=connected.org.root_unit_id,
            email_addresses=[user.address],
        )
        mailbox = session.scalars(select(Mailbox).where(Mailbox.user_id == owner.id)).one()
        mailboxes.update_mailbox(
            session,
            admin,
            mailbox,
            {
                "profile_id": profile.id,
                "oauth_refresh_token": refresh_token,
                "outgoing_method": "none",
            },
            connected.box,
        )
        mailboxes.set_approval(session, admin, mailbox, Approval.APPROVED)
        return refresh_token, mailbox.id


def test_the_refresh_token_is_renewed_and_xoauth2_logs_in(
    connected: Connected,
    dovecot_oauth: DovecotServer,
    oauth_server: OAuthServer,
    oauth_client: OAuthClient,
) -> None:
    refresh_token, mailbox_id = _oauth_mailbox(connected, dovecot_oauth, oauth_server, oauth_client)
    run = check_and_enable(connected.store, connected.box, mailbox_id)
    assert run.ok, run.steps
    with connected.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        assert mailbox.oauth_access_token_ciphertext
        assert mailbox.oauth_access_expires_at is not None
        assert mailbox.oauth_access_expires_at > utcnow() + timedelta(minutes=30)
        first_token = mailbox.oauth_access_token_ciphertext
        # Pretend the access token is about to expire: the next run renews it.
        mailbox.oauth_access_expires_at = utcnow() + timedelta(minutes=1)
    assert check_and_enable(connected.store, connected.box, mailbox_id).ok
    with connected.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        assert mailbox.oauth_access_token_ciphertext != first_token

    # The owner revoked crmsync's access: a permanent error that says to sign in again.
    oauth_server.revoke(refresh_token)
    with connected.store.transaction() as session:
        mailbox = session.get(Mailbox, mailbox_id)
        assert mailbox is not None
        mailbox.oauth_access_expires_at = utcnow()
    failed = check_and_enable(connected.store, connected.box, mailbox_id)
    assert not failed.ok
    assert failed.steps[0]["code"] == "OAUTH_REFRESH_FAILED"
    assert refresh_token not in str(failed.steps)

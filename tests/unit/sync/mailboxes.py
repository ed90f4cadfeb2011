"""An approved mailbox whose incoming channel is enabled, on an IMAP profile: what an
engine's pass needs to run, for tests that run one without a real server."""

from __future__ import annotations

import uuid

from crmsync.core.types import Approval, Channel, ConnectionSecurity, ServerType
from crmsync.crm.mailboxes import create_mailbox_for
from crmsync.crm.models import EmailServerProfile, User
from crmsync.crm.secrets import SecretBox
from tests.conftest import Org


def runnable_imap_mailbox(
    org: Org, box: SecretBox, *, password: bool = True, address: str | None = None
) -> uuid.UUID:
    """Owned by a new user ``ann``, who logs in as ``ann`` / ``secret`` (no password
    stored with ``password=False``)."""
    with org.store.transaction() as session:
        profile = EmailServerProfile(
            organisation_id=org.organisation_id,
            owner_id=org.admin_id,
            owning_business_unit_id=org.root_unit_id,
            name="IMAP",
            server_type=ServerType.IMAP_SMTP,
            incoming_host="imap.example.test",
            incoming_port=993,
            incoming_security=ConnectionSecurity.IMPLICIT_TLS,
        )
        session.add(profile)
        user = session.get(User, org.add_user(session, "ann"))
        mailbox = create_mailbox_for(session, user=user)
        mailbox.profile = profile
        if address is not None:
            mailbox.email_address = address
        mailbox.username = "ann"
        mailbox.password_ciphertext = box.encrypt("secret") if password else None
        mailbox.approval = Approval.APPROVED
        mailbox.channel(Channel.INCOMING).enabled = True
        session.flush()
        return mailbox.id

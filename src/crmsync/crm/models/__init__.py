"""All mapped classes, importable from one place (Alembic reads ``Base.metadata`` here)."""

from crmsync.crm.db import Base
from crmsync.crm.models.activities import (
    Activity,
    ActivityParty,
    Appointment,
    Attachment,
    Blob,
    Email,
    Task,
)
from crmsync.crm.models.mail import (
    Alert,
    EmailServerProfile,
    ItemFailure,
    Mailbox,
    MailboxChannel,
    MailboxTest,
)
from crmsync.crm.models.org import (
    ApiToken,
    BusinessUnit,
    LoginThrottle,
    Organisation,
    Queue,
    RolePrivilege,
    SecurityRole,
    Team,
    User,
    UserAddress,
)
from crmsync.crm.models.records import (
    Account,
    Case,
    Contact,
    CustomerRecord,
    Lead,
    Opportunity,
)
from crmsync.crm.models.sharing import EmailAddressEntry, RecordShare
from crmsync.crm.models.stats import SyncPass
from crmsync.crm.models.sync_state import (
    EmailKey,
    FolderCursor,
    MailboxMessage,
    Pop3Seen,
    QueueItem,
    TokenCounter,
)

__all__ = [
    "Account",
    "Activity",
    "ActivityParty",
    "Alert",
    "ApiToken",
    "Appointment",
    "Attachment",
    "Base",
    "Blob",
    "BusinessUnit",
    "Case",
    "Contact",
    "CustomerRecord",
    "Email",
    "EmailAddressEntry",
    "EmailKey",
    "EmailServerProfile",
    "FolderCursor",
    "ItemFailure",
    "Lead",
    "LoginThrottle",
    "Mailbox",
    "MailboxChannel",
    "MailboxMessage",
    "MailboxTest",
    "Opportunity",
    "Organisation",
    "Pop3Seen",
    "Queue",
    "QueueItem",
    "RecordShare",
    "RolePrivilege",
    "SecurityRole",
    "SyncPass",
    "Task",
    "Team",
    "TokenCounter",
    "User",
    "UserAddress",
]

"""The shared vocabulary: record types, privileges, depths, states, channels, protocols.

Every layer names these the same way; this module imports nothing of crmsync and no ORM.

Modes are Enums, never magic strings. Values are stored as their ``value`` strings, so the
database stays readable and portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum


class RecordType(enum.StrEnum):
    ORGANISATION = "organisation"
    BUSINESS_UNIT = "business_unit"
    USER = "user"
    TEAM = "team"
    ROLE = "role"
    QUEUE = "queue"
    ACCOUNT = "account"
    CONTACT = "contact"
    LEAD = "lead"
    OPPORTUNITY = "opportunity"
    CASE = "case"
    EMAIL = "email"
    APPOINTMENT = "appointment"
    TASK = "task"
    EMAIL_SERVER_PROFILE = "email_server_profile"
    MAILBOX = "mailbox"


CUSTOMER_RECORD_TYPES = (
    RecordType.ACCOUNT,
    RecordType.CONTACT,
    RecordType.LEAD,
    RecordType.OPPORTUNITY,
    RecordType.CASE,
)
ACTIVITY_TYPES = (RecordType.EMAIL, RecordType.APPOINTMENT, RecordType.TASK)


class Privilege(enum.StrEnum):
    CREATE = "create"
    READ = "read"
    WRITE = "write"
    DELETE = "delete"
    APPEND = "append"
    APPEND_TO = "append_to"
    ASSIGN = "assign"


class Depth(enum.StrEnum):
    """How far a privilege reaches, from the record owner's point of view."""

    USER = "user"
    BUSINESS_UNIT = "business_unit"
    ORGANISATION = "organisation"

    @property
    def rank(self) -> int:
        return _DEPTH_RANK[self]


_DEPTH_RANK = {Depth.USER: 1, Depth.BUSINESS_UNIT: 2, Depth.ORGANISATION: 3}


class ActivityState(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELED = "canceled"


class Direction(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"


class EmailStatus(enum.StrEnum):
    DRAFT = "draft"
    COMPLETED = "completed"
    SENT = "sent"
    RECEIVED = "received"
    CANCELED = "canceled"
    PENDING_SEND = "pending_send"
    SENDING = "sending"
    FAILED = "failed"


class CorrelationMethod(enum.StrEnum):
    NONE = "none"
    IN_REPLY_TO = "in_reply_to"
    TRACKING_TOKEN = "tracking_token"  # noqa: S105 - a method name, not a secret
    CONVERSATION_INDEX = "conversation_index"
    SMART_MATCHING = "smart_matching"
    MANUAL = "manual"


class Participation(enum.StrEnum):
    FROM = "from"
    TO = "to"
    CC = "cc"
    BCC = "bcc"
    ORGANIZER = "organizer"
    REQUIRED_ATTENDEE = "required_attendee"
    OPTIONAL_ATTENDEE = "optional_attendee"
    OWNER = "owner"


class RecordState(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"


class Protocol(enum.StrEnum):
    """What a channel speaks to its server."""

    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"
    EWS = "ews"
    GRAPH = "graph"

    @property
    def is_internet_mail(self) -> bool:
        """IMAP or POP3: an incoming protocol that sends through SMTP beside it."""
        return self in (Protocol.IMAP, Protocol.POP3)


class ServerType(enum.StrEnum):
    IMAP_SMTP = "imap_smtp"
    POP3_SMTP = "pop3_smtp"
    EXCHANGE_SERVER = "exchange_server"  # EWS, on premises
    EXCHANGE_ONLINE = "exchange_online"  # Microsoft Graph
    GMAIL = "gmail"  # IMAP/SMTP preset
    OUTLOOK_COM = "outlook_com"  # IMAP/SMTP preset

    @property
    def incoming_protocol(self) -> Protocol:
        """IMAP, POP3, EWS or GRAPH."""
        return _INCOMING_PROTOCOL[self]


_INCOMING_PROTOCOL = {
    ServerType.IMAP_SMTP: Protocol.IMAP,
    ServerType.POP3_SMTP: Protocol.POP3,
    ServerType.EXCHANGE_SERVER: Protocol.EWS,
    ServerType.EXCHANGE_ONLINE: Protocol.GRAPH,
    ServerType.GMAIL: Protocol.IMAP,
    ServerType.OUTLOOK_COM: Protocol.IMAP,
}


class ConnectionSecurity(enum.StrEnum):
    IMPLICIT_TLS = "implicit_tls"
    STARTTLS = "starttls"
    PLAIN = "plain"  # only when the profile explicitly allows it


class AuthMethod(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105 - a method name, not a secret
    OAUTH2 = "oauth2"


class OutgoingAuth(enum.StrEnum):
    """How crmsync authenticates to a profile's SMTP server."""

    SAME_AS_INCOMING = "same_as_incoming"  # AUTH with the credentials of the incoming side
    # No AUTH at all: an on-premises relay that accepts mail from trusted addresses. Only
    # ever set by an administrator's explicit choice, never assumed from the server.
    NONE = "none"


class CredentialScope(enum.StrEnum):
    MAILBOX = "mailbox"  # each mailbox has its own credentials
    PROFILE = "profile"  # the profile's credentials have rights over every mailbox


class IncomingMethod(enum.StrEnum):
    SERVER_SIDE_SYNC = "server_side_sync"
    FORWARD_MAILBOX = "forward_mailbox"
    NONE = "none"


class SyncMethod(enum.StrEnum):
    """Outgoing email and appointments/contacts/tasks: synchronized by the server, or not."""

    SERVER_SIDE_SYNC = "server_side_sync"
    NONE = "none"


class Approval(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Channel(enum.StrEnum):
    INCOMING = "incoming"
    OUTGOING = "outgoing"
    ACT = "act"  # appointments, contacts and tasks


class ChannelStatus(enum.StrEnum):
    NOT_RUN = "not_run"
    SUCCESS = "success"
    FAILURE = "failure"


class AlertSeverity(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFORMATION = "information"


class AlertState(enum.StrEnum):
    """Where an alert is in its life (crm/alerts.py draws the diagram)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # someone said "I am on it"; still a live problem
    DISMISSED = "dismissed"  # someone said "not a problem"; hidden from the wall
    RESOLVED = "resolved"  # its cause is gone


class AlertCause(enum.StrEnum):
    """What must happen for an alert to resolve itself; None on an alert that never does."""

    CHANNEL_FAILING = "channel_failing"  # the mailbox channel succeeds again
    PROFILE_FAILING = "profile_failing"  # most of the profile's mailboxes no longer fail


class ItemResolution(enum.StrEnum):
    """How an item failure left the triage queue."""

    TRACKED = "tracked"  # re-run and tracked
    PROCESSED = "processed"  # re-run; the engine chose not to track it (reason kept)
    IGNORED = "ignored"  # a person decided to leave it


class TokenKind(enum.StrEnum):
    """What an ``ApiToken`` row is; which kinds a route accepts is crm/auth.py's to say."""

    API = "api"  # a person's long-lived token for scripts: every API route
    SESSION = "session"  # a web login: every API route
    PANEL = "panel"  # the side panel's token: the panel routes (/api/v1/panel/...) only
    # A one-time code typed into the side panel and exchanged for a PANEL token
    # (crm/connect.py). It authenticates nothing.
    CONNECT_CODE = "connect_code"


class TrackingScope(enum.StrEnum):
    """Which incoming email a mailbox tracks (the owner's choice; tracking/filters decides)."""

    ALL = "all"
    REPLIES_TO_CRM = "replies_to_crm"  # the default
    FROM_CRM_RECORDS = "from_crm_records"  # leads, contacts, accounts
    FROM_EMAIL_ENABLED = "from_email_enabled"  # any email-enabled record: also users, queues
    NONE = "none"


class Automation(enum.StrEnum):
    """Why a message was sent by a program rather than a person (tracking/filters)."""

    BOUNCE = "bounce"  # a delivery status notification
    AUTO_REPLY = "auto-reply"  # an out-of-office or other automatic answer
    AUTO_SUBMITTED = "auto-submitted"  # RFC 3834: generated by a program
    MAILING_LIST = "mailing-list"  # a list or bulk mail


class TrackRule(enum.StrEnum):
    """The rule that decided an incoming message's fate (crmsync.core.why.Why.rule)."""

    # It became an email:
    IN_SCOPE = "in_scope"  # the owner's scope takes it: all email, or its sender's record
    CORRELATED = "correlated"  # it continues a tracked email (every scope but none)
    TRACKED_BY_HAND = "tracked_by_hand"  # a person tracked it
    # It joined an email:
    COPY_TRACKED = "copy_tracked"  # the same message is tracked already, from another mailbox
    # It was left out:
    UNTRACKED_BY_PERSON = "untracked_by_person"  # a person untracked it: never again
    BEFORE_CUTOFF = "before_cutoff"  # received before the profile's "process email after"
    BOUNCE_OF_CRM_EMAIL = "bounce_of_crm_email"  # it marked the CRM email it reports on
    AUTOMATED = "automated"  # sent by a program (Automation says which kind)
    BLOCKED_SENDER = "blocked_sender"  # its sender is on the organisation's block list
    TRACKING_DISABLED = "tracking_disabled"  # the owner tracks no email
    OUT_OF_SCOPE = "out_of_scope"  # the owner's scope does not take it

    @property
    def tracks(self) -> bool:
        """Whether the message is tracked under this rule (as its own email or a copy)."""
        return self in _TRACKING_RULES


_TRACKING_RULES = frozenset(
    {
        TrackRule.IN_SCOPE,
        TrackRule.CORRELATED,
        TrackRule.TRACKED_BY_HAND,
        TrackRule.COPY_TRACKED,
    }
)


class AttachmentRefusal(enum.StrEnum):
    """Why an attachment of a tracked email was not kept."""

    BLOCKED_TYPE = "blocked_type"  # its extension is on the organisation's list
    TOO_LARGE = "too_large"  # over the organisation's size limit

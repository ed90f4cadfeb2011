"""The vocabulary of the record store: record types, privileges, depths, states.

Modes are Enums, never magic strings. Values are stored as their ``value`` strings, so the
database stays readable and portable between SQLite and PostgreSQL.
"""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import Enum as SAEnum


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


class TokenKind(enum.StrEnum):
    API = "api"
    SESSION = "session"


def db_enum(enum_class: type[enum.Enum], length: int = 32) -> SAEnum:
    """A portable string column for an Enum: stores values, no native DB enum type."""

    def values(members: Any) -> list[str]:
        return [str(member.value) for member in members]

    return SAEnum(
        enum_class,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=values,
        validate_strings=True,
    )

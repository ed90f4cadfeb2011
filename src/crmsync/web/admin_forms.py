"""The email server profile and mailbox forms: which fields, and what a posted form means.

A form is a tuple of ``FormField``s in sections; the template draws each by its ``kind``
(text, number, select, checkbox, textarea, secret, datetime). ``parse`` turns posted
fields into the values the crm/ services take (``profiles.create_profile``,
``profiles.update_profile``, ``mailboxes.update_mailbox``), checked against the API's
own schemas (``ProfileCreate``, ``ProfileUpdate``, ``MailboxUpdate``) so a page accepts
exactly what the API does::

    parsed = parse(PROFILE_FIELDS, form, schema=ProfileUpdate, creating=False)
    parsed.values   # {"incoming_port": 993, "allow_plaintext": False, ...}
    parsed.errors   # {"incoming_port": "Enter a whole number"}
    parsed.shown    # what to put back into the form: everything typed, secrets excepted

Credentials are write-only: a ``secret`` field is never filled in; left empty it is not
sent, so what is stored stays (the form says "set — leave empty to keep"); its "remove"
box sends ``None``.

``saved`` runs the service call in a savepoint and puts its refusal next to the field it
names, so a page shows the form again with it.

Must never put a secret into ``shown`` or anything else a page renders.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from crmsync.api.schemas.mail import MailboxUpdate, ProfileSettings
from crmsync.core.types import (
    AuthMethod,
    ConnectionSecurity,
    CredentialScope,
    IncomingMethod,
    OutgoingAuth,
    ServerType,
    SyncMethod,
)
from crmsync.crm.errors import CrmError, NotFound

Choices = tuple[tuple[str, str], ...]

SERVER_TYPES: Choices = (
    (ServerType.IMAP_SMTP.value, "IMAP and SMTP"),
    (ServerType.POP3_SMTP.value, "POP3 and SMTP"),
    (ServerType.EXCHANGE_SERVER.value, "Exchange Server (EWS)"),
    (ServerType.EXCHANGE_ONLINE.value, "Exchange Online (Microsoft Graph)"),
    (ServerType.GMAIL.value, "Gmail"),
    (ServerType.OUTLOOK_COM.value, "Outlook.com"),
)
SECURITY: Choices = (
    (ConnectionSecurity.IMPLICIT_TLS.value, "Implicit TLS"),
    (ConnectionSecurity.STARTTLS.value, "STARTTLS"),
    (ConnectionSecurity.PLAIN.value, "Plain (no encryption)"),
)
AUTH_METHODS: Choices = (
    (AuthMethod.PASSWORD.value, "Password"),
    (AuthMethod.OAUTH2.value, "OAuth 2.0"),
)
OUTGOING_AUTH: Choices = (
    (OutgoingAuth.SAME_AS_INCOMING.value, "Log in, with the incoming server's credentials"),
    (OutgoingAuth.NONE.value, "No authentication (a relay that trusts this server)"),
)
CREDENTIAL_SCOPES: Choices = (
    (CredentialScope.MAILBOX.value, "Each mailbox has its own"),
    (CredentialScope.PROFILE.value, "The profile's own, for every mailbox (impersonation)"),
)
INCOMING_METHODS: Choices = (
    (IncomingMethod.SERVER_SIDE_SYNC.value, "Server-side sync"),
    (IncomingMethod.FORWARD_MAILBOX.value, "Forward mailbox"),
    (IncomingMethod.NONE.value, "None"),
)
SYNC_METHODS: Choices = (
    (SyncMethod.SERVER_SIDE_SYNC.value, "Server-side sync"),
    (SyncMethod.NONE.value, "None"),
)


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    kind: str = "text"  # text · number · select · checkbox · textarea · secret · datetime
    help: str = ""
    choices: Choices = ()
    required: bool = False
    # A field the form shows but never sends (the mailbox's profile choice is built
    # separately; a field only set on creation).
    only_on_create: bool = False


@dataclass(frozen=True)
class Section:
    title: str
    fields: tuple[FormField, ...]
    help: str = ""


PROFILE_SECTIONS: tuple[Section, ...] = (
    Section(
        "Profile",
        (
            FormField("name", "Name", required=True),
            FormField(
                "server_type",
                "Server type",
                "select",
                "Gmail and Outlook.com fill in their servers and OAuth endpoints.",
                SERVER_TYPES,
                required=True,
                only_on_create=True,
            ),
            FormField(
                "is_default", "Default profile", "checkbox", "New users' mailboxes get this one."
            ),
        ),
    ),
    Section(
        "Incoming server",
        (
            FormField("incoming_host", "Host", help="IMAP or POP3 server, e.g. imap.acme.test"),
            FormField("incoming_port", "Port", "number", "Empty: the usual port for the security."),
            FormField("incoming_security", "Security", "select", choices=SECURITY),
        ),
    ),
    Section(
        "Outgoing server",
        (
            FormField("outgoing_host", "Host", help="SMTP server, e.g. smtp.acme.test"),
            FormField("outgoing_port", "Port", "number", "Empty: the usual port for the security."),
            FormField("outgoing_security", "Security", "select", choices=SECURITY),
            FormField(
                "outgoing_auth",
                "Authentication",
                "select",
                "Choose no authentication only for a relay on your own network that accepts "
                "mail from this server's address: it sends whatever crmsync gives it, as "
                "anyone, and nobody's password is checked.",
                choices=OUTGOING_AUTH,
            ),
            FormField(
                "save_sent_copy",
                "Save a copy in Sent",
                "checkbox",
                "Off for servers that file sent mail themselves (Gmail, Outlook.com).",
            ),
        ),
    ),
    Section(
        "Exchange",
        (FormField("exchange_url", "EWS address", help="Exchange Server only."),),
    ),
    Section(
        "Connection security",
        (
            FormField(
                "allow_plaintext",
                "Allow plain connections",
                "checkbox",
                "Only for a server on this machine or a trusted network.",
            ),
            FormField("verify_certificates", "Verify certificates", "checkbox"),
            FormField(
                "ca_pem",
                "CA bundle (PEM)",
                "textarea",
                "The authorities that signed the servers' certificates, if not a public one.",
            ),
        ),
    ),
    Section(
        "Authentication",
        (
            FormField("auth_method", "Method", "select", choices=AUTH_METHODS),
            FormField("credential_scope", "Credentials", "select", choices=CREDENTIAL_SCOPES),
            FormField("username", "Profile user name", help="For the profile's own credentials."),
            FormField("password", "Profile password", "secret"),
            FormField(
                "impersonation_format",
                "Impersonation format",
                help="How the profile's account logs in as a mailbox, e.g. {mailbox}*{username}",
            ),
        ),
    ),
    Section(
        "OAuth 2.0",
        (
            FormField("oauth_client_id", "Client id"),
            FormField("oauth_client_secret", "Client secret", "secret"),
            FormField("oauth_token_url", "Token endpoint"),
            FormField("oauth_authorize_url", "Authorization endpoint"),
            FormField("oauth_scopes", "Scopes", help="Separated by spaces."),
            FormField("oauth_tenant", "Tenant", help="Exchange Online only."),
        ),
    ),
    Section(
        "Processing",
        (
            FormField(
                "process_email_after",
                "Process email received after",
                "datetime",
                "UTC. Empty: all email.",
            ),
            FormField("min_polling_seconds", "Minimum polling interval (seconds)", "number"),
            FormField("max_concurrent_connections", "Maximum concurrent connections", "number"),
            FormField("connection_timeout_seconds", "Connection timeout (seconds)", "number"),
            FormField("move_failed_to_folder", "Move failed messages to folder"),
            FormField(
                "alert_on_majority_failure",
                "Alert when most mailboxes fail",
                "checkbox",
            ),
        ),
    ),
)

MAILBOX_SECTIONS: tuple[Section, ...] = (
    Section(
        "Mailbox",
        (
            FormField(
                "email_address",
                "Email address",
                help="Changing it sends the mailbox back to approval.",
            ),
            FormField("profile_id", "Email server profile", "select"),
        ),
    ),
    Section(
        "Synchronisation",
        (
            FormField("incoming_method", "Incoming email", "select", choices=INCOMING_METHODS),
            FormField("outgoing_method", "Outgoing email", "select", choices=SYNC_METHODS),
            FormField(
                "act_method", "Appointments, contacts and tasks", "select", choices=SYNC_METHODS
            ),
            FormField(
                "delete_after_processing",
                "Delete messages after processing",
                "checkbox",
                "Queue and forward mailboxes only.",
            ),
        ),
    ),
    Section(
        "Credentials",
        (
            FormField("username", "User name", help="If not the email address."),
            FormField("password", "Password", "secret"),
            FormField("oauth_refresh_token", "OAuth refresh token", "secret"),
        ),
        help="Changing them turns the channels off until Test & Enable passes again.",
    ),
)

NOT_A_NUMBER = "Enter a whole number"
NOT_A_TIME = "Enter a date and time"
FRIENDLY = {
    "string_pattern_mismatch": "Enter a host name or address, without spaces or slashes",
    "missing": "Required",
    "enum": "Choose one of the offered values",
}


def fields_of(sections: Sequence[Section]) -> list[FormField]:
    return [item for section in sections for item in section.fields]


@dataclass
class Parsed:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    shown: dict[str, Any] = field(default_factory=dict)


Saved = TypeVar("Saved")


def saved(session: Session, parsed: Parsed, change: Callable[[], Saved]) -> Saved | None:
    """``change()``'s result, run in a savepoint: a refused change leaves nothing
    half-applied in the session. A refusal (a CrmError but NotFound, which is raised on)
    goes into ``parsed.errors`` under the field it names, or ``__all__``; then None."""
    try:
        with session.begin_nested():
            return change()
    except NotFound:
        raise
    except CrmError as exc:
        parsed.errors[str(exc.fields.get("field") or "__all__")] = exc.detail
        return None


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def parse(
    sections: Sequence[Section],
    form: Mapping[str, Any],
    *,
    schema: type[BaseModel],
    creating: bool,
) -> Parsed:
    """The posted ``form`` as service values, errors by field, and what to show again."""
    parsed = Parsed()
    for item in fields_of(sections):
        if item.only_on_create and not creating:
            continue
        name = item.name
        text = _text(form, name)
        if item.kind == "checkbox":
            parsed.values[name] = parsed.shown[name] = name in form
        elif item.kind == "secret":
            if f"{name}_remove" in form:
                parsed.values[name] = None
            elif text:
                parsed.values[name] = text
        elif item.kind == "number":
            parsed.shown[name] = text
            if text:
                if text.isdigit():
                    parsed.values[name] = int(text)
                else:
                    parsed.errors[name] = NOT_A_NUMBER
            elif not creating:
                parsed.values[name] = None
        elif item.kind == "datetime":
            parsed.shown[name] = text
            if text:
                try:
                    when = datetime.fromisoformat(text)
                except ValueError:
                    parsed.errors[name] = NOT_A_TIME
                else:
                    parsed.values[name] = when if when.tzinfo else when.replace(tzinfo=UTC)
            elif not creating:
                parsed.values[name] = None
        else:
            raw = form.get(name)
            # A textarea keeps its lines as typed; a one-line field loses stray spaces.
            value = raw if item.kind == "textarea" and isinstance(raw, str) else text
            parsed.shown[name] = value
            if value:
                parsed.values[name] = value
            elif not creating:
                parsed.values[name] = None
    _check(parsed, schema)
    return parsed


def _check(parsed: Parsed, schema: type[BaseModel]) -> None:
    """The schema's verdict on the values, each error on its field; on success the values
    become the schema's (UUIDs, enums, secrets unwrapped), as the API hands them on."""
    checked = {k: v for k, v in parsed.values.items() if k not in parsed.errors}
    for _ in range(2):  # once more without the clearings an update cannot make
        try:
            model = schema.model_validate(checked)
        except ValidationError as exc:
            cleared = False
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else "__all__"
                if name in checked and checked[name] is None:
                    # An emptied field the schema never takes empty: what is stored stays.
                    del checked[name]
                    cleared = True
                elif name not in parsed.errors:
                    kind = str(error.get("type", ""))
                    parsed.errors[name] = FRIENDLY.get(kind, str(error["msg"]))
            if cleared and not parsed.errors:
                continue
            break
        else:
            if not parsed.errors:
                parsed.values = _service_values(model)
            break
    for name in parsed.errors:
        parsed.values.pop(name, None)


def _service_values(model: BaseModel) -> dict[str, Any]:
    """The values the crm/ service takes, as the API route builds them."""
    if isinstance(model, ProfileSettings):
        return model.values(exclude_unset=True)
    if isinstance(model, MailboxUpdate):
        return model.values()
    return model.model_dump(exclude_unset=True)


def shown_from(record: Any, sections: Sequence[Section]) -> dict[str, Any]:
    """The form's initial values from a stored record; secrets are left out."""
    shown: dict[str, Any] = {}
    for item in fields_of(sections):
        if item.kind == "secret" or not hasattr(record, item.name):
            continue
        value = getattr(record, item.name)
        if item.kind == "checkbox":
            shown[item.name] = bool(value)
        elif item.kind == "datetime":
            shown[item.name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if value else ""
        elif value is None:
            shown[item.name] = ""
        else:
            shown[item.name] = str(getattr(value, "value", value))
    return shown

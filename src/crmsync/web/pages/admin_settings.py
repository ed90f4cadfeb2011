"""The administrators' home (/admin) and the organisation's settings (/admin/settings).

    GET  /admin            at a glance: mailboxes failing, pending approval and healthy;
                           open alerts by severity; unresolved item failures — each a link
                           to the page that lists them
    GET  /admin/settings   a form over ``OrganisationSettings``, each setting explained,
                           with a tracking token rendered from the current format
    POST /admin/settings   saves it (CSRF-checked): 303 back with "Saved", or the form
                           again (422) with every error next to its field and what was
                           typed kept

Both answer the 404 page to anyone who is not an administrator (``AdminViewer``); the
settings also to an administrator without the read privilege on the organisation (and
the form is read-only without the write privilege). Counts come from crm/overview.py,
settings from crm/organisation.py — the same rules and stored JSON as the API's
``/api/v1/organisation/settings``, which the sync engines read.

Must never store a value crm/organisation.py refuses, nor show another organisation's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from crmsync.api.deps import SessionDep
from crmsync.core.types import AlertSeverity
from crmsync.crm import organisation
from crmsync.crm.errors import Forbidden, NotFound
from crmsync.crm.organisation import InvalidSetting
from crmsync.crm.overview import overview
from crmsync.crm.settings import OrganisationSettings
from crmsync.tracking.compose import outgoing_subject
from crmsync.tracking.token import example_token
from crmsync.web import flash
from crmsync.web.deps import AdminViewer, Viewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

HOME_PATH = "/admin"
SETTINGS_PATH = "/admin/settings"
MIB = 1024 * 1024
EXAMPLE_SUBJECT = "Quote for May"


class Kind:
    """How a setting is typed into the form."""

    TEXT = "text"
    NUMBER = "number"
    MEGABYTES = "megabytes"  # stored in bytes, typed in MB (MiB)
    YES_NO = "yes_no"  # a checkbox: absent from the form means no
    LINES = "lines"  # a textarea, one entry a line


@dataclass(frozen=True)
class SettingField:
    """One setting of ``OrganisationSettings`` on the form."""

    name: str
    label: str
    help: str
    kind: str
    section: str
    minimum: int | None = None
    maximum: int | None = None


SECTIONS = (
    ("email", "Email crmsync sends"),
    ("blocking", "What is never tracked"),
    ("matching", "Matching replies"),
    ("limits", "Mailboxes and limits"),
)

FIELDS: tuple[SettingField, ...] = (
    SettingField(
        "email_domain",
        "Domain of Message-IDs",
        "Every email sent from the CRM gets a Message-ID such as "
        "<crm.3f2a…@your-domain>. A reply names it in its In-Reply-To header, which is "
        "how crmsync finds the email it answers. Use a domain your organisation owns; "
        "international names such as bücher.example are stored in their ASCII form.",
        Kind.TEXT,
        "email",
    ),
    SettingField(
        "use_tracking_token",
        "Add a tracking token to subjects",
        "The token ends the subject of email sent from the CRM, so a reply is matched "
        "even when the other side's mail client dropped the reply headers.",
        Kind.YES_NO,
        "email",
    ),
    SettingField(
        "tracking_token_prefix",
        "Token prefix",
        "What a token starts with: up to 20 characters, no spaces, not ending in a digit. "
        "Replies carrying a token of an earlier prefix are then matched by their headers "
        "only.",
        Kind.TEXT,
        "email",
    ),
    SettingField(
        "tracking_token_digits",
        "Token digits",
        "How many digits follow the prefix (3 to 12).",
        Kind.NUMBER,
        "email",
        3,
        12,
    ),
    SettingField(
        "blocked_senders",
        "Blocked senders",
        "One a line: an address (news@example.com) or a domain (example.com, which "
        "blocks its subdomains too). Email from them is never tracked. Stored in lower "
        "case, duplicates dropped; at most 1000.",
        Kind.LINES,
        "blocking",
    ),
    SettingField(
        "blocked_attachment_extensions",
        "Blocked attachment types",
        "File extensions, one a line (exe, js, …). Such attachments are not stored; the "
        "email is tracked without them and says so.",
        Kind.LINES,
        "blocking",
    ),
    SettingField(
        "use_conversation_index",
        "Use Outlook's conversation index",
        "Match a reply by the Thread-Index header Outlook and Exchange add.",
        Kind.YES_NO,
        "matching",
    ),
    SettingField(
        "smart_matching",
        "Smart matching",
        "Match a reply that has no usable headers or token by its subject and the people "
        "on it. Catches more replies, and now and then a wrong one.",
        Kind.YES_NO,
        "matching",
    ),
    SettingField(
        "smart_matching_min_participants",
        "Participants in common for smart matching",
        "How many senders and recipients a reply must share with the email it matches (1 to 10).",
        Kind.NUMBER,
        "matching",
        1,
        10,
    ),
    SettingField(
        "process_email_only_for_approved",
        "Sync approved mailboxes only",
        "A new mailbox waits until an administrator approves it on the Mailboxes page.",
        Kind.YES_NO,
        "limits",
    ),
    SettingField(
        "max_message_bytes",
        "Largest message (MB)",
        "Larger messages are neither fetched nor tracked; each becomes an item failure.",
        Kind.MEGABYTES,
        "limits",
    ),
    SettingField(
        "max_attachment_bytes",
        "Largest attachment (MB)",
        "Larger attachments are not stored; the email is tracked without them.",
        Kind.MEGABYTES,
        "limits",
    ),
    SettingField(
        "alert_retention_days",
        "Keep alerts (days)",
        "Alerts, and item failures once resolved, are deleted this many days after they "
        "were last seen (1 to 3650).",
        Kind.NUMBER,
        "limits",
        1,
        3650,
    ),
)
FIELD_NAMES = {field.name for field in FIELDS}
_WHOLE = re.compile(r"^[0-9]{1,12}$")
_DECIMAL = re.compile(r"^[0-9]{1,8}(\.[0-9]{1,6})?$")


# -- the home page ------------------------------------------------------------------------


@router.get(HOME_PATH, name="admin_home")
def admin_home(request: Request, viewer: AdminViewer, session: SessionDep) -> Response:
    counts = overview(session, viewer.principal)
    context = {
        "nav": "admin",
        "admin_section": "overview",
        "counts": counts,
        "severities": [(severity, counts.alerts.get(severity, 0)) for severity in AlertSeverity],
        "can_read_settings": organisation.may_read_settings(viewer.principal),
    }
    return render(request, "admin/home.html", context)


# -- the settings form --------------------------------------------------------------------


def _megabytes(value: int) -> str:
    """``26214400`` → ``'25'``; ``1536000`` → ``'1.464844'``."""
    if value % MIB == 0:
        return str(value // MIB)
    return f"{value / MIB:.6f}".rstrip("0").rstrip(".")


def _shown(field: SettingField, value: Any) -> str:
    if field.kind == Kind.YES_NO:
        return "true" if value else ""
    if field.kind == Kind.LINES:
        return "\n".join(value)
    if field.kind == Kind.MEGABYTES:
        return _megabytes(int(value))
    return str(value)


def _form_values(settings: OrganisationSettings) -> dict[str, str]:
    return {field.name: _shown(field, getattr(settings, field.name)) for field in FIELDS}


def _parse(field: SettingField, text: str, current: Any) -> Any:
    """The stored value of what was typed; ValueError with a sentence for the person."""
    text = text.strip() if field.kind != Kind.LINES else text
    if field.kind == Kind.YES_NO:
        return text == "true"
    if field.kind == Kind.LINES:
        return [line.strip() for line in text.splitlines()]
    if field.kind == Kind.NUMBER:
        if not _WHOLE.fullmatch(text):
            raise ValueError("Enter a whole number.")
        return int(text)
    if field.kind == Kind.MEGABYTES:
        if text == _megabytes(int(current)):
            return current  # unchanged: keep the exact byte count
        if not _DECIMAL.fullmatch(text):
            raise ValueError("Enter a number of megabytes, such as 25 or 0.5.")
        return round(float(text) * MIB)
    if not text:
        raise ValueError("This cannot be empty.")
    return text


def _message(field: SettingField, error: InvalidSetting) -> str:
    """The crm/ refusal as a sentence next to the field; a line named by its number."""
    where = str(error.fields.get("field", ""))
    found = re.search(r"\[(\d+)\]$", where)
    if field.kind == Kind.LINES and found:
        return f"Line {int(found.group(1)) + 1}: {error.detail}"
    if field.minimum is not None and field.maximum is not None:
        return f"Enter a whole number from {field.minimum} to {field.maximum}."
    detail = error.detail.split(": ", 1)[-1] if error.detail.startswith(where) else error.detail
    return detail[:1].upper() + detail[1:] + ("" if detail.endswith(".") else ".")


def _token_example(settings: OrganisationSettings) -> str:
    """A subject as the stored format sends it: ``'Quote for May CRM:0001234'``."""
    fmt = settings.token_format
    return outgoing_subject(EXAMPLE_SUBJECT, example_token(fmt), fmt)


def _settings_form(
    request: Request,
    viewer: Viewer,
    settings: OrganisationSettings,
    values: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "nav": "admin",
        "admin_section": "settings",
        "sections": SECTIONS,
        "fields": FIELDS,
        "values": values,
        "errors": errors or {},
        "example_subject": _token_example(settings),
        "token_on": settings.use_tracking_token,
        # The shape of what sync/outgoing_send.new_message_id makes: 128 random bits.
        "example_message_id": f"<crm.3f2a9c…@{settings.email_domain}>",
        "can_change": organisation.may_change_settings(viewer.principal),
    }
    return render(request, "admin/settings.html", context, status=status)


def _readable_settings(session: SessionDep, viewer: Viewer) -> OrganisationSettings:
    try:
        return organisation.get_settings(session, viewer.principal)
    except Forbidden as exc:
        # An administrator of mailboxes only: the page does not exist for them.
        raise NotFound("page", "") from exc


async def _posted_form(request: Request) -> FormData:
    # Starlette keeps the parsed form: the CSRF check has read it already.
    return await request.form()


PostedForm = Annotated[FormData, Depends(_posted_form)]


@router.get(SETTINGS_PATH, name="organisation_settings_page")
def settings_page(request: Request, viewer: AdminViewer, session: SessionDep) -> Response:
    settings = _readable_settings(session, viewer)
    return _settings_form(request, viewer, settings, _form_values(settings))


@router.post(SETTINGS_PATH, name="save_organisation_settings")
def save_settings(
    request: Request, viewer: AdminViewer, session: SessionDep, form: PostedForm
) -> Response:
    settings = _readable_settings(session, viewer)
    if not organisation.may_change_settings(viewer.principal):
        raise NotFound("page", "")
    stored = settings.model_dump(mode="json")
    typed: dict[str, str] = {}
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field in FIELDS:
        raw = form.get(field.name)
        typed[field.name] = raw if isinstance(raw, str) else ""
        try:
            value = _parse(field, typed[field.name], stored[field.name])
            # Each setting checked alone, so every error is shown at once, not the first.
            organisation.merged(stored, {field.name: value})
        except ValueError as exc:
            errors[field.name] = str(exc)
            continue
        except InvalidSetting as exc:
            errors[field.name] = _message(field, exc)
            continue
        changes[field.name] = value
    if not errors:
        try:
            organisation.update_settings(session, viewer.principal, changes)
        except InvalidSetting as exc:  # only together are they refused
            name = str(exc.fields.get("field", "")).split("[")[0].split(".")[0]
            errors[name if name in FIELD_NAMES else FIELDS[0].name] = exc.detail
    if errors:
        return _settings_form(request, viewer, settings, typed, errors, status=422)
    response = RedirectResponse(SETTINGS_PATH, status_code=303)
    flash.add(request, response, "Saved", level="success")
    return response

"""A person's own settings: tracking options, and their API and side panel tokens.

Tracking options (this section):

    GET  /options     a form over the viewer's own ``TrackingPreferences``
    POST /options     saves them (CSRF-checked): 303 back to /options with "Saved", or
                      the form again (422) with each error next to its field and every
                      choice made kept

Every field of ``TrackingPreferences`` is one group of choices in ``TRACKING_FIELDS``,
each choice with a sentence saying what it does (a yes/no field too: two explained
choices say more than a checkbox). Reads and writes go through ``crm/preferences.py``
(``my_preferences``, ``set_my_preferences``): the same rules and the same stored JSON as
the API's ``/api/v1/users/me/tracking-preferences``, which the incoming engine reads.

Must never change another person's or a queue's preferences, and never store a value
the form did not offer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from crmsync.api.deps import SessionDep
from crmsync.core.types import TrackingScope
from crmsync.crm.preferences import InvalidPreference, my_preferences, set_my_preferences
from crmsync.crm.settings import TrackingPreferences, UnknownSenderRecord
from crmsync.web import flash
from crmsync.web.deps import CurrentViewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

OPTIONS_PATH = "/options"


@dataclass(frozen=True)
class Choice:
    """One answer to an option: its form value, what it is called, what it does."""

    value: str
    title: str
    help: str


@dataclass(frozen=True)
class OptionField:
    """One field of ``TrackingPreferences`` as a group of choices."""

    name: str
    legend: str
    help: str
    choices: tuple[Choice, ...]

    def parse(self, value: str) -> Any:
        """The stored value of a choice: the enum's value, or a bool for yes/no."""
        if self.choices[0].value in ("true", "false"):
            return value == "true"
        return value

    def shown(self, stored: Any) -> str:
        """The form value of a stored value (``True`` → ``"true"``)."""
        if isinstance(stored, bool):
            return "true" if stored else "false"
        return str(getattr(stored, "value", stored))


TRACKING_FIELDS: tuple[OptionField, ...] = (
    OptionField(
        "track_scope",
        "Which email to track",
        "crmsync reads your mailbox and keeps the email you choose here on your customers' "
        "records. Replies to email already in the CRM are tracked under every choice but "
        "the last.",
        (
            Choice(
                TrackingScope.ALL.value,
                "All email",
                "Every email you receive is tracked, whoever sent it.",
            ),
            Choice(
                TrackingScope.REPLIES_TO_CRM.value,
                "Replies to CRM email",
                "Only answers to email that is already tracked, such as replies to what you "
                "sent from the CRM.",
            ),
            Choice(
                TrackingScope.FROM_CRM_RECORDS.value,
                "Email from CRM records",
                "Email from a lead, contact or account the CRM knows by its address, and "
                "replies to CRM email.",
            ),
            Choice(
                TrackingScope.FROM_EMAIL_ENABLED.value,
                "Email from email-enabled records",
                "As above, and email from colleagues and queues too: anyone in the CRM with "
                "an address.",
            ),
            Choice(
                TrackingScope.NONE.value,
                "No email",
                "Nothing from your mailbox is tracked automatically; you can still track an "
                "email by hand.",
            ),
        ),
    ),
    OptionField(
        "create_for_unknown_sender",
        "When a sender is unknown",
        "What to do when a tracked email comes from an address no record in the CRM has.",
        (
            Choice(
                UnknownSenderRecord.NONE.value,
                "Create nothing",
                "The email is tracked with the bare address; you can add it as a contact or "
                "lead later.",
            ),
            Choice(
                UnknownSenderRecord.CONTACT.value,
                "Create a contact",
                "A new contact, owned by you, is made from the sender's name and address.",
            ),
            Choice(
                UnknownSenderRecord.LEAD.value,
                "Create a lead",
                "A new lead, owned by you, is made from the sender's name and address.",
            ),
        ),
    ),
    OptionField(
        "leave_ambiguous_unresolved",
        "When an address belongs to several records",
        "Two contacts, or a contact and a lead, may share an address. What should a tracked "
        "email's sender or recipient be linked to then?",
        (
            Choice(
                "false",
                "Link every record with the address",
                "The email appears on the timeline of each of them.",
            ),
            Choice(
                "true",
                "Leave the address unresolved",
                "The email keeps the bare address; you choose the right record yourself.",
            ),
        ),
    ),
)


def _form_values(preferences: TrackingPreferences) -> dict[str, str]:
    return {field.name: field.shown(getattr(preferences, field.name)) for field in TRACKING_FIELDS}


def _tracking_form(
    request: Request,
    values: Mapping[str, str],
    errors: Mapping[str, str] | None = None,
    status: int = 200,
) -> Response:
    context = {
        "nav": "options",
        "fields": TRACKING_FIELDS,
        "values": values,
        "errors": errors or {},
    }
    return render(request, "options/tracking.html", context, status=status)


async def _posted_form(request: Request) -> FormData:
    # Starlette keeps the parsed form: the CSRF check has read it already, through the
    # body limit, so this is no second read of the body.
    return await request.form()


PostedForm = Annotated[FormData, Depends(_posted_form)]


@router.get(OPTIONS_PATH, name="tracking_options")
def tracking_options(request: Request, viewer: CurrentViewer, session: SessionDep) -> Response:
    preferences = my_preferences(session, viewer.principal)
    return _tracking_form(request, _form_values(preferences))


@router.post(OPTIONS_PATH, name="save_tracking_options")
def save_tracking_options(
    request: Request, viewer: CurrentViewer, session: SessionDep, form: PostedForm
) -> Response:
    submitted: dict[str, str] = {}
    errors: dict[str, str] = {}
    for field in TRACKING_FIELDS:
        value = form.get(field.name)
        if not isinstance(value, str) or not value:
            errors[field.name] = "Choose one of these."
            continue
        submitted[field.name] = value
        if value not in {choice.value for choice in field.choices}:
            errors[field.name] = "That is not one of the choices. Choose one of these."
    if not errors:
        changes = {field.name: field.parse(submitted[field.name]) for field in TRACKING_FIELDS}
        try:
            set_my_preferences(session, viewer.principal, changes)
        except InvalidPreference as exc:  # TrackingPreferences refused what the form offered
            name = str(exc.fields.get("field", "")).split(".")[0]
            errors[name if name in submitted else TRACKING_FIELDS[0].name] = (
                "That is not one of the choices. Choose one of these."
            )
    if errors:
        return _tracking_form(request, submitted, errors, status=422)
    response = RedirectResponse(OPTIONS_PATH, status_code=303)
    flash.add(request, response, "Saved", level="success")
    return response

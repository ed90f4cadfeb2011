"""Email server profiles for administrators: the list, and the form to create or edit one.

    GET  /admin/profiles             every profile the viewer may read
    GET  /admin/profiles/new         an empty form (server type first: presets fill the rest)
    POST /admin/profiles             creates it: 303 to its page, or 422 with the form again
    GET  /admin/profiles/{id}        its form
    POST /admin/profiles/{id}        saves it: 303, or 422 with each error next to its field

What a form means is web/admin_forms.py's ``parse``, checked by the API's own schemas; the
change is made by crm/profiles.py with the viewer's principal, as the API makes it, so
presets, port defaults, the single default profile and every validation rule hold.

Must never render a stored password or client secret (the form says whether one is set),
and never answer anything but the 404 page to a non-administrator.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from crmsync.api.deps import SecretBoxDep, SessionDep
from crmsync.api.schemas.mail import ProfileCreate, ProfileUpdate
from crmsync.core.types import Privilege, ServerType
from crmsync.crm import access, profiles
from crmsync.crm.errors import NotFound
from crmsync.crm.models.mail import EmailServerProfile, Mailbox
from crmsync.web import flash
from crmsync.web.admin_forms import PROFILE_SECTIONS, Parsed, parse, saved, shown_from
from crmsync.web.deps import AdminViewer, Viewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

PROFILES_PATH = "/admin/profiles"
# What a new profile's form starts with: the model's defaults.
NEW_PROFILE: dict[str, Any] = {
    "server_type": "imap_smtp",
    "incoming_security": "implicit_tls",
    "outgoing_security": "starttls",
    "outgoing_auth": "same_as_incoming",
    "verify_certificates": True,
    "alert_on_majority_failure": True,
    "save_sent_copy": True,
    "auth_method": "password",
    "credential_scope": "mailbox",
    "impersonation_format": "{mailbox}*{username}",
    "min_polling_seconds": "60",
    "max_concurrent_connections": "10",
    "connection_timeout_seconds": "30",
}


def profile_path(profile_id: uuid.UUID) -> str:
    return f"{PROFILES_PATH}/{profile_id}"


def _profile(
    session: Session, viewer: Viewer, profile_id: uuid.UUID, privilege: Privilege
) -> EmailServerProfile:
    profile = session.get(EmailServerProfile, profile_id)
    if profile is None:
        raise NotFound("email_server_profile", profile_id)
    access.require(session, viewer.principal, profile, privilege)
    return profile


@router.get(PROFILES_PATH)
def profile_list(request: Request, viewer: AdminViewer, session: SessionDep) -> Response:
    query = select(EmailServerProfile).where(access.visible(EmailServerProfile, viewer.principal))
    found = session.scalars(query.order_by(EmailServerProfile.name)).all()
    counts = {
        profile.id: len(
            session.scalars(select(Mailbox.id).where(Mailbox.profile_id == profile.id)).all()
        )
        for profile in found
    }
    context = {"nav": "admin", "profiles": found, "counts": counts}
    return render(request, "admin/profiles.html", context)


def _form(
    request: Request,
    profile: EmailServerProfile | None,
    shown: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> Response:
    context = {
        "nav": "admin",
        "profile": profile,
        "sections": PROFILE_SECTIONS,
        "choices": {},
        "shown": shown,
        "errors": errors,
        "secrets_set": {
            "password": bool(profile and profile.password_ciphertext),
            "oauth_client_secret": bool(profile and profile.oauth_client_secret_ciphertext),
        },
        "creating": profile is None,
    }
    return render(request, "admin/profiles_form.html", context, status=status)


@router.get(PROFILES_PATH + "/new")
def new_profile(request: Request, viewer: AdminViewer) -> Response:
    return _form(request, None, dict(NEW_PROFILE), {})


def _keep_presets(parsed: Parsed) -> None:
    """On creation, a yes/no left as the model's default lets the server type's preset
    decide (Gmail files sent mail itself, so its preset turns the Sent copy off)."""
    preset = profiles.PRESETS.get(ServerType(parsed.values["server_type"]), {})
    for name, value in list(parsed.values.items()):
        if name in preset and isinstance(value, bool) and value == NEW_PROFILE.get(name):
            del parsed.values[name]


@router.post(PROFILES_PATH)
async def create_profile(
    request: Request, viewer: AdminViewer, session: SessionDep, box: SecretBoxDep
) -> Response:
    form = await request.form()
    parsed = parse(PROFILE_SECTIONS, form, schema=ProfileCreate, creating=True)
    if not parsed.errors:
        _keep_presets(parsed)
        profile = saved(
            session,
            parsed,
            lambda: profiles.create_profile(session, viewer.principal, parsed.values, box),
        )
    if parsed.errors or profile is None:
        return _form(request, None, parsed.shown, parsed.errors, status=422)
    response = RedirectResponse(profile_path(profile.id), status_code=303)
    flash.add(request, response, f"Profile {profile.name} created.", level="success")
    return response


@router.get(PROFILES_PATH + "/{profile_id}")
def profile_page(
    request: Request, profile_id: uuid.UUID, viewer: AdminViewer, session: SessionDep
) -> Response:
    profile = _profile(session, viewer, profile_id, Privilege.READ)
    return _form(request, profile, shown_from(profile, PROFILE_SECTIONS), {})


@router.post(PROFILES_PATH + "/{profile_id}")
async def save_profile(
    request: Request,
    profile_id: uuid.UUID,
    viewer: AdminViewer,
    session: SessionDep,
    box: SecretBoxDep,
) -> Response:
    profile = _profile(session, viewer, profile_id, Privilege.WRITE)
    form = await request.form()
    parsed = parse(PROFILE_SECTIONS, form, schema=ProfileUpdate, creating=False)
    if not parsed.errors:
        saved(
            session,
            parsed,
            lambda: profiles.update_profile(session, viewer.principal, profile, parsed.values, box),
        )
        if parsed.errors:  # refused: show what is stored, with the error
            session.refresh(profile)
    if parsed.errors:
        shown = {**parsed.shown, "server_type": profile.server_type.value}
        return _form(request, profile, shown, parsed.errors, status=422)
    response = RedirectResponse(profile_path(profile_id), status_code=303)
    flash.add(request, response, f"Profile {profile.name} saved.", level="success")
    return response

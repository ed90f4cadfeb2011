"""Logging in and out of the web app.

``GET /login`` shows the form (with an Organisation field only when the instance serves
several); ``POST /login`` logs in through ``api.sessions.log_in`` — the very function the
API's login calls, so throttling and lockout are the same — sets the same cookies and
goes on to ``next`` (a path of this site, else ``/``). A wrong password, a lockout or a
missing field shows the form again, with the username kept and the password not.
``POST /logout`` (the form in the layout, CSRF-checked) revokes the session and clears
the cookies.

Login itself needs no CSRF token (there is no session yet): ``api.csrf.check_request``
refuses a POST whose Origin or Referer names another site, which stops login CSRF.

Must never echo a password back, nor say whether a username exists.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from crmsync.api.deps import SessionDep, SettingsDep, StoreDep
from crmsync.api.sessions import clear_session_cookies, end_session, log_in, set_session_cookies
from crmsync.crm.auth import find_login_organisation
from crmsync.crm.errors import AuthenticationFailed, RuleViolation
from crmsync.crm.store import Store
from crmsync.crm.throttle import TooManyAttempts
from crmsync.web import flash
from crmsync.web.deps import LOGIN_PATH, CurrentViewer, OptionalViewer, SessionToken, safe_next
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

MAX_FIELD = 200  # as the API's LoginRequest


def several_organisations(store: Store) -> bool:
    with store.transaction() as session:
        try:
            find_login_organisation(session, None)
        except RuleViolation:
            return True
    return False


def _form(
    request: Request,
    store: Store,
    *,
    next_path: str,
    username: str = "",
    organisation: str = "",
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context = {
        "next": next_path,
        "username": username,
        "organisation": organisation,
        "ask_organisation": bool(organisation) or several_organisations(store),
        "error": error,
    }
    return render(request, "login.html", context, status=status, headers=headers)


@router.get(LOGIN_PATH)
def login_page(
    request: Request,
    store: StoreDep,
    viewer: OptionalViewer,
    next_path: Annotated[str, Query(alias="next")] = "/",
) -> Response:
    target = safe_next(next_path)
    if viewer is not None:
        return RedirectResponse(target, status_code=303)
    return _form(request, store, next_path=target)


@router.post(LOGIN_PATH)
def login_submit(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    organisation: Annotated[str, Form()] = "",
    next_path: Annotated[str, Form(alias="next")] = "/",
) -> Response:
    target = safe_next(next_path)
    username = username.strip()
    organisation = organisation.strip()

    def again(error: str, status: int, headers: dict[str, str] | None = None) -> Response:
        return _form(
            request,
            store,
            next_path=target,
            username=username[:MAX_FIELD],
            organisation=organisation[:MAX_FIELD],
            error=error,
            status=status,
            headers=headers,
        )

    if not username or not password:
        return again("Enter your username and password.", 422)
    if max(len(username), len(password), len(organisation)) > MAX_FIELD:
        return again("Wrong username or password.", 401)
    try:
        started = log_in(
            request,
            store,
            settings,
            username=username,
            password=password,
            organisation=organisation or None,
        )
    except TooManyAttempts as exc:
        wait = exc.retry_after
        message = f"Too many failed logins. Try again in {wait} seconds."
        return again(message, 429, {"Retry-After": str(wait)})
    except AuthenticationFailed:
        return again("Wrong username or password.", 401)
    except RuleViolation as exc:
        # ORGANISATION_REQUIRED: several organisations, none named.
        return again(exc.detail + ".", 422)
    response = RedirectResponse(target, status_code=303)
    set_session_cookies(request, response, started)
    return response


@router.post("/logout")
def logout(
    request: Request, viewer: CurrentViewer, token: SessionToken, session: SessionDep
) -> Response:
    # CurrentViewer: only a valid session, CSRF-checked, is ended by this form.
    end_session(session, token)
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    clear_session_cookies(response)
    flash.add(request, response, "You have logged out.", level="success")
    return response

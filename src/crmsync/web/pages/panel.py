"""The side panel beside an email in a mail client (``/panel``), and its connect flow.

    GET  /panel          the panel: a page laid out for a 320-pixel pane. The email comes
                         from ``Office.context.mailbox.item`` inside Outlook, else from the
                         query: ``?message_id=<…>&from=…&to=…&cc=…&subject=…``
    GET  /panel/connect  (logged in; else /login?next=) "Connect the side panel" button
    POST /panel/connect  (CSRF-checked) a one-time connect code (crm/connect.py), shown as
                         XXXX-XXXX and handed to the panel that opened the dialog

**How the panel authenticates.** Not by the session cookie: inside Outlook the pane is a
third-party frame, whose cookies browsers withhold. The panel keeps a *panel token* in
localStorage and sends it as ``Authorization: Bearer`` to the API; api/deps.py says which
few routes accept it. It gets one by the connect flow, as Odoo's mail plugin does::

    panel ──"Connect to crmsync"──▶ dialog /panel/connect (Office displayDialogAsync in
      ▲                              Outlook, a window.open popup in a browser; the login
      │                              page first if need be) ──button──▶ code XXXX-XXXX
      │                                            │
      └──── Office messageParent / window.opener.postMessage (same origin only), or the
            person types the code ──▶ POST /api/v1/panel/tokens ──▶ panel token

A 401 from the API (the token revoked or expired) puts the panel back to "Connect".

**How the panel renders.** This module serves a static shell; static/js/panel.js calls
the JSON API (``GET /api/v1/panel/lookup``, search, track, untrack, regarding, resolve)
and builds the page with DOM methods (``textContent``, never ``innerHTML`` with data).
That is simpler and more robust than server-rendered fragments here: the API already
has every route, with the panel token's scope, its errors and its tests, so the panel
adds no second set of Bearer-authenticated page routes that would have to keep the
cookie out.

**Office.js.** Microsoft serves it only from its own host (it cannot be vendored), so it
is loaded only where it is needed: when the page is opened as the add-in — the manifest
(web/addin.py) opens ``/panel?host=outlook``, and Office adds ``_host_Info=Outlook…`` —
and then the page's Content-Security-Policy allows scripts from that one host, and lets
Outlook on the web frame the page. In a plain browser, and in the tests, the policy is
the default one and nothing is loaded from elsewhere.

Must never authenticate the panel by the cookie, never put a connect code or token
anywhere but the one answer that makes it, and never allow a foreign script outside
the Outlook case.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Final

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from crmsync.api.deps import SessionDep
from crmsync.crm import connect
from crmsync.crm.models.org import User
from crmsync.web.deps import CurrentViewer
from crmsync.web.security import CSP_HEADER, csp
from crmsync.web.templating import RECORD_PAGES, render

router = APIRouter(include_in_schema=False)

PANEL_PATH: Final = "/panel"
CONNECT_PATH: Final = "/panel/connect"
OUTLOOK: Final = "outlook"
# Microsoft's hosted Office.js: the add-in's only way to read the item and open dialogs.
OFFICE_JS: Final = "https://appsforoffice.microsoft.com/lib/1/hosted/office.js"
OFFICE_JS_ORIGIN: Final = "https://appsforoffice.microsoft.com"
# Outlook on the web puts an add-in's pane in a frame of its own pages (desktop Outlook
# uses a web view, which no frame-ancestors applies to).
OUTLOOK_WEB: Final = (
    "https://outlook.office.com",
    "https://outlook.office365.com",
    "https://outlook.live.com",
)

HostParam = Annotated[str, Query(max_length=40)]
HostInfoParam = Annotated[str, Query(alias="_host_Info", max_length=200)]


def in_outlook(host: str, host_info: str) -> bool:
    """Whether the page was opened as the Outlook add-in.

    ``host=outlook`` is what the manifest's URLs say; Office also appends
    ``_host_Info=Outlook$Win32$16.02$en-US…`` (or with ``|``) to an add-in's URL.
    """
    return host.lower() == OUTLOOK or host_info.lower().startswith(OUTLOOK)


def panel_csp(outlook: bool) -> str:
    """The default policy; as the add-in, Office.js's host for scripts, Outlook for frames."""
    if not outlook:
        return csp()
    return csp(
        script_src=f"'self' {OFFICE_JS_ORIGIN}",
        frame_ancestors=" ".join(("'self'", *OUTLOOK_WEB)),
    )


def _page(
    request: Request, template: str, outlook: bool, context: Mapping[str, object]
) -> Response:
    full = {"outlook": outlook, "office_js": OFFICE_JS if outlook else None, **context}
    response = render(request, template, full)
    response.headers[CSP_HEADER] = panel_csp(outlook)
    return response


@router.get(PANEL_PATH)
def panel_page(request: Request, host: HostParam = "", host_info: HostInfoParam = "") -> Response:
    # Nothing personal is rendered: panel.js reads the email from Office or the query and
    # asks the API with the panel token. So the page takes no credential at all.
    outlook = in_outlook(host, host_info)
    connect_url = CONNECT_PATH + ("?host=outlook" if outlook else "")
    context = {
        "connect_url": connect_url,
        # Where a record's page is: panel.js links each person to theirs.
        "record_pages": json.dumps({str(kind): path for kind, path in RECORD_PAGES.items()}),
    }
    response = _page(request, "panel/panel.html", outlook, context)
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get(CONNECT_PATH)
def connect_page(
    request: Request, viewer: CurrentViewer, host: HostParam = "", host_info: HostInfoParam = ""
) -> Response:
    outlook = in_outlook(host, host_info)
    return _page(request, "panel/connect.html", outlook, {"code": None, "expires_at": None})


@router.post(CONNECT_PATH)
def connect_issue(
    request: Request,
    viewer: CurrentViewer,
    session: SessionDep,
    host: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    # CurrentViewer has checked the CSRF token: a code is issued only on a press of this
    # page's own button, never by a request another site makes with the cookie.
    user = session.get(User, viewer.user_id)
    assert user is not None  # CurrentViewer found them a moment ago, in this transaction
    code, expires_at = connect.issue_connect_code(session, user)
    outlook = in_outlook(host, "")
    return _page(request, "panel/connect.html", outlook, {"code": code, "expires_at": expires_at})

"""The home page: who is logged in, and a search over the CRM's records.

``GET /`` renders the page; ``?q=`` fills the search box (a link or the browser's back
button brings the same search back). ``GET /search?q=`` answers the results fragment
that htmx puts into ``#search-results`` as the user types; without htmx it redirects to
``/?q=``.

Results come from ``crm/search.py`` (accounts, contacts, leads, opportunities and cases
by name and email address, best first), each labelled with its type and linking to its
record page; a contact's line names its account when the viewer may read it. A blank
query shows nothing; a query that finds nothing says so.

Must never show a record the viewer may not read: results come through ``crm/access.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from crmsync.api.deps import SessionDep
from crmsync.core.types import RecordType
from crmsync.crm.search import search as search_records
from crmsync.web.deps import CurrentViewer
from crmsync.web.record_view import TYPE_LABELS
from crmsync.web.templating import record_url, render

router = APIRouter(include_in_schema=False)

MAX_QUERY = 200
MAX_RESULTS = 20
Search = Annotated[str, Query(max_length=1000)]


@dataclass(frozen=True)
class Result:
    """One line of the results: ``Result('contact', 'Contact', 'Nancy Buyer', …)``."""

    record_type: RecordType
    label: str
    title: str
    subtitle: str
    url: str


def _results_context(session: Session, viewer: CurrentViewer, q: str) -> dict[str, object]:
    hits = search_records(session, viewer.principal, q, limit=MAX_RESULTS) if q else []
    results = [
        Result(
            hit.record_type,
            TYPE_LABELS[hit.record_type],
            hit.title or "(no name)",
            hit.subtitle,
            record_url(hit.record_type, hit.record_id),
        )
        for hit in hits
    ]
    # A full page of hits may not be all of them: the page asks for a closer search.
    return {"q": q, "results": results, "maybe_more": len(results) >= MAX_RESULTS}


@router.get("/")
def home(request: Request, viewer: CurrentViewer, session: SessionDep, q: Search = "") -> Response:
    query = q.strip()[:MAX_QUERY]
    context = _results_context(session, viewer, query)
    return render(request, "home.html", {"nav": "home", **context})


@router.get("/search")
def search(
    request: Request, viewer: CurrentViewer, session: SessionDep, q: Search = ""
) -> Response:
    query = q.strip()[:MAX_QUERY]
    if not request.headers.get("HX-Request"):
        return RedirectResponse("/?" + urlencode({"q": query}) if query else "/", 303)
    return render(request, "partials/search_results.html", _results_context(session, viewer, query))

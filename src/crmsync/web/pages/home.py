"""The home page: who is logged in, and a search over the CRM's records.

``GET /`` renders the page; ``?q=`` fills the search box (a link or the browser's back
button brings the same search back). ``GET /search?q=`` answers the results fragment
that htmx puts into ``#search-results`` as the user types; without htmx it redirects to
``/?q=``.

Must never show a record the viewer may not read: results come through ``crm/access.py``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from crmsync.web.deps import CurrentViewer
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

MAX_QUERY = 200
Search = Annotated[str, Query(max_length=1000)]


def _results_context(q: str) -> dict[str, object]:
    # The record search is not part of the web app yet: the area says so.
    return {"q": q, "available": False}


@router.get("/")
def home(request: Request, viewer: CurrentViewer, q: Search = "") -> Response:
    query = q.strip()[:MAX_QUERY]
    return render(request, "home.html", {"nav": "home", **_results_context(query)})


@router.get("/search")
def search(request: Request, viewer: CurrentViewer, q: Search = "") -> Response:
    query = q.strip()[:MAX_QUERY]
    if not request.headers.get("HX-Request"):
        return RedirectResponse("/?" + urlencode({"q": query}) if query else "/", 303)
    return render(request, "partials/search_results.html", _results_context(query))

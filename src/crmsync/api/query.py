"""Query parameters a route does not know are refused, not ignored.

``GET /api/v1/search?q=nancy&limt=5`` is a 422 naming ``query.limt``: ignoring a misspelt
parameter would answer something other than what was asked, with a 200 that says nothing.
Applies to routes that take query parameters (they document their 422 already); a route
that takes none ignores a query string, as web servers do.

Included with every API router by api/app.py (install_api), never with pages: Outlook appends
parameters of its own to the side panel's URL.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for dependency in dependant.dependencies:
        names |= _query_names(dependency)
    return names


def refuse_unknown_parameters(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not request.query_params:
        return
    known = _query_names(route.dependant)  # a few fields: cheaper than any cache
    unknown = sorted(set(request.query_params) - known) if known else []
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "Unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )

"""The OpenAPI document, completed with what FastAPI cannot see: errors and authentication.

FastAPI documents each route's success and a 422 shaped like its own validation error.
This API answers every error as problem+json (problems.py) — also the 422, which
problems.py rewrites — and authenticates in dependencies that read the ``Authorization``
header or the session cookie by hand (deps.py), so generated clients would otherwise know
neither the error shapes nor that a token is needed. ``install_openapi(app)`` replaces
``app.openapi`` with a function that builds FastAPI's document once, then amends it:

- ``components.schemas.Problem`` (and ``FieldError``), from ``problems.Problem``;
- ``components.securitySchemes``: ``bearer`` (``Authorization: Bearer crms_…``, API tokens
  and login session tokens) and ``session`` (the ``crmsync_session`` cookie); every
  operation that authenticates the caller lists either as its ``security``;
- on every operation, the errors it can give, as ``application/problem+json``, derived
  from the route rather than listed by hand (see ``error_statuses``).

Why a post-processing step rather than ``responses=`` on the routers and FastAPI's
``HTTPBearer``/``APIKeyCookie`` dependencies in deps.py: the rules are the same for every
route, so one function applied to every operation cannot forget a router the way
per-router declarations can; and the security classes answer a missing credential with
their own 403 and error body, so adopting them means reworking how deps.py reads
credentials — worth doing on its own, not for the sake of documentation. Until then the
dependency functions named in ``AUTHENTICATING`` are how this module knows who
authenticates.

Must never change what a route does: it only reads routes and writes the document. Must
never leave out an error a route can give: generated clients would break on it, and
tests/unit/api/test_schemathesis.py holds the running app to the document. It may name
one a route gives only in principle (409 on every write), never one no route of its kind
can give.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from crmsync.api import csrf, deps
from crmsync.api.problems import PROBLEM_JSON, problem_json_schema
from crmsync.api.routes import auth, panel

REF = "#/components/schemas/"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

# Dependencies that find the caller; a route that depends on one, at any depth, needs
# credentials and answers 401 without them.
AUTHENTICATING: frozenset[Callable[..., Any]] = frozenset(
    {deps.get_current_user, deps.get_principal_briefly, deps.get_panel_user}
)
# Routes that check a secret themselves — a password, a side panel's connect code: 401
# when it is wrong, and 429 with Retry-After after too many failures (crm/throttle.py).
CHECK_PASSWORDS: frozenset[Callable[..., Any]] = frozenset(
    {auth.login, panel.exchange_connect_code}
)

BEARER = "bearer"
SESSION_COOKIE = "session"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "crms_…",
        "description": "An API token (`crmsync token create`, POST /api/v1/tokens) or the "
        "session token that POST /api/v1/auth/login answers: "
        "`Authorization: Bearer crms_…`. A side panel token (POST /api/v1/panel/tokens) "
        "works only on /api/v1/panel/...; elsewhere it is 403 TOKEN_OUT_OF_SCOPE.",
    },
    SESSION_COOKIE: {
        "type": "apiKey",
        "in": "cookie",
        "name": deps.SESSION_COOKIE,
        "description": "The HttpOnly cookie login sets, for the web UI. POST, PUT, PATCH "
        f"and DELETE with it also need an Origin or Referer of this server and the "
        f"{csrf.CSRF_HEADER} header (or a {csrf.CSRF_FIELD} form field); else 403 CSRF_FAILED.",
    },
}

_RETRY_AFTER = {
    "description": "Seconds until an attempt is looked at again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}
_WWW_AUTHENTICATE = {
    "description": "The scheme to authenticate with: Bearer.",
    "required": True,
    "schema": {"type": "string"},
}

# status → (description, headers)
ERRORS: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("BAD_REQUEST: the body could not be read as text (it is not UTF-8).", {}),
    401: (
        "AUTHENTICATION_FAILED: no credentials, a token that is unknown, expired or "
        "revoked, or (login) a wrong username or password; CONNECT_CODE_INVALID: a side "
        "panel's connect code that is unknown, used or expired.",
        {"WWW-Authenticate": _WWW_AUTHENTICATE},
    ),
    403: (
        "FORBIDDEN: the caller lacks the privilege; TOKEN_OUT_OF_SCOPE: a side panel "
        "token used outside /api/v1/panel/...; or CSRF_FAILED (with `reason`): a "
        "request authenticated by the session cookie that failed the cross-site check.",
        {},
    ),
    404: ("NOT_FOUND: no such record, or one the caller may not read.", {}),
    409: ("CONFLICT: the record's state does not allow this (now).", {}),
    413: ("CONTENT_TOO_LARGE: the body is larger than `limit` bytes; it was not read.", {}),
    422: (
        "VALIDATION_FAILED: invalid input, each named in `errors`; or a rule the input "
        "breaks (INVALID_REFERENCE, ...), named in `field`.",
        {},
    ),
    429: (
        "TOO_MANY_ATTEMPTS: too many failed logins (or connect codes) for this account "
        "or address; try again after `retry_after` seconds.",
        {"Retry-After": _RETRY_AFTER},
    ),
    500: ("INTERNAL_ERROR or COMMIT_FAILED: nothing the request did was saved.", {}),
}


@dataclass(frozen=True)
class RouteFacts:
    """What the document's amendments are derived from, for one operation."""

    path: str
    method: str
    endpoint: Callable[..., Any]
    calls: frozenset[Callable[..., Any]]  # every dependency, at any depth

    @property
    def authenticated(self) -> bool:
        return bool(self.calls & AUTHENTICATING)


def install_openapi(app: FastAPI) -> None:
    """Serve the amended document; built on first use, once every router is included."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=app.openapi_version,
                summary=app.summary,
                description=app.description,
                terms_of_service=app.terms_of_service,
                contact=app.contact,
                license_info=app.license_info,
                routes=app.routes,
                webhooks=app.webhooks.routes,
                tags=app.openapi_tags,
                servers=app.servers,
                separate_input_output_schemas=app.separate_input_output_schemas,
                external_docs=app.openapi_external_docs,
            )
            app.openapi_schema = amend(document, route_facts(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def amend(document: dict[str, Any], routes: Iterable[RouteFacts]) -> dict[str, Any]:
    """``document`` with the Problem schema, security schemes and error responses."""
    document = copy.deepcopy(document)
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(problem_schemas())
    # FastAPI's own 422 shape, never answered here (problems.py rewrites it).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
    for route in routes:
        operation = document["paths"][route.path][route.method.lower()]
        if route.authenticated:
            operation["security"] = [{BEARER: []}, {SESSION_COOKIE: []}]
        responses = operation.setdefault("responses", {})
        # Replaces what FastAPI wrote for an error status (its 422): every error answered
        # here is a problem, whatever a route declares.
        for status in error_statuses(route, operation):
            description, headers = ERRORS[status]
            responses[str(status)] = error_response(description, headers)
    return document


def problem_schemas() -> dict[str, Any]:
    """``{"Problem": {...}, "FieldError": {...}}`` with references into components."""
    schema = problem_json_schema(REF + "{model}")
    nested = schema.pop("$defs", {})
    return {"Problem": schema, **nested}


def error_response(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF + "Problem"}}},
    }
    if headers:
        response["headers"] = headers
    return response


def error_statuses(route: RouteFacts, operation: dict[str, Any]) -> list[int]:
    """The error statuses an operation can answer, from its route and its document.

    ``POST /api/v1/accounts/{record_id}/assign`` → [400, 401, 403, 404, 409, 413, 422, 500];
    ``GET /healthz`` → [500].
    """
    unsafe = route.method in UNSAFE_METHODS
    statuses = {500}
    if route.authenticated:
        statuses |= {401, 403}
    if unsafe and csrf.check_request in route.calls:
        statuses.add(403)  # it refuses unsafe requests only
    if "{" in route.path:
        statuses.add(404)
    if unsafe:
        # Any unsafe request may carry a body, which the size limit (limits.py) meets first;
        # and writes meet the records' states and unique names.
        statuses |= {409, 413}
    if operation.get("parameters") or "requestBody" in operation:
        statuses.add(422)
    if "requestBody" in operation:
        statuses.add(400)  # FastAPI's answer to a body it cannot decode
    if route.endpoint in CHECK_PASSWORDS:
        statuses |= {401, 429}
    return sorted(statuses)


def route_facts(app: FastAPI) -> list[RouteFacts]:
    """One ``RouteFacts`` per documented operation of ``app``."""
    facts = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        # The context, not the route: it has the prefix and the app's dependencies.
        calls = frozenset(dependency_calls(context.dependant))
        for method in sorted(context.methods or ()):
            path = context.path_format or route.path_format
            facts.append(RouteFacts(path, method, route.endpoint, calls))
    return facts


def dependency_calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    """Every function ``dependant`` depends on, at any depth."""
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from dependency_calls(dependency)

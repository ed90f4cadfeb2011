"""Errors as RFC 9457 problem details (``application/problem+json``) with a stable code.

Every failure a client can cause maps to a 4xx with a ``code`` it can switch on; invalid
input is a 422 that names each offending field. Unexpected exceptions become a plain 500
problem without internals — the traceback goes to the log, never to the client.

``Problem`` is the shape every such body has; the OpenAPI document describes the error
responses with it (openapi.py), so a member added to a problem here belongs there too.

Must never put internals (tracebacks, SQL, secrets) into a problem.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, NotRequired

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from pydantic import Field, TypeAdapter
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from crmsync.crm.errors import CrmError

log = logging.getLogger(__name__)

_CRM_MEMBERS = ("field", "retry_after")

PROBLEM_JSON = "application/problem+json"

_CODES_BY_STATUS = {
    400: "BAD_REQUEST",
    401: "AUTHENTICATION_REQUIRED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_FAILED",
    429: "TOO_MANY_REQUESTS",
}


class FieldError(TypedDict):
    """One invalid input of a 422 VALIDATION_FAILED."""

    field: Annotated[
        str,
        Field(
            description="Where: a body field as a dotted path (parties.0.address), "
            "or query.NAME, path.NAME, header.NAME."
        ),
    ]
    message: str


class Problem(TypedDict):
    """RFC 9457 problem details, as every error of this API answers them.

    Members beyond these may be added; clients must ignore the ones they do not know.
    """

    type: Annotated[str, Field(description="A URI reference naming the kind of problem.")]
    title: Annotated[str, Field(description="A short summary of the kind of problem.")]
    status: Annotated[int, Field(ge=400, le=599, description="The HTTP status code.")]
    code: Annotated[
        str,
        Field(
            description="Stable, for programs to switch on: NOT_FOUND, FORBIDDEN, CONFLICT, "
            "VALIDATION_FAILED, AUTHENTICATION_FAILED, CSRF_FAILED, CONTENT_TOO_LARGE, "
            "TOO_MANY_ATTEMPTS, INTERNAL_ERROR, ..."
        ),
    ]
    detail: Annotated[str, Field(description="What went wrong this time, for people.")]
    field: NotRequired[Annotated[str, Field(description="The input a business rule refused.")]]
    errors: NotRequired[
        Annotated[list[FieldError], Field(description="VALIDATION_FAILED: every invalid input.")]
    ]
    reason: NotRequired[
        Annotated[
            str,
            Field(
                description="CSRF_FAILED: ORIGIN_MISSING, ORIGIN_FOREIGN, TOKEN_MISSING or "
                "TOKEN_INVALID."
            ),
        ]
    ]
    retry_after: NotRequired[
        Annotated[
            int, Field(ge=0, description="TOO_MANY_ATTEMPTS: seconds to wait, as Retry-After.")
        ]
    ]
    limit: NotRequired[
        Annotated[
            int, Field(ge=0, description="CONTENT_TOO_LARGE: the largest body accepted, in bytes.")
        ]
    ]


def problem_json_schema(ref_template: str) -> dict[str, Any]:
    """The JSON schema of ``Problem``; nested schemas (FieldError) under ``$defs``."""
    return TypeAdapter(Problem).json_schema(ref_template=ref_template)


def problem(
    status: int,
    code: str,
    title: str,
    detail: str = "",
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """A problem+json response; ``extra`` are members of ``Problem``, ``headers`` HTTP headers."""
    body = {
        "type": f"/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    all_headers = dict(headers or {})
    if status == 401:
        all_headers.setdefault("WWW-Authenticate", "Bearer")
    if extra.get("retry_after") is not None:
        all_headers.setdefault("Retry-After", str(extra["retry_after"]))
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_JSON, headers=all_headers or None
    )


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "parties", 0, "address") → "parties.0.address"; keep "query"/"path" names.
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _crm_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrmError)
    # Only the members Problem documents: other fields (record_type, ...) are for logs.
    extra = {name: exc.fields[name] for name in _CRM_MEMBERS if name in exc.fields}
    return problem(exc.status, exc.code, type(exc).__name__, exc.detail, **extra)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(error.get("loc", ())), "message": error.get("msg", "invalid")}
        for error in exc.errors()
    ]
    fields = ", ".join(sorted({error["field"] for error in errors}))
    return problem(422, "VALIDATION_FAILED", "Invalid input", f"Check: {fields}", errors=errors)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    title = code.replace("_", " ").capitalize()
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # A 405 must list what the resource allows (RFC 9110 15.5.6). Starlette's Allow
        # names only the first route whose path matched, not the others on the same path.
        headers["Allow"] = ", ".join(sorted(_allowed_methods(request)))
    return problem(exc.status_code, code, title, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> set[str]:
    """Every method some route of the app answers at the request's path."""
    scope = {**request.scope, "method": "OPTIONS"}  # a method no route has: path only
    allowed: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            allowed |= set(route.methods or ())
    return allowed


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("Unhandled error", exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "The server could not do that.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

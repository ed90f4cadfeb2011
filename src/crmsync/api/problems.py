"""Errors as RFC 9457 problem details (``application/problem+json``) with a stable code.

Every failure a client can cause maps to a 4xx with a ``code`` it can switch on; invalid
input is a 422 that names each offending field. Unexpected exceptions become a plain 500
problem without internals — the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crmsync.crm.errors import CrmError

log = logging.getLogger(__name__)

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


def problem(status: int, code: str, title: str, detail: str = "", **extra: Any) -> JSONResponse:
    body = {
        "type": f"/problems/{code.lower().replace('_', '-')}",
        "title": title,
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field_path(location: tuple[Any, ...] | list[Any]) -> str:
    # ("body", "parties", 0, "address") → "parties.0.address"; keep "query"/"path" names.
    parts = [str(part) for part in location]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


async def _crm_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, CrmError)
    extra = {"field": exc.fields["field"]} if "field" in exc.fields else {}
    return problem(exc.status, exc.code, type(exc).__name__, exc.detail, **extra)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"field": _field_path(error.get("loc", ())), "message": error.get("msg", "invalid")}
        for error in exc.errors()
    ]
    fields = ", ".join(sorted({error["field"] for error in errors}))
    return problem(422, "VALIDATION_FAILED", "Invalid input", f"Check: {fields}", errors=errors)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _CODES_BY_STATUS.get(exc.status_code, "HTTP_ERROR")
    return problem(exc.status_code, code, code.replace("_", " ").capitalize(), str(exc.detail))


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    log.exception("Unhandled error", exc_info=exc)
    return problem(500, "INTERNAL_ERROR", "Internal error", "The server could not do that.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(CrmError, _crm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

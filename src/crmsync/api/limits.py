"""Request body size limits, enforced before a body is read.

A pure ASGI middleware in front of the whole application. A request that declares a
``Content-Length`` over its limit gets 413 at once: the application never runs and not one
byte of the body is read (no ``100 Continue`` is sent either, since uvicorn sends it only
on the first ``receive()``). A body of unknown length (``Transfer-Encoding: chunked``) is
counted as it streams in, and the ``receive()`` that passes the limit raises
``ContentTooLarge`` instead of returning the chunk, so nothing ever holds more than the
limit. The application's handlers turn that into a 413 problem; if it escapes them, the
middleware answers it, unless a response has already begun.

Two limits, both in ``Settings``: ``max_body_bytes`` for every request and
``max_upload_bytes`` for routes marked as taking file uploads::

    @router.post("/emails/{email_id}/attachments", openapi_extra=upload_route())

The mark is an OpenAPI extension, so clients see it too; the middleware finds the marked
paths in the application's OpenAPI document when the first request arrives.

Must never read or buffer a body itself, and never hand a route more bytes than its limit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crmsync.api.problems import problem

log = logging.getLogger(__name__)

UPLOAD_EXTENSION = "x-crmsync-upload"


def upload_route() -> dict[str, Any]:
    """``openapi_extra`` for a route that takes file uploads: its limit is ``max_upload_bytes``."""
    return {UPLOAD_EXTENSION: True}


class ContentTooLarge(HTTPException):
    """The request body is over the limit for its route."""

    def __init__(self, limit: int) -> None:
        # A subclass of Starlette's HTTPException, so that FastAPI re-raises it from its
        # body reading (anything else there becomes a 400) and the handler below sees it.
        super().__init__(413, f"The request body is larger than {limit} bytes")
        self.limit = limit


def too_large(limit: int) -> JSONResponse:
    response = problem(
        413,
        "CONTENT_TOO_LARGE",
        "Content too large",
        f"The request body is larger than {limit} bytes",
        limit=limit,
    )
    # The rest of the body stays unread; the connection cannot be reused for another request.
    response.headers["Connection"] = "close"
    return response


def upload_paths(app: FastAPI) -> list[re.Pattern[str]]:
    """The path patterns of every operation marked with ``upload_route()``."""
    patterns = []
    for path, operations in app.openapi().get("paths", {}).items():
        if any(isinstance(op, dict) and op.get(UPLOAD_EXTENSION) for op in operations.values()):
            patterns.append(compile_path(path)[0])
    return patterns


class BodyLimits:
    """Which limit applies to a request path."""

    def __init__(
        self,
        default: int,
        upload: int,
        find_upload_paths: Callable[[], Sequence[re.Pattern[str]]] = list,
    ) -> None:
        self.default = default
        self.upload = upload
        self.find_upload_paths = find_upload_paths
        self._upload_paths: Sequence[re.Pattern[str]] | None = None

    def for_path(self, path: str) -> int:
        if self._upload_paths is None:
            # Found on first use: every router is included by then.
            try:
                self._upload_paths = self.find_upload_paths()
            except Exception:
                # The stricter limit everywhere beats refusing every request.
                log.exception("Upload routes not found; every route gets the default limit")
                self._upload_paths = []
        if any(pattern.match(path) for pattern in self._upload_paths):
            return self.upload
        return self.default


def _declared_length(scope: Scope) -> int | None:
    value = Headers(scope=scope).get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]  # the paths in the OpenAPI document leave it out
        limit = self.limits.for_path(path)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await too_large(limit)(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                # A body longer than it declared is refused too: never trust the header.
                if received > limit:
                    raise ContentTooLarge(limit)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except ContentTooLarge as exc:
            # Raised where no exception handler saw it, e.g. by another middleware.
            if response_started:
                raise
            await too_large(exc.limit)(scope, receive, send)


async def content_too_large(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ContentTooLarge)
    return too_large(exc.limit)


def install(app: FastAPI, *, max_body_bytes: int, max_upload_bytes: int) -> None:
    """Limit every request body; upload routes are looked up on the first request."""
    app.add_exception_handler(ContentTooLarge, content_too_large)
    limits = BodyLimits(max_body_bytes, max_upload_bytes, lambda: upload_paths(app))
    app.add_middleware(BodyLimitMiddleware, limits=limits)

"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), served from the package, offline.

FastAPI's own helpers load both from a public CDN and start them with an inline
``<script>``, which the Content-Security-Policy forbids; these pages load the vendored
copies (static/vendor/, versions in its README.md) and start them from
static/js/swagger-init.js and static/js/redoc-init.js, which read the OpenAPI document's
address from a ``data-openapi-url`` attribute. Swagger UI's Authorize button comes from
the security schemes api/openapi.py declares; "Try it out" with the session cookie sends
the CSRF token from the ``crmsync_csrf`` cookie, as the web pages do.

Swagger UI runs under the default policy. ReDoc does not: its styled-components insert
``<style>`` elements at run time and its search index runs in a worker made from a
``blob:`` URL, so ``/redoc`` alone allows ``style-src 'unsafe-inline'`` and
``worker-src blob:``. It shows no data of the CRM, only the API's description, and its
script policy stays ``'self'``. (ReDoc 3 is not used: it loads icons and logos from its
vendor's CDN and sends telemetry; see static/vendor/README.md.)

Must never load an asset from another host, nor need a login (the API's description is
public, as ``/api/v1/openapi.json`` is).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from crmsync.web.security import CSP_HEADER, csp
from crmsync.web.templating import render

router = APIRouter(include_in_schema=False)

REDOC_CSP = csp(style_src="'self' 'unsafe-inline'", worker_src="'self' blob:")


def _openapi_url(request: Request) -> str:
    root: str = request.scope.get("root_path", "")
    document: str | None = request.app.openapi_url
    return root + (document or "")


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    return render(request, "docs/swagger.html", {"openapi_url": _openapi_url(request)})


@router.get("/redoc")
def redoc(request: Request) -> Response:
    return render(
        request,
        "docs/redoc.html",
        {"openapi_url": _openapi_url(request)},
        headers={CSP_HEADER: REDOC_CSP},
    )

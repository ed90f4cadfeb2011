"""Security headers on every response, and the Content-Security-Policy of every page.

``SecurityHeadersMiddleware`` (a pure ASGI middleware around the whole application) adds
to every response ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``,
and to every HTML response the strict policy ``DEFAULT_CSP``::

    default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'

So no page may have an inline ``<script>``, an ``on…=`` attribute, a ``style=``
attribute or a ``<style>`` element, nor load anything from another host: scripts go in
``static/js/``, styles in ``static/css/``, and templates say ``{{ static_url(...) }}``.

**Overriding the policy for one route.** The middleware leaves alone any of these
headers that the response already has. A route that needs another policy sets it
itself, built with ``csp(...)`` so that only the directives it names change::

    from crmsync.web.security import CSP_HEADER, csp

    # the side panel, framed by Outlook on the web
    response.headers[CSP_HEADER] = csp(frame_ancestors="'self' https://outlook.office.com")
    # an email body: its own sandboxed document
    response.headers[CSP_HEADER] = csp(default_src="'none'", sandbox="", img_src="data:")

(directive names with ``_`` for ``-``; an empty string writes the bare directive.)
Error pages rendered outside the middleware (an unexpected exception is answered by
Starlette's outermost handler) take their headers from ``page_headers()``.

Must never weaken the default policy for every page to suit one route, and never add a
header a response already has.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP_HEADER = "Content-Security-Policy"

# Directive → sources. Order is kept in the header, for people reading it.
DEFAULT_POLICY: dict[str, str] = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'self'",
}

ALWAYS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def csp(**directives: str) -> str:
    """The default policy with ``directives`` replaced or added.

    ``csp()`` → ``DEFAULT_CSP``; ``csp(frame_ancestors="'self' https://a.example")`` →
    ``default-src 'self'; … frame-ancestors 'self' https://a.example``.
    """
    policy = dict(DEFAULT_POLICY)
    for name, sources in directives.items():
        policy[name.replace("_", "-")] = sources
    return "; ".join(f"{name} {sources}".strip() for name, sources in policy.items())


DEFAULT_CSP = csp()


def page_headers() -> dict[str, str]:
    """Every header the middleware would add to an HTML page."""
    return {**ALWAYS, CSP_HEADER: DEFAULT_CSP}


def _is_html(headers: MutableHeaders) -> bool:
    return headers.get("content-type", "").lower().startswith("text/html")


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers.setdefault(name, value)
                if _is_html(headers):
                    headers.setdefault(CSP_HEADER, DEFAULT_CSP)
            await send(message)

        await self.app(scope, receive, send_with_headers)

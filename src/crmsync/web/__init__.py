"""The web app: server-rendered pages (Jinja2 + htmx) for the people who use the CRM.

``app.install_web(app, settings)`` adds it to the API's FastAPI application: the pages
under ``pages/``, ``/docs`` and ``/redoc``, the static files under ``/static``, the
security headers and the HTML error pages. Everything a page shows is read through
``crm/access.py``, as the API reads it: what the API would hide, the page hides.

Must never load anything from a host other than the instance (every asset is vendored
under ``static/``), never put an inline script or style into a page (the
Content-Security-Policy forbids them, security.py), and never take a state-changing
request without the CSRF check (deps.py).
"""

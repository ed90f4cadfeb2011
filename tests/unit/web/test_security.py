"""Security headers, the CSP and its overrides, static caching, and errors for people."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from crmsync.web.security import CSP_HEADER, DEFAULT_CSP, csp
from crmsync.web.templating import STATIC_DIR, content_hash
from tests.unit.web.conftest import log_in

STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


def test_the_default_policy_is_strict() -> None:
    assert DEFAULT_CSP == STRICT


def test_a_route_overrides_only_the_directives_it_names() -> None:
    panel = csp(frame_ancestors="'self' https://outlook.office.com")
    assert panel == STRICT.replace(
        "frame-ancestors 'self'", "frame-ancestors 'self' https://outlook.office.com"
    )
    sandboxed = csp(default_src="'none'", sandbox="")
    assert sandboxed.startswith("default-src 'none'; script-src 'self'")
    assert sandboxed.endswith("; sandbox")


@pytest.mark.parametrize("path", ["/login", "/docs", "/no-such-page"])
def test_pages_get_the_csp_and_the_other_headers(browser: TestClient, path: str) -> None:
    response = browser.get(path)
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers[CSP_HEADER] == STRICT
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"


def test_a_policy_a_route_sets_is_left_alone(browser: TestClient) -> None:
    policy = browser.get("/redoc").headers[CSP_HEADER]
    assert "worker-src 'self' blob:" in policy
    assert "script-src 'self';" in policy


def test_json_gets_the_headers_but_no_csp(browser: TestClient) -> None:
    response = browser.get("/healthz")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert CSP_HEADER not in response.headers


def test_a_refused_body_gets_the_headers_too(browser: TestClient) -> None:
    too_big = browser.post("/login", content=b"x" * (11 * 1024 * 1024))
    assert too_big.status_code == 413
    assert too_big.headers["x-content-type-options"] == "nosniff"


def test_no_page_is_in_the_openapi_document(browser: TestClient) -> None:
    paths = browser.get("/api/v1/openapi.json").json()["paths"]
    assert paths
    assert all(path.startswith("/api/") or path == "/healthz" for path in paths), paths


def test_static_files_with_their_hash_are_cached_for_a_year(browser: TestClient) -> None:
    page = browser.get("/login").text
    url = re.search(r'href="(/static/css/app\.css\?v=[0-9a-f]+)"', page)
    assert url
    versioned = browser.get(url.group(1))
    assert versioned.status_code == 200
    assert versioned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert browser.get("/static/css/app.css").headers["cache-control"] == "no-cache"
    stale = browser.get("/static/css/app.css?v=000000000000")
    assert stale.headers["cache-control"] == "no-cache"


def test_the_hash_is_the_files_content() -> None:
    data = (STATIC_DIR / "js/app.js").read_bytes()
    assert content_hash("js/app.js") == hashlib.sha256(data).hexdigest()[:12]
    with pytest.raises(ValueError, match="no static file"):
        content_hash("../templating.py")


def test_a_missing_page_is_html_and_a_missing_api_path_problem_json(browser: TestClient) -> None:
    page = browser.get("/no-such-page")
    assert page.status_code == 404
    assert "There is no such page" in page.text
    api = browser.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.headers["content-type"] == "application/problem+json"
    assert browser.get("/static/nothing.css").headers["content-type"].startswith("text/html")


def test_an_unexpected_error_on_a_page_is_a_page_without_internals(
    web_app: FastAPI, browser: TestClient
) -> None:
    @web_app.get("/explode", include_in_schema=False)
    def explode() -> None:
        raise RuntimeError("secret internals")

    @web_app.get("/api/v1/explode", include_in_schema=False)
    def explode_api() -> None:
        raise RuntimeError("secret internals")

    page = browser.get("/explode")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers[CSP_HEADER] == STRICT  # answered outside the middleware
    assert "Nothing was saved" in page.text
    assert "secret internals" not in page.text
    api = browser.get("/api/v1/explode")
    assert api.status_code == 500
    assert api.headers["content-type"] == "application/problem+json"
    assert "secret internals" not in api.text


def test_an_error_page_shows_who_is_logged_in(browser: TestClient) -> None:
    log_in(browser)
    page = browser.get("/no-such-page")
    assert page.status_code == 404
    assert "Administrator" in page.text
    assert 'action="/logout"' in page.text


def test_the_vendored_files_are_the_ones_recorded() -> None:
    vendor = STATIC_DIR / "vendor"
    recorded = re.findall(r"^([0-9a-f]{64})  (\S+)$", (vendor / "README.md").read_text(), re.M)
    # Every script and stylesheet served from vendor/ is recorded, and is what was recorded.
    served = {
        path.relative_to(vendor).as_posix()
        for path in vendor.rglob("*")
        if path.suffix in (".js", ".css")
    }
    assert {name for _, name in recorded} == served
    for digest, name in recorded:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name


def test_no_template_or_script_has_inline_code() -> None:
    """The CSP would block it in the browser; this says which file, before a browser runs."""
    templates = Path(STATIC_DIR).parent / "templates"
    for template in templates.rglob("*.html"):
        text = re.sub(r"\{#.*?#\}", "", template.read_text(), flags=re.S)  # comments
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), template
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert not re.search(r"\sstyle\s*=", text), template
        assert "<style" not in text, template
        assert not re.search(r"(src|href|action)=\"(https?:)?//", text), template

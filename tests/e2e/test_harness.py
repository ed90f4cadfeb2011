"""The harness itself: what it must catch, it catches."""

from __future__ import annotations

from playwright.sync_api import Page

from tests.e2e.conftest import Watch


def _problems(page: Page, watch: Watch, wanted: str) -> list[str]:
    """The problems seen, once one containing ``wanted`` arrived (reports come async)."""
    for _ in range(50):
        if any(wanted in problem for problem in watch.problems):
            break
        page.wait_for_timeout(20)
    return watch.take()


def test_a_request_to_another_host_is_blocked_and_reported(page: Page, watch: Watch) -> None:
    # A page without our CSP, so that the browser really tries to load it.
    page.set_content('<img src="http://cdn.example.invalid/logo.png" alt="">')
    wanted = "request to another host: http://cdn.example.invalid/logo.png"
    assert any(wanted in problem for problem in _problems(page, watch, wanted))


def test_our_csp_refuses_another_host_and_it_is_reported(page: Page, watch: Watch) -> None:
    page.goto("/login")
    page.evaluate(
        """() => { const image = new Image(); image.src = "http://cdn.example.invalid/x.png"; }"""
    )
    wanted = "CSP violation: img-src blocked http://cdn.example.invalid/x.png"
    assert any(wanted in problem for problem in _problems(page, watch, wanted))


def test_an_inline_script_is_refused_by_the_csp_and_reported(page: Page, watch: Watch) -> None:
    page.goto("/login")
    page.evaluate(
        """() => new Promise((done) => {
            document.addEventListener("securitypolicyviolation", () => done(), { once: true });
            const script = document.createElement("script");
            script.textContent = "window.injected = true";
            document.body.appendChild(script);
        })"""
    )
    assert page.evaluate("() => window.injected === undefined")
    problems = _problems(page, watch, "CSP violation: script-src")
    assert any("CSP violation: script-src" in p for p in problems), problems


def test_an_uncaught_error_is_reported(page: Page, watch: Watch) -> None:
    page.goto("/login")
    page.evaluate("() => setTimeout(() => { throw new Error('boom'); }, 0)")
    problems = _problems(page, watch, "boom")
    assert any("uncaught exception" in p and "boom" in p for p in problems), problems
